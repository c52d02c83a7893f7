import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { startNats, type NatsServer } from "@orch/testing";
import { measure, type Measurement, type Target } from "./loop.js";
import { SuiteSkipped } from "./peers.js";
import { profileOrch, type ProfileRun } from "./profile.js";
import { RedisServer } from "./redis.js";
import { median, percentile, ratio, round } from "./stats.js";
import { BullmqChain } from "./suites/bullmq.js";
import { DBOS_DURABILITY, DbosSuite } from "./suites/dbos.js";
import { OrchSuite, type StepSamples, type SubmitVia } from "./suites/orch.js";
import { RawChain } from "./suites/raw.js";
import { RESTATE_DURABILITY, RestateSuite } from "./suites/restate.js";

/**
 * The benchmark runner: Orchestrator beside the references (raw JetStream, BullMQ) and the durable
 * execution peers (Restate, DBOS), 5-step workflows with a no-op step, rounds interleaved (A, A with
 * async traces, B, C, Restate, DBOS, ours; A, …) so that drift in the machine hits every suite alike,
 * medians over rounds.
 *
 *   npm run build && npm run bench -w @orch/bench -- [options]
 *
 *   --suites raw,bullmq,restate,dbos,orch
 *                              which suites; `profile` (or --profile) adds, after the rounds, one
 *                              measurement of ours with every service under a CPU profiler. Restate's
 *                              and DBOS's npm packages are installed on first use (peers.ts); a suite
 *                              that cannot run here (offline, no redis-server) is skipped with a line
 *   --rounds 5                 interleaved rounds
 *   --duration 8               seconds measured per throughput measurement
 *   --warmup 1                 seconds run before each measurement and not counted
 *   --latency-duration 4       seconds measured at 1 in flight
 *   --in-flight 100            workflows outstanding during throughput measurements
 *   --submit grpc|http         how ours submits jobs
 *   --bullmq-concurrency N     BullMQ Worker concurrency (default: --in-flight)
 *   --nats-bin PATH            another nats-server binary (e.g. Debian's 2.9)
 *   --nats-sync default|always JetStream's sync for A and ours: its default (fsync in the background
 *                              every 2 min) or `sync_interval: always` (fsync before acknowledging;
 *                              nats-server >= 2.10), as Restate and DBOS do
 *   --baseline-wfs N           adds the target "ours >= 3x N wf/s" (N: an earlier measurement of ours)
 *   --out results/latest.json  where the JSON goes (relative to bench/)
 *   --label TEXT               what was measured (default: the repository's commit, `+dirty` if
 *                              services/, libs/ or proto/ have uncommitted changes)
 */

const SUITES = ["raw", "bullmq", "restate", "dbos", "orch", "profile"] as const;
type SuiteName = (typeof SUITES)[number];
const DEFAULT_SUITES = "raw,bullmq,restate,dbos,orch";
type NatsSync = "default" | "always";

