import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { grpcClient, waitFor } from "@orch/testing";
import { JOB } from "./suites/orch.js";
import { BenchStack } from "./stack.js";
import { allTransitions, FINAL_STATUSES, transitionParts } from "./transitions.js";

/**
 * Write amplification: how many JetStream writes (stream messages, KV updates) and how many bytes
 * one 5-step job costs, per stream, counted from stream sequences and sizes around N jobs (200 by
 * default) run through the real services. Writes are what bound throughput (docs/benchmarks.md).
 *
 *   node bench/dist/writes.js [--jobs 200]
 */

const args = process.argv.slice(2);
const JOBS = Number(args[args.indexOf("--jobs") + 1] ?? 200) || 200;

interface Counts {
  [stream: string]: { seq: number; bytes: number };
}

async function main(): Promise<void> {
  const stack = await BenchStack.start();
  const nc = await connect({ servers: stack.nats.url, noAsyncTraces: true });
  const jsm = await jetstreamManager(nc);
  const grpc = grpcClient(stack.grpcPort);
  const client = grpc.client;
  const create = () =>
    new Promise<string>((res, rej) =>
      client.CreateJob(
        { goal: JOB.goal, steps: JOB.steps.map((s) => ({ type: s.type })), limits: { max_steps: JOB.limits.maxSteps, max_wall_ms: JOB.limits.maxWallMs } },
        (e, r) => (e || !r ? rej(e ?? new Error("empty")) : res(r.job_id)),
      ),
    );
  let finished = 0;
  const sub = nc.subscribe(allTransitions(), {
    callback: (_err, msg) => {
      if (FINAL_STATUSES.has(transitionParts(msg.data, false).head.run?.status)) finished++;
    },
  });
  const snapshot = async (): Promise<Counts> => {
    const out: Counts = {};
    for await (const s of jsm.streams.list()) out[s.config.name] = { seq: s.state.last_seq, bytes: s.state.bytes };
    return out;
  };
  try {
    // A first job warms everything up (and waits for the core's gRPC port).
    await waitFor(
      async () =>
        await create().then(
          () => true,
          () => false,
        ),
      { timeoutMs: 30_000, intervalMs: 200, what: "the core's gRPC" },
    );
    await waitFor(() => finished >= 1, { timeoutMs: 30_000, what: "the first job" });
    await new Promise((r) => setTimeout(r, 1_000)); // the run index flushes every 100 ms
    const before = await snapshot();
    const base = finished;
    await Promise.all(Array.from({ length: JOBS }, create));
    await waitFor(() => finished - base >= JOBS, { timeoutMs: 120_000, what: `${JOBS} jobs` });
    await new Promise((r) => setTimeout(r, 1_000));
    const after = await snapshot();
    const rows = Object.keys(after)
      .sort()
      .map((name) => ({
        stream: name,
        writesPerJob: +((after[name]!.seq - (before[name]?.seq ?? 0)) / JOBS).toFixed(2),
        retainedBytesPerJob: Math.round((after[name]!.bytes - (before[name]?.bytes ?? 0)) / JOBS),
      }))
      .filter((r) => r.writesPerJob > 0);
    const total = +rows.reduce((n, r) => n + r.writesPerJob, 0).toFixed(2);
    process.stdout.write(`${JSON.stringify({ jobs: JOBS, stepsPerJob: JOB.steps.length, rows, total }, null, 2)}\n`);
  } finally {
    sub.unsubscribe();
    grpc.close();
    await nc.close();
    await stack.stop();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
