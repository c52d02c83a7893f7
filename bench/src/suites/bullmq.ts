import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { Completions, type Outcome, type Target } from "../loop.js";
import { ChildWorker, distPath } from "../proc.js";
import { BQ, JOB_OPTIONS, type BullmqMode, type ChainJob, type CoordJob } from "./bullmq-shared.js";

/**
 * References B (`chained`) and C (`coordinator`): BullMQ on a local redis-server. The driver (this
 * process) enqueues each workflow's first job; the worker process (see workers/bullmq-worker.ts)
 * does the rest and publishes the workflow id on a Redis channel the driver subscribes to once.
 */
export class BullmqChain implements Target {
  #seq = 0;

  private constructor(
    private readonly mode: BullmqMode,
    private readonly completions: Completions<Outcome>,
    private readonly queue: Queue<ChainJob> | Queue<CoordJob>,
    private readonly sub: Redis,
    private readonly worker: ChildWorker,
    private readonly redisPid: number | undefined,
    private readonly steps: number,
  ) {}

  /** Empties Redis, starts a worker process and subscribes to finished workflows. */
  static async start(opts: { port: number; redisPid: number | undefined; mode: BullmqMode; concurrency: number; steps: number }): Promise<BullmqChain> {
    const connection = { host: "127.0.0.1", port: opts.port, maxRetriesPerRequest: null };
    const admin = new Redis(connection);
    await admin.flushall();
    await admin.quit();
    const worker = new ChildWorker(distPath("./workers/bullmq-worker.js"), [
      "--port",
      String(opts.port),
      "--mode",
      opts.mode,
      "--concurrency",
      String(opts.concurrency),
    ]);
    await worker.start();
    const completions = new Completions<Outcome>();
    const sub = new Redis(connection);
    sub.on("message", (_channel: string, wf: string) => completions.settle(wf, { ok: true }));
    await sub.subscribe(BQ.done);
    const queue =
      opts.mode === "chained"
        ? new Queue<ChainJob>(BQ.chain, { connection, defaultJobOptions: JOB_OPTIONS })
        : new Queue<CoordJob>(BQ.coord, { connection, defaultJobOptions: JOB_OPTIONS });
    await queue.waitUntilReady();
    return new BullmqChain(opts.mode, completions, queue, sub, worker, opts.redisPid, opts.steps);
  }

  async run(): Promise<Outcome> {
    const wf = `wf${++this.#seq}`;
    const done = this.completions.wait(wf, 30_000, { ok: false, reason: "timeout" });
    if (this.mode === "chained") {
      await (this.queue as Queue<ChainJob>).add("step", { wf, step: 1, steps: this.steps, results: [] });
    } else {
      await (this.queue as Queue<CoordJob>).add("start", { wf, steps: this.steps, kind: "start" });
    }
    return done;
  }

  pids(): Record<string, number | undefined> {
    return { worker: this.worker.pid, "redis-server": this.redisPid };
  }

  async stop(): Promise<void> {
    await this.worker.stop();
    await this.queue.close();
    await this.sub.quit().catch(() => undefined);
  }
}