interface Options {
  suites: SuiteName[];
  rounds: number;
  durationMs: number;
  warmupMs: number;
  latencyMs: number;
  inFlight: number;
  submit: SubmitVia;
  natsBin: string | undefined;
  natsSync: NatsSync;
  baselineWfs: number | null;
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
  const suites = (get("suites") ?? DEFAULT_SUITES)
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  for (const s of suites) if (!(SUITES as readonly string[]).includes(s)) throw new Error(`unknown suite ${s} (known: ${SUITES.join(", ")})`);
  if (argv.includes("--profile") && !suites.includes("profile")) suites.push("profile");
  const submit = get("submit") ?? "grpc";
  if (submit !== "grpc" && submit !== "http") throw new Error("--submit must be grpc or http");
  const natsSync = get("nats-sync") ?? "default";
  if (natsSync !== "default" && natsSync !== "always") throw new Error("--nats-sync must be default or always");
  const baseline = get("baseline-wfs");
  return {
    suites: suites as SuiteName[],
    rounds: Math.floor(num("rounds", 5)),
    durationMs: num("duration", 8) * 1000,
    warmupMs: num("warmup", 1) * 1000,
    latencyMs: num("latency-duration", 4) * 1000,
    inFlight: Math.max(1, Math.floor(num("in-flight", 100))),
    submit,
    natsBin: get("nats-bin"),
    natsSync,
    baselineWfs: baseline === undefined ? null : num("baseline-wfs", 0) || null,
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

type Key = "raw" | "raw-traces" | "bullmq-chained" | "bullmq-coordinator" | "restate" | "dbos" | "orch";
const LABELS: Record<Key, string> = {
  raw: "A  raw JetStream chain (noAsyncTraces: true)",
  "raw-traces": "A' raw JetStream chain (noAsyncTraces: false)",
  "bullmq-chained": "B  BullMQ chained jobs",
  "bullmq-coordinator": "C  BullMQ + coordinator (run hash per step)",
  restate: `Restate ${RestateSuite.version()} (service handler, ctx.run steps)`,
  dbos: `DBOS Transact ${DbosSuite.version()} (workflow, DBOS.runStep steps)`,
  orch: "ours (5 services, gRPC CreateJob)",
};

const SHORT: Record<Key, string> = {
  raw: "A",
  "raw-traces": "A'",
  "bullmq-chained": "B",
  "bullmq-coordinator": "C",
  restate: "Restate",
  dbos: "DBOS",
  orch: "ours",
};

/** What each suite has made durable when a step's result is acknowledged. */
function durabilityOf(k: Key, natsSync: NatsSync): string {
  const js =
    natsSync === "always"
      ? "JetStream file store, sync_interval: always (fsync before a write is acknowledged)"
      : "JetStream file store, default sync (fsync in the background every 2 min, after acknowledging)";
  switch (k) {
    case "raw":
    case "raw-traces":
    case "orch":
      return js;
    case "bullmq-chained":
    case "bullmq-coordinator":
      return "none: redis-server --save '' --appendonly no (nothing written to disk)";
    case "restate":
      return RESTATE_DURABILITY;
    case "dbos":
      return DBOS_DURABILITY;
  }
}

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

  // Long-lived parts, started once: a nats-server for the raw chain, a redis-server, Restate (server
  // and endpoint), PostgreSQL and the DBOS worker, our stack.
  let rawNats: NatsServer | undefined;
  let redis: RedisServer | undefined;
  let restate: RestateSuite | undefined;
  let dbos: DbosSuite | undefined;
  let orch: OrchSuite | undefined;
  let orchNats: NatsServer | undefined;
  const rounds: Partial<Record<Key, SuiteRound>>[] = [];
  const allSteps: StepSamples = { atMs: [], seenMs: [] };
  const skipped: Partial<Record<SuiteName, string>> = {};
  let profile: ProfileRun | undefined;
  let natsVersion: string | null = null;
  let postgresVersion: string | null = null;
  /** Starts a suite's parts, or skips the suite (one line) when it cannot run here. */
  const optional = async <T>(name: SuiteName, start: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await start();
    } catch (err) {
      if (!(err instanceof SuiteSkipped)) throw err;
      skipped[name] = err.message;
      log(`${name}: skipped: ${err.message}`);
      return undefined;
    }
  };
  // --nats-sync always: A and ours on servers started with `sync_interval: always`.
  const natsOpts = { ...(o.natsBin ? { bin: o.natsBin } : {}), ...(o.natsSync === "always" ? { syncAlways: true } : {}) };
  const checkSync = (nats: NatsServer) => {
    const v = nats.version;
    if (o.natsSync === "always" && v.major === 2 && v.minor < 10) throw new Error(`--nats-sync always needs nats-server >= 2.10 (this one is ${v.text})`);
    return nats;
  };
  try {
    if (want("raw")) checkSync((rawNats = await startNats(natsOpts)));
    if (want("bullmq")) {
      redis = await optional("bullmq", async () => {
        if (RedisServer.version() === null) throw new SuiteSkipped("redis-server not found (apt-get install -y redis-server)");
        return RedisServer.start();
      });
    }
    if (want("restate")) {
      log("starting Restate (restate-server + SDK endpoint)");
      restate = await optional("restate", () => RestateSuite.start({ steps: o.steps, inFlight: o.inFlight, log }));
    }
    if (want("dbos")) {
      log("starting DBOS (PostgreSQL + DBOS worker)");
      dbos = await optional("dbos", () => DbosSuite.start({ steps: o.steps, inFlight: o.inFlight, log }));
      postgresVersion = dbos?.postgresVersion ?? null;
    }
    if (want("orch")) {
      log("starting the stack (nats-server + 5 services)");
      // With --nats-bin or --nats-sync always the stack runs on a server we start (and stop) ourselves.
      if (o.natsBin || o.natsSync === "always") checkSync((orchNats = await startNats(natsOpts)));
      orch = await OrchSuite.start({ submit: o.submit, ...(orchNats ? { nats: orchNats } : {}) });
    }
    natsVersion = (rawNats ?? orch?.stack.nats)?.version.text ?? null;

    const anyRounds = rawNats !== undefined || redis !== undefined || restate !== undefined || dbos !== undefined || orch !== undefined;
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
      for (const [key, peer] of [
        ["restate", restate],
        ["dbos", dbos],
      ] as const) {
        if (peer) round[key] = { throughput: await phase(key, peer, o, o.inFlight, o.durationMs), latency: await phase(key, peer, o, 1, o.latencyMs) };
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
    await restate?.stop().catch((err: unknown) => log(`stopping Restate: ${(err as Error).message}`));
    await dbos?.stop().catch((err: unknown) => log(`stopping DBOS: ${(err as Error).message}`));
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
  const report = buildReport(o, rounds, allSteps, profile, { natsServer: natsVersion, postgres: postgresVersion }, skipped, Date.now() - started);
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
  /** What is on disk when a step's result is acknowledged. */
  durability: string;
}

interface TargetCheck {
  name: string;
  value: number | null;
  target: string;
  /** null: not measured (the suites it needs did not run, or another --nats-sync). */
  met: boolean | null;
  /** The same ratio per round (paired: both sides measured in that round). */
  perRound?: (number | null)[];
  /** Why it was not measured, or what it was compared with. */
  note?: string;
}

function buildReport(
  o: Options,
  rounds: Partial<Record<Key, SuiteRound>>[],
  allSteps: StepSamples,
  profile: ProfileRun | undefined,
  versions: { natsServer: string | null; postgres: string | null },
  skipped: Partial<Record<SuiteName, string>>,
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
      durability: durabilityOf(k, o.natsSync),
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
  const check = (
    name: string,
    value: number | null,
    op: ">=" | "<=",
    bound: number,
    extra: Pick<TargetCheck, "perRound" | "note"> & { shown?: string } = {},
    missing?: string,
  ) => {
    const { shown, ...rest } = extra;
    const met = value === null ? null : op === ">=" ? value >= bound : value <= bound;
    const target = `${op} ${shown ?? (Number.isInteger(bound) ? bound.toFixed(1) : String(bound))}`;
    targets.push({ name, value, target, met, ...rest, ...(value === null ? { note: rest.note ?? missing ?? "not measured" } : {}) });
  };
  const needs = (...ks: Key[]) => {
    const absent = ks.filter((k) => !medians[k]);
    return absent.length ? `not measured: ${absent.map((k) => SHORT[k]).join(", ")} did not run` : undefined;
  };

  if (o.baselineWfs !== null) {
    const bound = round(3 * o.baselineWfs, 1) ?? 0;
    check(`throughput ours (wf/s) vs 3x the baseline ${o.baselineWfs} wf/s`, ours?.wfPerSec ?? null, ">=", bound, { shown: `${bound} wf/s` }, needs("orch"));
  }
  check("throughput ours / raw JetStream chain (A)", round(ratio(ours?.wfPerSec, medians.raw?.wfPerSec), 3), ">=", 0.25, {
    perRound: paired("orch", "raw", (x) => x.throughput?.wfPerSec),
    ...(needs("orch", "raw") ? { note: needs("orch", "raw") } : {}),
  });
  check("p50 at 1 in flight, ours / BullMQ chained (B)", round(ratio(ours?.p50Ms, medians["bullmq-chained"]?.p50Ms), 3), "<=", 2.0, {
    perRound: paired("orch", "bullmq-chained", (x) => x.latency?.p50Ms),
    ...(needs("orch", "bullmq-chained") ? { note: needs("orch", "bullmq-chained") } : {}),
  });
  check("step p99 at 1 in flight, ours (ms)", steps?.p99Ms ?? null, "<=", 7, { shown: "7 ms" }, needs("orch"));

  // Ours against the faster of the durable-execution peers that ran, at --in-flight, per JetStream sync.
  const peers = (["restate", "dbos"] as const).filter((k) => medians[k]);
  const peerWfs = peers.map((k) => medians[k]?.wfPerSec).filter((x): x is number => typeof x === "number");
  const vsPeers = peerWfs.length ? round(ratio(ours?.wfPerSec, Math.max(...peerWfs)), 3) : null;
  const vsPeersPerRound = rounds.map((r) => {
    const xs = peers.map((k) => r[k]?.throughput?.wfPerSec).filter((x): x is number => typeof x === "number");
    return xs.length ? round(ratio(r.orch?.throughput?.wfPerSec, Math.max(...xs)), 3) : null;
  });
  const peerNote = peers.length
    ? `vs ${peers.map((k) => `${k === "restate" ? "Restate" : "DBOS"} ${medians[k]?.wfPerSec ?? "–"}`).join(", ")} wf/s`
    : "not measured: neither Restate nor DBOS ran";
  const peerMissing = !ours ? needs("orch") : peers.length === 0 ? peerNote : undefined;
  for (const sync of ["default", "always"] as const) {
    const name =
      sync === "default"
        ? `throughput @${o.inFlight} ours / max(Restate, DBOS), JetStream default sync`
        : `throughput @${o.inFlight} ours / max(Restate, DBOS), --nats-sync always`;
    const bound = sync === "default" ? 1.5 : 1.0;
    if (o.natsSync !== sync) {
      check(name, null, ">=", bound, { note: `not measured: this run used ${o.natsSync === "always" ? "--nats-sync always" : "JetStream's default sync"}` });
      continue;
    }
    check(name, vsPeers, ">=", bound, { perRound: vsPeersPerRound, note: peerMissing ?? peerNote });
  }

  return {
    at: new Date().toISOString(),
    elapsedS: Math.round(elapsedMs / 1000),
    machine: {
      nproc: cpus().length,
      cpu: cpus()[0]?.model ?? "unknown",
      memGiB: Math.round(totalmem() / 2 ** 30),
      node: process.version,
      natsServer: versions.natsServer,
      natsSync: o.natsSync,
      redis: RedisServer.version(),
      restate: medians.restate ? RestateSuite.version() : null,
      dbos: medians.dbos ? DbosSuite.version() : null,
      postgres: medians.dbos ? versions.postgres : null,
    },
    source: o.label,
    options: { ...o, out: undefined, label: undefined },
    skipped,
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
  const peers = [
    r.machine.restate ? `Restate ${r.machine.restate}` : null,
    r.machine.dbos ? `DBOS Transact ${r.machine.dbos}` : null,
    r.machine.postgres ? `PostgreSQL ${r.machine.postgres}` : null,
  ].filter(Boolean);
  out.push(
    `\n${r.machine.nproc} × ${r.machine.cpu}, Node ${r.machine.node}, nats-server ${r.machine.natsServer ?? "?"}, redis ${r.machine.redis ?? "?"}` +
      `${peers.length ? `, ${peers.join(", ")}` : ""}; services: ${r.source ?? "?"}`,
  );
  out.push(
    `JetStream sync (A and ours): ${r.options.natsSync === "always" ? "sync_interval: always (--nats-sync always)" : "the server's default (--nats-sync default)"}.`,
  );
  for (const [name, why] of Object.entries(r.skipped)) out.push(`Skipped ${name}: ${why}`);
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
  if (Object.keys(r.medians).length > 0) {
    out.push("\nDurability (what is on disk when a step's result is acknowledged):");
    for (const m of Object.values(r.medians)) out.push(`- ${m.label}: ${m.durability}`);
  }
  if (r.steps) {
    out.push(
      `\nOurs, step latency at 1 in flight (step.started.at → step.succeeded.at): p50 ${fmt(r.steps.p50Ms)} ms, p99 ${fmt(r.steps.p99Ms)} ms ` +
        `(median of rounds; pooled over ${r.steps.samples} steps: p50 ${fmt(r.steps.pooledP50Ms)}, p99 ${fmt(r.steps.pooledP99Ms)}); ` +
        `between the two events' arrival here: p50 ${fmt(r.steps.seenP50Ms, 2)} ms, p99 ${fmt(r.steps.seenP99Ms, 2)} ms.`,
    );
  }
  if (r.targets.length) {
    out.push("\n| target | measured | wanted | met | per round | note |");
    out.push("| --- | ---: | --- | --- | --- | --- |");
    for (const t of r.targets) {
      const met = t.value === null ? "not measured" : t.met ? "yes" : "**no**";
      const perRound = (t.perRound ?? []).some((x) => x !== null) ? (t.perRound ?? []).map((x) => fmt(x, 2)).join(", ") : "";
      out.push(`| ${t.name} | ${fmt(t.value, 2)} | ${t.target} | ${met} | ${perRound} | ${t.note ?? ""} |`);
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
