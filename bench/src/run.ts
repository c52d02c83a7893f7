import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { startNats, type NatsServer } from "@orch/testing";
import { measure, type Measurement, type Target } from "./loop.js";
import { profileOrch, type ProfileRun } from "./profile.js";
import { RedisServer } from "./redis.js";
import { median, percentile, ratio, round } from "./stats.js";
import { BullmqChain } from "./suites/bullmq.js";
import { OrchSuite, type StepSamples, type SubmitVia } from "./suites/orch.js";
import { RawChain } from "./suites/raw.js";

/**
 * The benchmark runner: Orchestrator beside three references, 5-step workflows with a no-op step,
 * rounds interleaved (A, A with async traces, B, C, ours; A, …) so that drift in the machine hits
 * every suite alike, medians over rounds.
 *
 *   npm run build && npm run bench -w @orch/bench -- [options]
 *
 *   --suites raw,bullmq,orch   which suites; `profile` (or --profile) adds, after the rounds, one
 *                              measurement of ours with every service under a CPU profiler
 *   --rounds 5                 interleaved rounds
 *   --duration 8               seconds measured per throughput measurement
 *   --warmup 1                 seconds run before each measurement and not counted
 *   --latency-duration 4       seconds measured at 1 in flight
 *   --in-flight 100            workflows outstanding during throughput measurements
 *   --submit grpc|http         how ours submits jobs
 *   --bullmq-concurrency N     BullMQ Worker concurrency (default: --in-flight)
 *   --nats-bin PATH            another nats-server binary (e.g. Debian's 2.9)
 *   --out results/latest.json  where the JSON goes (relative to bench/)
 *   --label TEXT               what was measured (default: the repository's commit, `+dirty` if
 *                              services/, libs/ or proto/ have uncommitted changes)
 */

const SUITES = ["raw", "bullmq", "orch", "profile"] as const;
type SuiteName = (typeof SUITES)[number];

interface Options {
  suites: SuiteName[];
  rounds: number;
  durationMs: number;
  warmupMs: number;
  latencyMs: number;
  inFlight: number;
  submit: SubmitVia;
  natsBin: string | undefined;
  out: string;
  steps: number;
  bullmqConcurrency: number;
  label: string | null;
}

const BENCH_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..");

