import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { SERVICE_NAMES, type ServiceName } from "@orch/testing";
import { measure, type Measurement } from "./loop.js";
import { distPath } from "./proc.js";
import { OrchSuite, type SubmitVia } from "./suites/orch.js";

/**
 * Where ours spends its CPU: the same 100-in-flight load on a stack whose five services carry a
 * sampling profiler (1 ms; see cpu-profile-preload.ts) started and stopped by signals at the edges of
 * the measured window, so start-up and warm-up are not in it. Each profile is reduced to self time
 * per function and per package, and inclusive time per function.
 */

interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: CpuProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileEntry {
  name: string;
  selfMs: number;
  /** % of the samples that were not idle. */
  pct: number;
}

export interface ServiceProfile {
  service: string;
  /** Sampled time, ms; busy = not `(idle)`. */
  totalMs: number;
  busyMs: number;
  topFunctions: ProfileEntry[];
  topPackages: ProfileEntry[];
  /** Time with the function anywhere on the stack (each sample counted once per function). */
  topInclusive: ProfileEntry[];
}

const SPECIAL = new Set(["(garbage collector)", "(program)", "(idle)", "(root)"]);

/** Who owns a frame: a package, a Node built-in, one of our workspaces, or V8 itself. */
export function packageOf(url: string, fn: string): string {
  if (SPECIAL.has(fn)) return fn;
  if (!url) return "(native)";
  const nm = url.lastIndexOf("/node_modules/");
  if (nm >= 0) {
    const parts = url.slice(nm + "/node_modules/".length).split("/");
    return parts[0]?.startsWith("@") ? `${parts[0]}/${parts[1] ?? ""}` : (parts[0] ?? url);
  }
  if (url.startsWith("node:")) return url.split("/")[0] ?? url;
  const ours = /\/(libs|services|proto|bench)\/([^/]+)\//.exec(url);
  if (ours) return ours[1] === "proto" ? "@orch/proto" : ours[1] === "libs" ? `@orch/${ours[2]}` : `${ours[1]}/${ours[2]}`;
  return url;
}

const shortUrl = (url: string) => {
  const nm = url.lastIndexOf("/node_modules/");
  if (nm >= 0) return url.slice(nm + "/node_modules/".length);
  const m = /\/((?:libs|services|proto|bench)\/.*)$/.exec(url);
  return m?.[1] ?? url.replace(/^file:\/\//, "");
};

/** Plumbing every stack passes through: inclusive time says nothing about it. */
const PLUMBING = new Set([
  "(root)",
  "(program)",
  "(idle)",
  "runMicrotasks",
  "processTicksAndRejections",
  "listOnTimeout",
  "processTimers",
  "emit",
  "emitReadable_",
  "addChunk",
  "readableAddChunk",
  "onStreamRead",
  "Readable.push",
  "",
]);

const frameName = (f: CpuProfileNode["callFrame"]) =>
  SPECIAL.has(f.functionName) || !f.url ? f.functionName || "(anonymous)" : `${f.functionName || "(anonymous)"} ${shortUrl(f.url)}:${f.lineNumber + 1}`;

export function summarise(service: string, profile: CpuProfile, top = 15): ServiceProfile {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfUs = new Map<number, number>();
  // timeDeltas[i] is the gap before sample i, so sample i lasted until timeDeltas[i + 1].
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    const dt = profile.timeDeltas[i + 1] ?? 0;
    selfUs.set(id, (selfUs.get(id) ?? 0) + dt);
  }
  const fns = new Map<string, number>();
  const pkgs = new Map<string, number>();
  const incl = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const [id, us] of selfUs) {
    const n = byId.get(id);
    if (!n) continue;
    const { functionName, url } = n.callFrame;
    total += us;
    if (functionName === "(idle)") {
      idle += us;
      continue;
    }
    const fname = frameName(n.callFrame);
    fns.set(fname, (fns.get(fname) ?? 0) + us);
    const seen = new Set<string>();
    for (let c: number | undefined = id; c !== undefined; c = parent.get(c)) {
      const f = byId.get(c)?.callFrame;
      if (!f || PLUMBING.has(f.functionName) || f.url.startsWith("node:")) continue;
      seen.add(frameName(f));
    }
    for (const name of seen) incl.set(name, (incl.get(name) ?? 0) + us);
    const pkg = packageOf(url, functionName);
    pkgs.set(pkg, (pkgs.get(pkg) ?? 0) + us);
  }
  const busy = total - idle;
  const rank = (m: Map<string, number>): ProfileEntry[] =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, selfMs: Math.round(us / 100) / 10, pct: busy > 0 ? Math.round((us / busy) * 1000) / 10 : 0 }));
  return {
    service,
    totalMs: Math.round(total / 1000),
    busyMs: Math.round(busy / 1000),
    topFunctions: rank(fns),
    topPackages: rank(pkgs),
    topInclusive: rank(incl),
  };
}

export interface ProfileRun {
  measurement: Measurement;
  services: ServiceProfile[];
  dir: string;
  natsVersion: string;
}

/** Runs the profiled load and reads back one profile per service. */
export async function profileOrch(opts: { dir: string; submit: SubmitVia; inFlight: number; warmupMs: number; durationMs: number }): Promise<ProfileRun> {
  rmSync(opts.dir, { recursive: true, force: true });
  const serviceEnv: Partial<Record<ServiceName, Record<string, string>>> = {};
  for (const name of SERVICE_NAMES) {
    const dir = join(opts.dir, name);
    mkdirSync(dir, { recursive: true });
    const inherited = process.env.NODE_OPTIONS ? `${process.env.NODE_OPTIONS} ` : "";
    serviceEnv[name] = { NODE_OPTIONS: `${inherited}--import ${distPath("./cpu-profile-preload.js")}`, BENCH_CPU_PROF_DIR: dir };
  }
  const suite = await OrchSuite.start({ submit: opts.submit, serviceEnv });
  let measurement: Measurement;
  const natsVersion = suite.stack.nats.version.text;
  try {
    const signal = () => {
      for (const s of suite.stack.services.values()) if (s.pid !== undefined) process.kill(s.pid, "SIGUSR2");
    };
    measurement = await measure(suite, { inFlight: opts.inFlight, warmupMs: opts.warmupMs, durationMs: opts.durationMs, onWindow: signal });
  } finally {
    await suite.stop();
  }
  const services: ServiceProfile[] = [];
  for (const name of SERVICE_NAMES) {
    const dir = join(opts.dir, name);
    const file = existsSync(dir) ? readdirSync(dir).find((f) => f.endsWith(".cpuprofile")) : undefined;
    if (!file) continue;
    services.push(summarise(name, JSON.parse(readFileSync(join(dir, file), "utf8")) as CpuProfile));
  }
  return { measurement, services, dir: opts.dir, natsVersion };
}
