import { connect } from "@nats-io/transport-node";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { jsonToStruct } from "@orch/proto";
import { waitFor, grpcClient } from "@orch/testing";
import { allTransitions, transitionParts } from "./transitions.js";
import { BenchStack } from "./stack.js";
import { percentile } from "./stats.js";

/**
 * Recovery: SIGKILL of the core with N runs (200 by default) in flight, then a restart, as a
 * supervisor (systemd, Kubernetes) would do it. Measured per run: the time from the restart (the new
 * process spawned) to that run's first event, i.e. until the run is making progress again; and that
 * every run still finishes, once, successfully.
 *
 * The runs are seed 000 jobs of `--steps` dev.log steps, each taking `--step-ms` at the agent hub
 * (`payload.mock.delayMs`), so all of them are mid-run when the core dies: some with a step at the
 * hub, some with a result waiting for the core, some with a command half applied. The hub gets
 * enough concurrency to run every step at once, so what is measured is the core's recovery, not a
 * queue at the hub.
 *
 *   node bench/dist/recovery.js [--runs 200] [--steps 8] [--step-ms 300] [--out results/recovery.json]
 */

const BENCH_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const arg = (name: string, def: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : def;
};
const RUNS = Number(arg("runs", "200"));
const STEPS = Number(arg("steps", "8"));
const STEP_MS = Number(arg("step-ms", "300"));
const OUT = resolve(BENCH_DIR, arg("out", "results/recovery.json"));
const log = (msg: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${msg}\n`);

interface Seen {
  started: boolean;
  finished: number;
  status?: string;
  firstAfterRestart?: number;
}

async function main(): Promise<void> {
  log(`recovery: SIGKILL of the core with ${RUNS} runs in flight (${STEPS} steps of ${STEP_MS} ms each)`);
  const stack = await BenchStack.start({
    serviceEnv: {
      // The restarted process is the same instance: it takes its partitions back at once instead of
      // waiting for the dead one's leases to expire (the case of a pod restarted in place).
      orchestrator: { ORCH_INSTANCE_ID: "bench-core" },
      "agent-hub": { ORCH_AGENT_CONCURRENCY: String(Math.max(16, RUNS + 16)) },
    },
  });
  const grpc = grpcClient(stack.grpcPort);
  const call = <T>(method: string, req: unknown): Promise<T> => grpc.call<T>(method, req);
  const nc = await connect({ servers: stack.nats.url, noAsyncTraces: true });
  const runs = new Map<string, Seen>();
  let restartAt = Number.POSITIVE_INFINITY;
  const sub = nc.subscribe(allTransitions(), {
    callback: (_err, msg) => {
      const now = performance.now();
      const { head, events } = transitionParts(msg.data, true);
      const seen = typeof head.runId === "string" ? runs.get(head.runId) : undefined;
      if (!seen) return;
      for (const e of events) {
        if (e.type === "step.started") seen.started = true;
        if (e.type === "run.finished") {
          seen.finished++;
          seen.status = typeof e.data?.status === "string" ? e.data.status : undefined;
        }
      }
      if (now >= restartAt && seen.firstAfterRestart === undefined) seen.firstAfterRestart = now - restartAt;
    },
  });
  try {
    const job = (i: number) => ({
      goal: `recovery ${i}`,
      steps: Array.from({ length: STEPS }, (_, s) => ({ id: `s${s}`, type: "dev.log", payload: jsonToStruct({ mock: { delayMs: STEP_MS } }) })),
      limits: { max_steps: STEPS, max_wall_ms: 600_000 },
    });
    await waitFor(
      async () =>
        await call("ListDefinitions", {}).then(
          () => true,
          () => false,
        ),
      { timeoutMs: 30_000, intervalMs: 200, what: "the core's gRPC" },
    );
    const ids = await Promise.all(Array.from({ length: RUNS }, (_, i) => call<{ job_id: string }>("CreateJob", job(i)).then((r) => r.job_id)));
    for (const id of ids) if (!runs.has(id)) runs.set(id, { started: false, finished: 0 });
    await waitFor(() => [...runs.values()].every((r) => r.started), { timeoutMs: 60_000, intervalMs: 10, what: "every run started" });

    const core = stack.services.get("orchestrator")!;
    const inFlight = [...runs.values()].filter((r) => r.finished === 0).length;
    const killAt = performance.now();
    await core.kill("SIGKILL");
    log(`  killed the core with ${inFlight} of ${RUNS} runs in flight`);
    restartAt = performance.now();
    await core.start(1).catch(() => undefined);
    await waitFor(
      async () =>
        await call("ListDefinitions", {}).then(
          () => true,
          () => false,
        ),
      { timeoutMs: 60_000, intervalMs: 20, what: "the core back" },
    );
    const servingMs = performance.now() - restartAt;
    log(`  restarted ${(restartAt - killAt).toFixed(0)} ms after the kill; serving gRPC after ${servingMs.toFixed(0)} ms`);

    await waitFor(() => [...runs.values()].every((r) => r.finished > 0), { timeoutMs: 120_000, intervalMs: 50, what: "every run finished" });
    await new Promise((r) => setTimeout(r, 2_000)); // room for a duplicate `run.finished` to show
    const all = [...runs.values()];
    const progress = all.map((r) => r.firstAfterRestart ?? Number.POSITIVE_INFINITY);
    const result = {
      at: new Date().toISOString(),
      runs: RUNS,
      steps: STEPS,
      stepMs: STEP_MS,
      inFlightAtKill: inFlight,
      coreServingAfterMs: Math.round(servingMs),
      progressAfterRestartMs: {
        p50: Math.round(percentile(progress, 50)!),
        p99: Math.round(percentile(progress, 99)!),
        max: Math.round(Math.max(...progress)),
      },
      completed: all.filter((r) => r.status === "succeeded" || r.status === "completed").length,
      notCompleted: all.filter((r) => !(r.status === "succeeded" || r.status === "completed")).length,
      finishedTwice: all.filter((r) => r.finished > 1).length,
      targets: { progressMaxMs: { measured: Math.round(Math.max(...progress)), wanted: "<= 5000" } },
    };
    log(
      `  every run progressing again within ${result.progressAfterRestartMs.max} ms of the restart (p50 ${result.progressAfterRestartMs.p50} ms); ${result.completed} completed, ${result.finishedTwice} finished twice`,
    );
    mkdirSync(dirname(OUT), { recursive: true });
    writeFileSync(OUT, `${JSON.stringify(result, null, 2)}\n`);
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
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
