import { connect } from "@nats-io/transport-node";
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { waitFor, grpcClient } from "@orch/testing";
import { allTransitions, transitionParts } from "./transitions.js";
import { BenchStack } from "./stack.js";
import { percentile } from "./stats.js";

/**
 * Idle scale: N runs (100,000 by default) parked at an approval gate, through the real services.
 * Measures what they cost the core (RSS, right after parking them and after a restart) and how fast a
 * page of them is listed (gRPC ListRuns, served by the event-bus's run index): p50/p99 of first pages,
 * filtered pages and deep cursor pages.
 *
 *   node bench/dist/scale.js [--runs 100000] [--concurrency 256] [--idle-samples 6]
 *                            [--core-node-options "--max-old-space-size=256"] [--out results/scale.json]
 */

const BENCH_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const arg = (name: string, def: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : def;
};
const RUNS = Number(arg("runs", "100000"));
const CONCURRENCY = Number(arg("concurrency", "256"));
// As `npm start` and docker-compose.yml run the core; `--core-node-options ""` for V8's defaults.
const CORE_NODE_OPTIONS = arg("core-node-options", "--max-old-space-size=256");
const IDLE_SAMPLES = Number(arg("idle-samples", "6"));
const OUT = resolve(BENCH_DIR, arg("out", "results/scale.json"));
const log = (msg: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${msg}\n`);

const GATE = [
  "id: bench.gate",
  "version: 1",
  "title: A step behind an approval",
  "steps:",
  "  - { id: review, role: reviewer, type: dev.log, approval: {} }",
  "",
].join("\n");

function rssMiB(pid: number | undefined): number | null {
  if (!pid) return null;
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Math.round(Number(m[1]) / 1024) : null;
}

async function main(): Promise<void> {
  const started = Date.now();
  log(`idle scale: ${RUNS} runs parked at an approval gate`);
  const stack = await BenchStack.start({
    serviceEnv: { orchestrator: { ORCH_INSTANCE_ID: "bench-core", ...(CORE_NODE_OPTIONS ? { NODE_OPTIONS: CORE_NODE_OPTIONS } : {}) } },
  });
  const grpc = grpcClient(stack.grpcPort);
  const call = <T>(method: string, req: unknown): Promise<T> => grpc.call<T>(method, req);
  const nc = await connect({ servers: stack.nats.url, noAsyncTraces: true });
  try {
    // The gateway answering does not mean the core's gRPC port does yet.
    await waitFor(
      async () =>
        await call("PutDefinition", { text: GATE }).then(
          () => true,
          () => false,
        ),
      { timeoutMs: 30_000, intervalMs: 200, what: "the core's gRPC" },
    );
    let parked = 0;
    const sub = nc.subscribe(allTransitions(), {
      callback: (_err, msg) => {
        for (const e of transitionParts(msg.data, true).events) if (e.type === "step.awaiting_approval") parked++;
      },
    });

    // Create the runs, CONCURRENCY at a time.
    let next = 0;
    let created = 0;
    const t0 = Date.now();
    const worker = async () => {
      while (next < RUNS) {
        const i = next++;
        await call("CreateRun", { definition: { id: "bench.gate" }, project_id: `p${i % 10}`, title: `parked ${i}`, labels: { bench: "scale" } });
        created++;
        if (created % 10_000 === 0) {
          const pid = stack.services.get("orchestrator")!.pid;
          log(`  ${created} created, ${parked} parked (${Math.round(created / ((Date.now() - t0) / 1000))} runs/s); core RSS ${rssMiB(pid)} MiB`);
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    await waitFor(() => parked >= RUNS, { timeoutMs: 30 * 60_000, intervalMs: 500, what: "every run parked" });
    sub.unsubscribe();
    const parkSeconds = (Date.now() - t0) / 1000;
    log(`  ${RUNS} runs parked in ${parkSeconds.toFixed(0)} s`);

    const core = stack.services.get("orchestrator")!;
    const eventBus = stack.services.get("event-bus")!;
    // The core's RSS once it is idle: sampled for a while, the last sample kept (V8 gives memory back
    // lazily after a burst of work).
    let rss = { core: rssMiB(core.pid), eventBus: rssMiB(eventBus.pid) };
    for (let i = 0; i < IDLE_SAMPLES; i++) {
      await new Promise((r) => setTimeout(r, 5_000));
      rss = { core: rssMiB(core.pid), eventBus: rssMiB(eventBus.pid) };
      log(`  idle ${(i + 1) * 5} s: core ${rss.core} MiB, event-bus ${rss.eventBus} MiB`);
    }
    log(`  RSS after parking: core ${rss.core} MiB, event-bus ${rss.eventBus} MiB`);

    // A core that starts with them all parked (its cache empty, the runs in KV).
    await core.stop();
    await core.start(1).catch(() => undefined);
    // At warn the core logs no `ready` line: probe its gRPC port instead.
    await waitFor(
      async () =>
        await call("ListDefinitions", {}).then(
          () => true,
          () => false,
        ),
      { timeoutMs: 60_000, intervalMs: 200, what: "the core back" },
    );
    await new Promise((r) => setTimeout(r, 5_000));
    const rssRestarted = rssMiB(core.pid);
    log(`  RSS of a restarted core: ${rssRestarted} MiB`);

    // Listing.
    const index = await waitFor(
      async () => {
        const r = await call<{ total: string }>("ListRuns", { labels: { bench: "scale" }, limit: 1 });
        return Number(r.total) >= RUNS ? r : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 500, what: "the index to hold every run" },
    );
    void index;
    const kinds: Record<string, number[]> = { first: [], filtered: [], deep: [] };
    for (let round = 0; round < 200; round++) {
      let t = performance.now();
      await call("ListRuns", { limit: 50 });
      kinds.first!.push(performance.now() - t);
      t = performance.now();
      await call("ListRuns", { project_id: `p${round % 10}`, status: ["running"], definition_id: "bench.gate", limit: 50 });
      kinds.filtered!.push(performance.now() - t);
      // Twenty pages down a project's runs.
      if (round % 20 === 0) {
        let cursor = "";
        for (let page = 0; page < 20; page++) {
          t = performance.now();
          const r = await call<{ next_cursor: string }>("ListRuns", { project_id: `p${round % 10}`, limit: 50, cursor });
          kinds.deep!.push(performance.now() - t);
          cursor = r.next_cursor;
        }
      }
    }
    const list = Object.fromEntries(
      Object.entries(kinds).map(([k, v]) => [k, { n: v.length, p50: +percentile(v, 50)!.toFixed(2), p99: +percentile(v, 99)!.toFixed(2) }]),
    );
    const all = Object.values(kinds).flat();
    const listAll = { n: all.length, p50: +percentile(all, 50)!.toFixed(2), p99: +percentile(all, 99)!.toFixed(2) };
    log(`  ListRuns over ${RUNS} runs: p50 ${listAll.p50} ms, p99 ${listAll.p99} ms (${JSON.stringify(list)})`);

    const result = {
      at: new Date().toISOString(),
      runs: RUNS,
      coreNodeOptions: CORE_NODE_OPTIONS || null,
      parkSeconds: +parkSeconds.toFixed(1),
      rssMiB: { coreAfterParking: rss.core, coreRestarted: rssRestarted, eventBus: rss.eventBus },
      listMs: { all: listAll, ...list },
      targets: {
        coreRssMiB: { measured: Math.max(rss.core ?? 0, rssRestarted ?? 0), wanted: "<= 300" },
        listP99Ms: { measured: listAll.p99, wanted: "<= 50" },
      },
      seconds: Math.round((Date.now() - started) / 1000),
    };
    mkdirSync(dirname(OUT), { recursive: true });
    writeFileSync(OUT, `${JSON.stringify(result, null, 2)}\n`);
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } finally {
    grpc.close();
    await nc.close();
    await stack.stop();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
