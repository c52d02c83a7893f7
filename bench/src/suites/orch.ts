import { credentials } from "@grpc/grpc-js";
import { connect, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import { loadOrchestratorProto, type OrchestratorServiceClient } from "@orch/proto";
import { waitFor, type NatsServer, type ServiceName } from "@orch/testing";
import { Completions, type Outcome, type Target } from "../loop.js";
import { BenchStack } from "../stack.js";
import { allTransitions, FINAL_STATUSES, transitionParts, type EventPayload } from "../transitions.js";

/**
 * Ours: 5-step `dev.log` jobs through the real services (nats-server and the five services as
 * processes at ORCH_LOG_LEVEL=warn, see stack.ts), touched only through public surfaces, so the
 * harness survives a rewrite of the core:
 *
 * - submit: gRPC `CreateJob` (one client, one HTTP/2 channel), or HTTP `POST /api/orchestrator/jobs`
 *   (fetch: undici keeps connections alive);
 * - completion: ONE core NATS subscription to `<prefix>.run.>`, the runs' transitions, for all jobs
 *   (one SSE or WatchJob stream per job would cost the gateway more than the job itself). Relied on:
 *   the subject layout `<prefix>.run.<projectId>.<runId>` and the message's first JSON line, the
 *   transition's head, with `runId` and `run.status` (`completed`, `failed`, …);
 * - step latency: `step.started.at` → `step.succeeded.at` of the same step, from the second JSON line
 *   (the transition's events), read only while measuring at 1 in flight.
 */

/**
 * The final status of a successful run: `completed` (the workflow engine; seed 000's job machine said
 * `succeeded`). Anything else (failed, canceled, cancelled…) counts as a failed workflow.
 */
export const SUCCESS_STATUSES: ReadonlySet<unknown> = new Set(["succeeded", "completed"]);

export type SubmitVia = "grpc" | "http";

/** Which step an event is about, where the payload says (`data.stepId`, seed 000's `data.i`). */
const stepKeyOf = (e: EventPayload): string | undefined => {
  const k = e.data?.stepId ?? e.data?.i;
  return typeof k === "string" || typeof k === "number" ? String(k) : undefined;
};

export interface StepSamples {
  /** From the events' own `at` fields (ms, as the core stamps them). */
  atMs: number[];
  /** Between the two events' arrival at this process (sub-ms resolution; includes delivery jitter). */
  seenMs: number[];
}

export const JOB = {
  goal: "bench",
  steps: Array.from({ length: 5 }, () => ({ type: "dev.log" })),
  limits: { maxSteps: 5, maxWallMs: 600_000 },
} as const;

export class OrchSuite implements Target {
  #stepSub: Subscription | undefined;
  #steps: StepSamples = { atMs: [], seenMs: [] };

  private constructor(
    readonly stack: BenchStack,
    private readonly submitVia: SubmitVia,
    private readonly prefix: string,
    private readonly nc: NatsConnection,
    private readonly finishedSub: Subscription,
    private readonly completions: Completions<Outcome>,
    private readonly client: OrchestratorServiceClient,
  ) {}

  static async start(opts: {
    submit: SubmitVia;
    prefix?: string;
    nats?: NatsServer;
    serviceEnv?: Partial<Record<ServiceName, Record<string, string>>>;
  }): Promise<OrchSuite> {
    const prefix = opts.prefix ?? "orch";
    const env: Record<string, string> = { ORCH_LOG_LEVEL: "warn" };
    // The gateway allows 60 POSTs per client per minute by default: a benchmark is one client.
    if (opts.submit === "http") env.ORCH_RATE_LIMIT_MAX = "1000000";
    const stack = await BenchStack.start({ env, ...(opts.nats ? { nats: opts.nats } : {}), ...(opts.serviceEnv ? { serviceEnv: opts.serviceEnv } : {}) });
    try {
      const nc = await connect({ servers: stack.nats.url, name: "bench-orch-driver", noAsyncTraces: true });
      const completions = new Completions<Outcome>();
      const finishedSub = nc.subscribe(allTransitions(prefix), {
        callback: (err, msg) => {
          if (err) return;
          const { head } = transitionParts(msg.data, false);
          const status = head.run?.status;
          if (typeof head.runId !== "string" || !FINAL_STATUSES.has(status)) return;
          completions.settle(head.runId, SUCCESS_STATUSES.has(status) ? { ok: true } : { ok: false, reason: `status ${String(status)}` });
        },
      });
      await nc.flush();
      const proto = loadOrchestratorProto();
      const client = new proto.orchestrator.v1.OrchestratorService(`127.0.0.1:${stack.grpcPort}`, credentials.createInsecure());
      const suite = new OrchSuite(stack, opts.submit, prefix, nc, finishedSub, completions, client);
      // Readiness of the job path (core, agent hub, topology) through the public API.
      // (CreateJob fails fast while the core's gRPC server is not listening yet: retried.)
      await waitFor(
        async () => {
          const first = await suite.run();
          if (!first.ok) throw new Error(`a first job did not succeed: ${first.reason}`);
          return true;
        },
        { timeoutMs: 60_000, intervalMs: 200, what: "a first job" },
      );
      return suite;
    } catch (err) {
      await stack.stop();
      throw err;
    }
  }

  async run(): Promise<Outcome> {
    const id = this.submitVia === "grpc" ? await this.#createJobGrpc() : await this.#createJobHttp();
    return this.completions.wait(id, 30_000, { ok: false, reason: `job ${id} did not finish in 30 s` });
  }

  #createJobGrpc(): Promise<string> {
    return new Promise((resolve, reject) => {
      this.client.CreateJob(
        {
          goal: JOB.goal,
          steps: JOB.steps.map((s) => ({ type: s.type })),
          limits: { max_steps: JOB.limits.maxSteps, max_wall_ms: JOB.limits.maxWallMs },
        },
        (err, res) => (err || !res ? reject(err ?? new Error("CreateJob: empty answer")) : resolve(res.job_id)),
      );
    });
  }

  async #createJobHttp(): Promise<string> {
    const res = await fetch(`${this.stack.baseUrl}/api/orchestrator/jobs`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(JOB),
    });
    const body = (await res.json()) as { job_id?: string };
    if (res.status >= 300 || typeof body.job_id !== "string") throw new Error(`POST /jobs: ${res.status} ${JSON.stringify(body)}`);
    return body.job_id;
  }

  /** Starts collecting step latencies (meant for 1 in flight: every event of every run is decoded). */
  beginStepCapture(): void {
    this.#steps = { atMs: [], seenMs: [] };
    // Open starts per run: by step key where the payload names the step, else in order (the steps
    // of a 5-step job run one after the other, so a success closes the oldest open start).
    const open = new Map<string, { key: string | undefined; at: number; seen: number }[]>();
    this.#stepSub = this.nc.subscribe(allTransitions(this.prefix), {
      callback: (err, msg) => {
        if (err) return;
        const seen = performance.now();
        const { head, events } = transitionParts(msg.data, true);
        const runId = head.runId;
        if (typeof runId !== "string") return;
        for (const e of events) {
          if (typeof e.at !== "number") continue;
          if (e.type === "step.started") {
            const q = open.get(runId) ?? [];
            q.push({ key: stepKeyOf(e), at: e.at, seen });
            open.set(runId, q);
          } else if (e.type === "step.succeeded") {
            const q = open.get(runId);
            const key = stepKeyOf(e);
            const idx = q ? Math.max(0, key === undefined ? 0 : q.findIndex((x) => x.key === key)) : -1;
            const s = q && idx >= 0 ? q.splice(idx, 1)[0] : undefined;
            if (!s) continue;
            this.#steps.atMs.push(e.at - s.at);
            this.#steps.seenMs.push(seen - s.seen);
          } else if (e.type === "run.finished") {
            open.delete(runId);
          }
        }
      },
    });
  }

  endStepCapture(): StepSamples {
    this.#stepSub?.unsubscribe();
    this.#stepSub = undefined;
    return this.#steps;
  }

  pids(): Record<string, number | undefined> {
    const out: Record<string, number | undefined> = { "nats-server": this.stack.nats.pid };
    for (const [name, s] of this.stack.services) out[name] = s.pid;
    return out;
  }

  async stop(): Promise<void> {
    this.finishedSub.unsubscribe();
    this.#stepSub?.unsubscribe();
    this.client.close();
    await this.nc.drain().catch(() => undefined);
    await this.stack.stop();
  }
}
