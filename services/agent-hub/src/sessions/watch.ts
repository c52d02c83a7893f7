import type { Subscription } from "@nats-io/transport-node";
import { getRunView, type Bus } from "@orch/bus";
import { FINAL_RUN_STATUSES, TransitionReader } from "@orch/contracts";
import type { Logger } from "@orch/logging";

/**
 * Whether the run still waits for the attempts this hub works on. While a session of a run is active,
 * the hub follows that run's transitions (a plain subscription, nothing stored): one that withdraws
 * an attempt (cancelled, timed out by the core, retried) or ends the run stops its session. What a
 * subscription could have missed (it starts after the session; NATS reconnects) is checked against
 * the run's published view, once at the start and after each reconnect.
 */
export class RunWatch {
  readonly #bus: Bus;
  readonly #log: Logger;
  /** attemptId → how to stop it, per run. */
  readonly #runs = new Map<string, { sub: Subscription; attempts: Map<string, (why: string) => void> }>();

  constructor(bus: Bus, log: Logger) {
    this.#bus = bus;
    this.#log = log;
    void (async () => {
      for await (const s of bus.nc.status()) if (s.type === "reconnect") for (const runId of this.#runs.keys()) void this.#check(runId);
    })().catch(() => undefined);
  }

  /** Follows `attemptId` of `runId` until the returned function is called; `stop` is called if the run withdraws it. */
  watch(runId: string, attemptId: string, stop: (why: string) => void): () => void {
    let w = this.#runs.get(runId);
    if (!w) {
      const attempts = new Map<string, (why: string) => void>();
      const sub = this.#bus.nc.subscribe(this.#bus.names.subjects.runOf(runId), { callback: (_err, m) => this.#onTransition(runId, m.data) });
      w = { sub, attempts };
      this.#runs.set(runId, w);
    }
    w.attempts.set(attemptId, stop);
    void this.#check(runId);
    return () => {
      const cur = this.#runs.get(runId);
      if (!cur) return;
      cur.attempts.delete(attemptId);
      if (cur.attempts.size === 0) {
        cur.sub.unsubscribe();
        this.#runs.delete(runId);
      }
    };
  }

  #onTransition(runId: string, data: Uint8Array): void {
    const w = this.#runs.get(runId);
    if (!w) return;
    let head;
    try {
      head = new TransitionReader(data).head();
    } catch {
      return; // the run index's consumer parks what cannot be read
    }
    if (head.run && FINAL_RUN_STATUSES.has(head.run.status)) {
      for (const stop of w.attempts.values()) stop(`the run is ${head.run.status}`);
      return;
    }
    for (const id of head.withdrawn ?? []) w.attempts.get(id)?.("the run no longer waits for this attempt");
  }

  /** Stops the sessions of attempts the run's view no longer shows in flight. */
  async #check(runId: string): Promise<void> {
    try {
      const view = await getRunView(this.#bus, runId);
      const w = this.#runs.get(runId);
      if (!w) return;
      for (const [id, stop] of w.attempts) {
        if (!view) stop("the run does not exist");
        else if (FINAL_RUN_STATUSES.has(view.status)) stop(`the run is ${view.status}`);
        else if (!view.steps.some((s) => s.attemptId === id && s.inflight)) stop("the run no longer waits for this attempt");
      }
    } catch (err) {
      this.#log.debug({ err, runId }, "could not check the run's view; its transitions still stop its sessions");
    }
  }
}
