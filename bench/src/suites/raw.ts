import { connect, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import { AckPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType, type JetStreamClient } from "@nats-io/jetstream";
import { Completions, type Outcome, type Target } from "../loop.js";
import { ChildWorker, distPath } from "../proc.js";
import { RAW, type RawState } from "./raw-shared.js";

/**
 * Reference A, the raw JetStream chain: what five durable steps cost with no run record at all.
 * The driver (this process) publishes step 1 to a file-backed work-queue stream; a worker process
 * publishes step i+1 carrying the state, and after step 5 a `done` message (also stored), which the
 * driver sees on a plain core subscription, the way the `orch` suite sees `run.finished`.
 */
export class RawChain implements Target {
  #seq = 0;

  private constructor(
    private readonly completions: Completions<Outcome>,
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly sub: Subscription,
    private readonly worker: ChildWorker,
    private readonly natsPid: number,
    private readonly steps: number,
  ) {}

  /** Fresh streams and consumer, a worker process, and the driver's connection. */
  static async start(opts: { natsUrl: string; natsPid: number; noAsyncTraces: boolean; steps: number }): Promise<RawChain> {
    const nc = await connect({ servers: opts.natsUrl, name: "bench-raw-driver", noAsyncTraces: opts.noAsyncTraces });
    const jsm = await jetstreamManager(nc);
    for (const name of [RAW.workStream, RAW.doneStream]) await jsm.streams.delete(name).catch(() => false);
    await jsm.streams.add({
      name: RAW.workStream,
      subjects: [RAW.stepSubject],
      retention: RetentionPolicy.Workqueue,
      storage: StorageType.File,
    });
    await jsm.streams.add({
      name: RAW.doneStream,
      subjects: [RAW.doneSubject],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
    });
    await jsm.consumers.add(RAW.workStream, {
      durable_name: RAW.consumer,
      ack_policy: AckPolicy.Explicit,
      max_ack_pending: 10_000,
    });
    const worker = new ChildWorker(distPath("./workers/raw-worker.js"), ["--url", opts.natsUrl, "--noAsyncTraces", String(opts.noAsyncTraces)]);
    await worker.start();
    const dec = new TextDecoder();
    const completions = new Completions<Outcome>();
    const sub = nc.subscribe(RAW.doneSubject, {
      callback: (err, msg) => {
        if (err) return;
        const state = JSON.parse(dec.decode(msg.data)) as RawState;
        completions.settle(state.wf, state.results.length === state.steps ? { ok: true } : { ok: false, reason: "incomplete state" });
      },
    });
    await nc.flush();
    return new RawChain(completions, nc, jetstream(nc), sub, worker, opts.natsPid, opts.steps);
  }

  async run(): Promise<Outcome> {
    const wf = `wf${++this.#seq}`;
    const done = this.completions.wait(wf, 30_000, { ok: false, reason: "timeout" });
    const state: RawState = { wf, goal: "bench", step: 1, steps: this.steps, results: [] };
    await this.js.publish(RAW.stepSubject, new TextEncoder().encode(JSON.stringify(state)));
    return done;
  }

  pids(): Record<string, number | undefined> {
    return { worker: this.worker.pid, "nats-server": this.natsPid };
  }

  async stop(): Promise<void> {
    await this.worker.stop();
    this.sub.unsubscribe();
    const jsm = await jetstreamManager(this.nc);
    for (const name of [RAW.workStream, RAW.doneStream]) await jsm.streams.delete(name).catch(() => false);
    await this.nc.drain();
  }
}
