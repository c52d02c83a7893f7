import { mkdirSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import autocannon from "autocannon";
import { waitFor } from "@orch/testing";
import { JsonClient, httpGet } from "./httpc.js";
import { CpuMeter } from "./proc.js";
import { BenchStack } from "./stack.js";
import { JOB } from "./suites/orch.js";
import { median, round } from "./stats.js";

/**
 * Job creation over HTTP on the whole system (stub agents, `ORCH_LOG_LEVEL=warn`, the gateway's rate
 * limit raised for the benchmark): autocannon with `--connections` keep-alive connections POSTing
 * seed 000 jobs (`POST /api/orchestrator/jobs`, the 5-step `dev.log` job of the orch suite) for
 * `--seconds`, while the jobs run. Requests/s, latency p50/p97.5/p99, non-2xx responses; then how many
 * of the created jobs finished within `--settle` seconds after the load, from a uniform sample of
 * them read back with `GET /api/orchestrator/jobs/:id` (its `finished_at`). A fresh stack per round
 * (the previous round's backlog would otherwise still be running); medians of `--rounds`.
 *
 *   npm run bench:http -w @orch/bench -- [--rounds 3] [--connections 50] [--seconds 10] [--settle 30]
 *                                        [--sample 500] [--out results/http.json]
 *
 * The issue's target (reported, not asserted): >= 3,000 requests/s with p99 <= 20 ms.
 */

const BENCH_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const arg = (name: string, def: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : def;
};
const num = (name: string, def: number) => {
  const v = Number(arg(name, String(def)));
  if (!Number.isFinite(v) || v < 0) throw new Error(`--${name} must be a non-negative number`);
  return v;
};
const ROUNDS = Math.max(1, Math.floor(num("rounds", 3)));
const CONNECTIONS = Math.max(1, Math.floor(num("connections", 50)));
const SECONDS = num("seconds", 10);
const SETTLE_S = num("settle", 30);
const SAMPLE = Math.max(1, Math.floor(num("sample", 500)));
const OUT = resolve(BENCH_DIR, arg("out", "results/http.json"));
const TARGET = { rps: 3000, p99Ms: 20 };
const PATH = "/api/orchestrator/jobs";
const TERMINAL = new Set(["succeeded", "failed", "canceled"]);

const log = (msg: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${msg}\n`);

interface JobView {
  status?: string;
  finished_at?: string;
}

interface HttpRound {
  requestsPerSec: number;
  requests: number;
  p50Ms: number;
  p975Ms: number;
  p99Ms: number;
  maxMs: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  /** Jobs created (a job id answered). */
  created: number;
  sampled: number;
  /** Of the sample: finished (any terminal status) within --settle s after the load ended. */
  sampleFinished: number;
  sampleStatuses: Record<string, number>;
  /** The sample's fraction applied to every job created. */
  finishedEstimate: number;
  finishedPct: number;
  /** How long after the load the sample had wholly finished (null: not within --settle). */
  drainedAfterMs: number | null;
  /** % of one core per process during the load. */
  cpu: Record<string, number>;
}

/** A uniform sample of `k` items (partial Fisher-Yates). */
function sample<T>(xs: readonly T[], k: number): T[] {
  const a = [...xs];
  const n = Math.min(k, a.length);
  for (let i = 0; i < n; i++) {
    const j = i + Math.floor(Math.random() * (a.length - i));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a.slice(0, n);
}

async function jobView(base: string, id: string): Promise<JobView | null> {
  const r = await httpGet(`${base}${PATH}/${id}`).catch(() => undefined);
  return r?.status === 200 ? (JSON.parse(r.text) as JobView) : null;
}

async function oneRound(r: number): Promise<HttpRound> {
  log(`round ${r}/${ROUNDS}: starting the stack`);
  const stack = await BenchStack.start({ env: { ORCH_RATE_LIMIT_MAX: "1000000" } });
  try {
    // Readiness of the job path through the public API: a first job, created and finished.
    const client = new JsonClient(stack.baseUrl, 1);
    const first = await waitFor(
      async () => {
        const res = await client.post(PATH, JOB);
        return res.status === 200 ? (JSON.parse(res.text) as { job_id: string }).job_id : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 200, what: "a first job accepted" },
    );
    client.close();
    await waitFor(async () => TERMINAL.has((await jobView(stack.baseUrl, first))?.status ?? ""), {
      timeoutMs: 60_000,
      intervalMs: 100,
      what: "a first job finished",
    });

    const ids: string[] = [];
    const body = JSON.stringify(JOB);
    const meter = new CpuMeter(() => {
      const out: Record<string, number | undefined> = { "nats-server": stack.nats.pid };
      for (const [name, s] of stack.services) out[name] = s.pid;
      return out;
    });
    meter.begin();
    const result = await autocannon({
      url: stack.baseUrl,
      connections: CONNECTIONS,
      duration: SECONDS,
      requests: [
        {
          method: "POST",
          path: PATH,
          headers: { "content-type": "application/json" },
          body,
          onResponse: (status: number, text: string) => {
            if (status !== 200) return;
            const id = (JSON.parse(text) as { job_id?: unknown }).job_id;
            if (typeof id === "string") ids.push(id);
          },
        },
      ],
    });
    const cpu = meter.end();
    const loadEnd = Date.now();
    log(
      `  ${Math.round(result.requests.average)} req/s, p50 ${result.latency.p50} ms, p97.5 ${result.latency.p97_5} ms, p99 ${result.latency.p99} ms, ` +
        `non-2xx ${result.non2xx}, errors ${result.errors}; ${ids.length} jobs created`,
    );

    // Which of a sample of the created jobs finished within --settle s (by their finished_at).
    const picked = sample(ids, SAMPLE);
    const finishedAt = new Map<string, number>();
    const statuses: Record<string, number> = {};
    const deadline = loadEnd + SETTLE_S * 1000;
    let drainedAfterMs: number | null = null;
    for (;;) {
      const open = picked.filter((id) => !finishedAt.has(id));
      for (let i = 0; i < open.length; i += 25) {
        await Promise.all(
          open.slice(i, i + 25).map(async (id) => {
            const v = await jobView(stack.baseUrl, id);
            if (v && TERMINAL.has(v.status ?? "")) {
              finishedAt.set(id, v.finished_at ? Date.parse(v.finished_at) : Date.now());
              statuses[v.status!] = (statuses[v.status!] ?? 0) + 1;
            }
          }),
        );
      }
      if (finishedAt.size === picked.length) {
        drainedAfterMs = Math.max(0, ...[...finishedAt.values()].map((t) => t - loadEnd));
        break;
      }
      if (Date.now() > deadline) break;
      await new Promise((res) => setTimeout(res, 1000));
    }
    stack.assertRunning();
    const sampleFinished = [...finishedAt.values()].filter((t) => t <= deadline).length;
    if (drainedAfterMs !== null && drainedAfterMs > SETTLE_S * 1000) drainedAfterMs = null;
    const frac = picked.length ? sampleFinished / picked.length : 0;
    const out: HttpRound = {
      requestsPerSec: Math.round(result.requests.average),
      requests: result.requests.total,
      p50Ms: result.latency.p50,
      p975Ms: result.latency.p97_5,
      p99Ms: result.latency.p99,
      maxMs: result.latency.max,
      non2xx: result.non2xx,
      errors: result.errors,
      timeouts: result.timeouts,
      created: ids.length,
      sampled: picked.length,
      sampleFinished,
      sampleStatuses: statuses,
      finishedEstimate: Math.round(frac * ids.length),
      finishedPct: round(frac * 100, 1) ?? 0,
      drainedAfterMs,
      cpu,
    };
    log(
      `  within ${SETTLE_S} s after the load: ${sampleFinished}/${picked.length} sampled jobs finished (${out.finishedPct} %, ~${out.finishedEstimate} of ${ids.length})` +
        `${drainedAfterMs !== null ? `; all sampled finished ${(drainedAfterMs / 1000).toFixed(1)} s after the load` : ""}`,
    );
    return out;
  } finally {
    await stack.stop();
  }
}

async function main(): Promise<void> {
  log(`HTTP job creation: ${CONNECTIONS} connections × ${SECONDS} s of POST ${PATH}, ${ROUNDS} rounds, jobs followed for ${SETTLE_S} s after`);
  const rounds: HttpRound[] = [];
  for (let r = 1; r <= ROUNDS; r++) rounds.push(await oneRound(r));

  const med = (f: (x: HttpRound) => number | null) => median(rounds.map(f));
  const procs = [...new Set(rounds.flatMap((x) => Object.keys(x.cpu)))];
  const medians = {
    requestsPerSec: med((x) => x.requestsPerSec),
    p50Ms: med((x) => x.p50Ms),
    p975Ms: med((x) => x.p975Ms),
    p99Ms: med((x) => x.p99Ms),
    non2xx: med((x) => x.non2xx),
    errors: med((x) => x.errors + x.timeouts),
    created: med((x) => x.created),
    finishedEstimate: med((x) => x.finishedEstimate),
    finishedPct: med((x) => x.finishedPct),
    cpu: Object.fromEntries(procs.map((p) => [p, round(median(rounds.map((x) => x.cpu[p])), 1)])),
  };
  const met = medians.requestsPerSec !== null && medians.p99Ms !== null && medians.requestsPerSec >= TARGET.rps && medians.p99Ms <= TARGET.p99Ms;
  const report = {
    at: new Date().toISOString(),
    machine: { nproc: cpus().length, cpu: cpus()[0]?.model ?? "unknown", node: process.version },
    options: { rounds: ROUNDS, connections: CONNECTIONS, seconds: SECONDS, settleS: SETTLE_S, sample: SAMPLE, job: JOB },
    target: { ...TARGET, met },
    medians,
    rounds,
  };
  mkdirSync(dirname(OUT), { recursive: true });
  writeFileSync(OUT, `${JSON.stringify(report, null, 2)}\n`);

  const f = (v: number | null | undefined, d = 0) => (typeof v === "number" ? v.toFixed(d) : "–");
  const out: string[] = [];
  out.push(
    `\n${report.machine.nproc} × ${report.machine.cpu}, Node ${report.machine.node}. POST ${PATH} (seed 000, 5 dev.log steps, stub agents), ` +
      `${CONNECTIONS} connections × ${SECONDS} s (autocannon), jobs running meanwhile; medians of ${ROUNDS} rounds, a fresh stack each.\n`,
  );
  out.push(`| | req/s | p50 (ms) | p97.5 (ms) | p99 (ms) | non-2xx | errors | jobs created | finished within ${SETTLE_S} s after |`);
  out.push("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
  rounds.forEach((x, i) =>
    out.push(
      `| round ${i + 1} | ${f(x.requestsPerSec)} | ${f(x.p50Ms)} | ${f(x.p975Ms)} | ${f(x.p99Ms)} | ${x.non2xx} | ${x.errors + x.timeouts} | ${x.created} | ` +
        `~${x.finishedEstimate} (${x.sampleFinished}/${x.sampled} sampled) |`,
    ),
  );
  out.push(
    `| **median** | **${f(medians.requestsPerSec)}** | **${f(medians.p50Ms)}** | ${f(medians.p975Ms)} | **${f(medians.p99Ms)}** | ${f(medians.non2xx)} | ${f(medians.errors)} | ` +
      `${f(medians.created)} | ~${f(medians.finishedEstimate)} (${f(medians.finishedPct, 1)} %) |`,
  );
  out.push(
    `\nCPU during the load (% of one core, medians): ${Object.entries(medians.cpu)
      .sort((a, b) => (b[1] ?? 0) - (a[1] ?? 0))
      .map(([p, v]) => `${p} ${f(v)}`)
      .join(", ")}`,
  );
  out.push(
    `\nTarget (the issue): >= ${TARGET.rps.toLocaleString("en")} requests/s with p99 <= ${TARGET.p99Ms} ms: ` +
      `${f(medians.requestsPerSec)} req/s, p99 ${f(medians.p99Ms)} ms: ${met ? "met" : "**not met**"}.`,
  );
  process.stdout.write(`${out.join("\n")}\n`);
  log(`wrote ${OUT}`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