function parseArgs(argv: readonly string[]): Options {
  const get = (name: string) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const num = (name: string, def: number) => {
    const v = get(name);
    if (v === undefined) return def;
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a non-negative number, got ${v}`);
    return n;
  };
  const suites = (get("suites") ?? "raw,bullmq,orch")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  for (const s of suites) if (!(SUITES as readonly string[]).includes(s)) throw new Error(`unknown suite ${s} (known: ${SUITES.join(", ")})`);
  if (argv.includes("--profile") && !suites.includes("profile")) suites.push("profile");
  const submit = get("submit") ?? "grpc";
  if (submit !== "grpc" && submit !== "http") throw new Error("--submit must be grpc or http");
  return {
    suites: suites as SuiteName[],
    rounds: Math.floor(num("rounds", 5)),
    durationMs: num("duration", 8) * 1000,
    warmupMs: num("warmup", 1) * 1000,
    latencyMs: num("latency-duration", 4) * 1000,
    inFlight: Math.max(1, Math.floor(num("in-flight", 100))),
    submit,
    natsBin: get("nats-bin"),
    out: resolve(BENCH_DIR, get("out") ?? "results/latest.json"),
    steps: 5,
    bullmqConcurrency: Math.max(1, Math.floor(num("bullmq-concurrency", num("in-flight", 100)))),
    label: get("label") ?? sourceLabel(),
  };
}

/** The commit the services were built from, when the bench runs inside a git checkout. */
function sourceLabel(): string | null {
  const root = resolve(BENCH_DIR, "..");
  const head = spawnSync("git", ["-C", root, "rev-parse", "--short", "HEAD"], { encoding: "utf8" });
  if (head.status !== 0) return null;
  const dirty = spawnSync("git", ["-C", root, "status", "--porcelain", "--", "services", "libs", "proto"], { encoding: "utf8" });
  return `${head.stdout.trim()}${dirty.stdout.trim() ? "+dirty" : ""}`;
}

/** What one suite measured in one round. */
interface SuiteRound {
  throughput?: Measurement;
  latency?: Measurement;
  steps?: { atP50: number | null; atP99: number | null; seenP50: number | null; seenP99: number | null; samples: number };
}

type Key = "raw" | "raw-traces" | "bullmq-chained" | "bullmq-coordinator" | "orch";
const LABELS: Record<Key, string> = {
  raw: "A  raw JetStream chain (noAsyncTraces: true)",
  "raw-traces": "A' raw JetStream chain (noAsyncTraces: false)",
  "bullmq-chained": "B  BullMQ chained jobs",
  "bullmq-coordinator": "C  BullMQ + coordinator (run hash per step)",
  orch: "ours (5 services, gRPC CreateJob)",
};

const log = (msg: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${msg}\n`);

async function phase(label: string, target: Target, o: Options, inFlight: number, durationMs: number): Promise<Measurement> {
  const m = await measure(target, { inFlight, warmupMs: inFlight === 1 ? Math.min(o.warmupMs, 500) : o.warmupMs, durationMs });
  const lat = m.p50Ms === null ? "" : `  p50 ${m.p50Ms.toFixed(2)} ms  p99 ${(m.p99Ms ?? 0).toFixed(2)} ms`;
  log(`  ${label} @${inFlight}: ${m.wfPerSec.toFixed(0)} wf/s${lat}${m.failed ? `  FAILED ${m.failed}: ${m.failures.slice(0, 3).join("; ")}` : ""}`);
  return m;
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const started = Date.now();
  const want = (s: SuiteName) => o.suites.includes(s);
  log(`suites ${o.suites.join(",")}, ${o.rounds} rounds, ${o.durationMs / 1000} s per measurement at ${o.inFlight} in flight, ${o.latencyMs / 1000} s at 1`);

  // Long-lived parts, started once: a nats-server for the raw chain, a redis-server, our stack.
  let rawNats: NatsServer | undefined;
  let redis: RedisServer | undefined;
  let orch: OrchSuite | undefined;
  let orchNats: NatsServer | undefined;
  const rounds: Partial<Record<Key, SuiteRound>>[] = [];
  const allSteps: StepSamples = { atMs: [], seenMs: [] };
  let profile: ProfileRun | undefined;
  let natsVersion: string | null = null;
  try {
    if (want("raw")) rawNats = await startNats(o.natsBin ? { bin: o.natsBin } : {});
    if (want("bullmq")) redis = await RedisServer.start();
    if (want("orch")) {
      log("starting the stack (nats-server + 5 services)");
      // With --nats-bin the stack runs on a server we start (and stop) ourselves.
      orchNats = o.natsBin ? await startNats({ bin: o.natsBin }) : undefined;
      orch = await OrchSuite.start({ submit: o.submit, ...(orchNats ? { nats: orchNats } : {}) });
    }
    natsVersion = (rawNats ?? orch?.stack.nats)?.version.text ?? null;

    const anyRounds = rawNats !== undefined || redis !== undefined || orch !== undefined;
    for (let r = 1; anyRounds && r <= o.rounds; r++) {
      log(`round ${r}/${o.rounds}`);
      const round: Partial<Record<Key, SuiteRound>> = {};
      rounds.push(round);
      if (rawNats) {
        for (const noAsyncTraces of [true, false]) {
          const key: Key = noAsyncTraces ? "raw" : "raw-traces";
          const chain = await RawChain.start({ natsUrl: rawNats.url, natsPid: rawNats.pid, noAsyncTraces, steps: o.steps });
          try {
            const res: SuiteRound = { throughput: await phase(key, chain, o, o.inFlight, o.durationMs) };
            if (noAsyncTraces) res.latency = await phase(key, chain, o, 1, o.latencyMs);
            round[key] = res;
          } finally {
            await chain.stop();
          }
        }
      }
      if (redis) {
        for (const mode of ["chained", "coordinator"] as const) {
          const key: Key = mode === "chained" ? "bullmq-chained" : "bullmq-coordinator";
          const chain = await BullmqChain.start({ port: redis.port, redisPid: redis.pid, mode, concurrency: o.bullmqConcurrency, steps: o.steps });
          try {
            round[key] = { throughput: await phase(key, chain, o, o.inFlight, o.durationMs), latency: await phase(key, chain, o, 1, o.latencyMs) };
          } finally {
            await chain.stop();
          }
        }
      }
      if (orch) {
        const throughput = await phase("orch", orch, o, o.inFlight, o.durationMs);
        orch.beginStepCapture();
        const latency = await phase("orch", orch, o, 1, o.latencyMs);
        const steps = orch.endStepCapture();
        orch.stack.assertRunning();
        round.orch = { throughput, latency, steps: stepStats(steps) };
        log(
          `  orch steps: p50 ${steps.atMs.length ? percentile(steps.atMs, 50) : "-"} ms  p99 ${percentile(steps.atMs, 99) ?? "-"} ms (event at), ${steps.atMs.length} steps`,
        );
        allSteps.atMs.push(...steps.atMs);
        allSteps.seenMs.push(...steps.seenMs);
      }
    }
  } finally {
    await orch?.stop().catch((err: unknown) => log(`stopping the stack: ${(err as Error).message}`));
    await redis?.stop();
    await orchNats?.stop();
    await rawNats?.stop();
  }

  if (want("profile")) {
    log("profiling the services under load");
    profile = await profileOrch({
      dir: join(BENCH_DIR, "results", "profile"),
      submit: o.submit,
      inFlight: o.inFlight,
      warmupMs: o.warmupMs,
      durationMs: o.durationMs,
    });
  }

  natsVersion ??= profile?.natsVersion ?? null;
  const report = buildReport(o, rounds, allSteps, profile, natsVersion, Date.now() - started);
  mkdirSync(dirname(o.out), { recursive: true });
  writeFileSync(o.out, `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(render(report));
  log(`wrote ${o.out}`);
}

function stepStats(s: StepSamples): NonNullable<SuiteRound["steps"]> {
  return {
    atP50: percentile(s.atMs, 50),
    atP99: percentile(s.atMs, 99),
    seenP50: round(percentile(s.seenMs, 50), 3),
    seenP99: round(percentile(s.seenMs, 99), 3),
    samples: s.atMs.length,
  };
}

interface SuiteMedians {
  label: string;
  wfPerSec: number | null;
  p50Ms: number | null;
  p99Ms: number | null;
  /** Median % of one core per process during the throughput window. */
  cpu: Record<string, number>;
  /** The same as CPU milliseconds per workflow (what the suite costs, whatever the machine's size). */
  cpuMsPerWf: Record<string, number>;
  failed: number;
}

interface TargetCheck {
  name: string;
  value: number | null;
  target: string;
  met: boolean | null;
  /** The same ratio per round (paired: both sides measured in that round). */
  perRound?: (number | null)[];
}

function buildReport(
  o: Options,
  rounds: Partial<Record<Key, SuiteRound>>[],
  allSteps: StepSamples,
  profile: ProfileRun | undefined,
  natsVersion: string | null,
  elapsedMs: number,
) {
  const keys = (Object.keys(LABELS) as Key[]).filter((k) => rounds.some((r) => r[k]));
  const medians: Partial<Record<Key, SuiteMedians>> = {};
  for (const k of keys) {
    const rs = rounds.map((r) => r[k]).filter((x): x is SuiteRound => x !== undefined);
    const procs = new Set(rs.flatMap((x) => Object.keys(x.throughput?.cpu ?? {})));
    const cpu: Record<string, number> = {};
    for (const p of procs) cpu[p] = round(median(rs.map((x) => x.throughput?.cpu[p])), 1) ?? 0;
    const wfPerSec = round(median(rs.map((x) => x.throughput?.wfPerSec)), 1);
    const cpuMsPerWf: Record<string, number> = {};
    for (const [p, pct] of Object.entries(cpu)) if (wfPerSec) cpuMsPerWf[p] = round((pct * 10) / wfPerSec, 3) ?? 0;
    medians[k] = {
      label: k === "orch" && o.submit === "http" ? "ours (5 services, HTTP POST /jobs)" : LABELS[k],
      wfPerSec,
      p50Ms: round(median(rs.map((x) => x.latency?.p50Ms)), 2),
      p99Ms: round(median(rs.map((x) => x.latency?.p99Ms)), 2),
      cpu,
      cpuMsPerWf,
      failed: rs.reduce((n, x) => n + (x.throughput?.failed ?? 0) + (x.latency?.failed ?? 0), 0),
    };
  }
  const orchSteps = rounds.map((r) => r.orch?.steps).filter((x) => x !== undefined);
  const steps = orchSteps.length
    ? {
        p50Ms: median(orchSteps.map((s) => s.atP50)),
        p99Ms: median(orchSteps.map((s) => s.atP99)),
        pooledP50Ms: percentile(allSteps.atMs, 50),
        pooledP99Ms: percentile(allSteps.atMs, 99),
        seenP50Ms: round(median(orchSteps.map((s) => s.seenP50)), 3),
        seenP99Ms: round(median(orchSteps.map((s) => s.seenP99)), 3),
        samples: allSteps.atMs.length,
      }
    : undefined;

  const paired = (a: Key, b: Key, f: (x: SuiteRound) => number | null | undefined) =>
    rounds.map((r) => {
      const x = r[a];
      const y = r[b];
      return x && y ? round(ratio(f(x), f(y)), 3) : null;
    });
  const targets: TargetCheck[] = [];
  const ours = medians.orch;
  if (ours && medians.raw) {
    const v = round(ratio(ours.wfPerSec, medians.raw.wfPerSec), 3);
    targets.push({
      name: "throughput ours / raw JetStream chain (A)",
      value: v,
      target: ">= 0.5",
      met: v === null ? null : v >= 0.5,
      perRound: paired("orch", "raw", (x) => x.throughput?.wfPerSec),
    });
  }
  if (ours && medians["bullmq-chained"]) {
    const v = round(ratio(ours.wfPerSec, medians["bullmq-chained"].wfPerSec), 3);
    targets.push({
      name: "throughput ours / BullMQ chained (B)",
      value: v,
      target: ">= 1.0",
      met: v === null ? null : v >= 1.0,
      perRound: paired("orch", "bullmq-chained", (x) => x.throughput?.wfPerSec),
    });
    const l = round(ratio(ours.p50Ms, medians["bullmq-chained"].p50Ms), 3);
    targets.push({
      name: "p50 at 1 in flight, ours / BullMQ chained (B)",
      value: l,
      target: "<= 1.0",
      met: l === null ? null : l <= 1.0,
      perRound: paired("orch", "bullmq-chained", (x) => x.latency?.p50Ms),
    });
  }
  if (steps)
    targets.push({ name: "step p99 at 1 in flight, ours (ms)", value: steps.p99Ms, target: "<= 10", met: steps.p99Ms === null ? null : steps.p99Ms <= 10 });

  return {
    at: new Date().toISOString(),
    elapsedS: Math.round(elapsedMs / 1000),
    machine: {
      nproc: cpus().length,
      cpu: cpus()[0]?.model ?? "unknown",
      memGiB: Math.round(totalmem() / 2 ** 30),
      node: process.version,
      natsServer: natsVersion,
      redis: RedisServer.version(),
    },
    source: o.label,
    options: { ...o, out: undefined, label: undefined },
    medians,
    steps,
    targets,
    rounds,
    profile: profile && { measurement: profile.measurement, services: profile.services },
  };
}

type Report = ReturnType<typeof buildReport>;

const fmt = (v: number | null | undefined, digits = 0) => (typeof v === "number" ? v.toFixed(digits) : "–");

/** Markdown tables: paste-able into docs/benchmarks.md as they are. */
function render(r: Report): string {
  const out: string[] = [];
  out.push(
    `\n${r.machine.nproc} × ${r.machine.cpu}, Node ${r.machine.node}, nats-server ${r.machine.natsServer ?? "?"}, redis ${r.machine.redis ?? "?"}; services: ${r.source ?? "?"}`,
  );
  if (Object.keys(r.medians).length > 0) {
    out.push(
      `Medians of ${r.options.rounds} interleaved rounds; ${r.options.durationMs / 1000} s at ${r.options.inFlight} in flight, ${r.options.latencyMs / 1000} s at 1 in flight.\n`,
    );
    out.push(`| suite | wf/s @${r.options.inFlight} | p50 @1 (ms) | p99 @1 (ms) | CPU ms / wf | CPU @${r.options.inFlight} (% of one core) |`);
    out.push("| --- | ---: | ---: | ---: | ---: | --- |");
  }
  for (const m of Object.values(r.medians)) {
    const cpu = Object.entries(m.cpu)
      .sort((a, b) => b[1] - a[1])
      .map(([p, v]) => `${p} ${v.toFixed(0)}`)
      .join(", ");
    const cpuMs = Object.values(m.cpuMsPerWf).reduce((a, b) => a + b, 0);
    out.push(
      `| ${m.label}${m.failed ? ` (${m.failed} failed)` : ""} | ${fmt(m.wfPerSec)} | ${fmt(m.p50Ms, 2)} | ${fmt(m.p99Ms, 2)} | ${fmt(cpuMs, 2)} | ${cpu} |`,
    );
  }
  if (r.steps) {
    out.push(
      `\nOurs, step latency at 1 in flight (step.started.at → step.succeeded.at): p50 ${fmt(r.steps.p50Ms)} ms, p99 ${fmt(r.steps.p99Ms)} ms ` +
        `(median of rounds; pooled over ${r.steps.samples} steps: p50 ${fmt(r.steps.pooledP50Ms)}, p99 ${fmt(r.steps.pooledP99Ms)}); ` +
        `between the two events' arrival here: p50 ${fmt(r.steps.seenP50Ms, 2)} ms, p99 ${fmt(r.steps.seenP99Ms, 2)} ms.`,
    );
  }
  if (r.targets.length) {
    out.push("\n| target | measured | wanted | met | per round |");
    out.push("| --- | ---: | --- | --- | --- |");
    for (const t of r.targets) {
      out.push(
        `| ${t.name} | ${fmt(t.value, 2)} | ${t.target} | ${t.met === null ? "?" : t.met ? "yes" : "**no**"} | ${(t.perRound ?? []).map((x) => fmt(x, 2)).join(", ")} |`,
      );
    }
  }
  if (r.profile) {
    out.push(`\nProfile (${fmt(r.profile.measurement.wfPerSec)} wf/s while profiled): self time, % of each process's busy samples`);
    for (const s of r.profile.services) {
      out.push(`\n${s.service}: busy ${s.busyMs} ms of ${s.totalMs} ms sampled`);
      out.push(
        `  packages: ${s.topPackages
          .slice(0, 8)
          .map((p) => `${p.name} ${p.pct}%`)
          .join(", ")}`,
      );
      out.push("  self:");
      for (const f of s.topFunctions.slice(0, 10)) out.push(`  ${String(f.pct).padStart(5)}%  ${f.name}`);
      out.push("  inclusive:");
      for (const f of s.topInclusive.slice(0, 10)) out.push(`  ${String(f.pct).padStart(5)}%  ${f.name}`);
    }
  }
  return `${out.join("\n")}\n`;
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
