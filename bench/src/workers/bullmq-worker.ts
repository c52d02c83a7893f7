import { Queue, Worker, type Job } from "bullmq";
import { Redis } from "ioredis";
import { argOf } from "../proc.js";
import { BQ, JOB_OPTIONS, type BullmqMode, type ChainJob, type CoordJob, type StepJob } from "../suites/bullmq-shared.js";

/**
 * The BullMQ references' workers, in their own process.
 *
 * - `chained` (reference B): a job for step i enqueues the job for step i+1 of the same workflow,
 *   carrying the state; after the last it publishes the workflow id on `bench:done`.
 * - `coordinator` (reference C): a coordinator keeps each run's state in a Redis hash, updated on every
 *   step before the next step is enqueued (persist, then dispatch: what our core does with its KV
 *   record); step workers run the no-op step and report back through the coordinator's queue.
 *
 *   node dist/workers/bullmq-worker.js --port 6379 --mode chained|coordinator --concurrency 100
 */
const argv = process.argv.slice(2);
const port = Number(argOf(argv, "port") ?? 6379);
const mode = (argOf(argv, "mode") ?? "chained") as BullmqMode;
const concurrency = Number(argOf(argv, "concurrency") ?? 100);

const connection = { host: "127.0.0.1", port, maxRetriesPerRequest: null };
/** Publishes `done` and writes run hashes; queues get their own connections. */
const redis = new Redis(connection);
const closers: (() => Promise<unknown>)[] = [];

async function chained(): Promise<Worker[]> {
  const queue = new Queue<ChainJob>(BQ.chain, { connection, defaultJobOptions: JOB_OPTIONS });
  closers.push(() => queue.close());
  const worker = new Worker<ChainJob>(
    BQ.chain,
    async (job: Job<ChainJob>) => {
      const s = job.data;
      const results = [...s.results, { i: s.step, at: Date.now() }];
      if (s.step < s.steps) await queue.add("step", { ...s, step: s.step + 1, results });
      else await redis.publish(BQ.done, s.wf);
    },
    { connection, concurrency },
  );
  return [worker];
}

async function coordinator(): Promise<Worker[]> {
  const steps = new Queue<StepJob>(BQ.steps, { connection, defaultJobOptions: JOB_OPTIONS });
  const coord = new Queue<CoordJob>(BQ.coord, { connection, defaultJobOptions: JOB_OPTIONS });
  closers.push(
    () => steps.close(),
    () => coord.close(),
  );
  const coordinatorWorker = new Worker<CoordJob>(
    BQ.coord,
    async (job: Job<CoordJob>) => {
      const c = job.data;
      const key = BQ.runKey(c.wf);
      const now = Date.now();
      if (c.kind === "start") {
        await redis.hset(key, { status: "running", steps: c.steps, stepsDone: 0, next: 0, createdAt: now, updatedAt: now });
        await steps.add("step", { wf: c.wf, steps: c.steps, i: 0 });
        return;
      }
      const next = c.i + 1;
      if (next < c.steps) {
        await redis.hset(key, { stepsDone: next, next, updatedAt: now });
        await steps.add("step", { wf: c.wf, steps: c.steps, i: next });
      } else {
        await redis.hset(key, { status: "succeeded", stepsDone: next, updatedAt: now, finishedAt: now });
        await redis.publish(BQ.done, c.wf);
      }
    },
    { connection, concurrency },
  );
  const stepWorker = new Worker<StepJob>(
    BQ.steps,
    async (job: Job<StepJob>) => {
      // The no-op agent: the step's result goes back to the coordinator.
      await coord.add("result", { wf: job.data.wf, steps: job.data.steps, kind: "step.done", i: job.data.i });
    },
    { connection, concurrency },
  );
  return [coordinatorWorker, stepWorker];
}

const workers = mode === "coordinator" ? await coordinator() : await chained();
for (const w of workers) {
  w.on("failed", (job, err) => console.error(`job ${job?.id} failed: ${err.message}`));
  await w.waitUntilReady();
}

const stop = async () => {
  await Promise.all(workers.map((w) => w.close(true)));
  await Promise.all(closers.map((c) => c().catch(() => undefined)));
  await redis.quit().catch(() => undefined);
  process.exit(0);
};
process.on("SIGTERM", () => void stop());
process.on("SIGINT", () => void stop());
console.log("ready");
