import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** Clock ticks per second for /proc/<pid>/stat times (100 on every Linux we run on; asked once). */
const CLK_TCK = (() => {
  const r = spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" });
  const n = Number(r.stdout?.trim());
  return Number.isFinite(n) && n > 0 ? n : 100;
})();

/** The fields after the command name of /proc/<pid>/stat (the name may contain spaces and parentheses). */
function statFields(pid: number): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  } catch {
    return null;
  }
}

/** CPU time (user + system, ms) a process has used so far, or null where /proc cannot tell (not Linux, gone). */
export function cpuMsOf(pid: number): number | null {
  const rest = statFields(pid);
  if (!rest) return null;
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) return null;
  return ((utime + stime) * 1000) / CLK_TCK;
}

/**
 * CPU time (ms) of a process and all its descendants: each live process's own time plus the time of
 * the children it has reaped (cutime + cstime), so a child that exits between two readings still
 * counts, in its parent's total. For servers made of several processes (PostgreSQL: a postmaster, a
 * backend per connection, the WAL writer, the checkpointer…).
 */
export function treeCpuMsOf(root: number): number | null {
  const children = new Map<number, number[]>();
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return null;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const ppid = Number(statFields(Number(e))?.[1]);
    if (!Number.isFinite(ppid)) continue;
    const list = children.get(ppid) ?? [];
    list.push(Number(e));
    children.set(ppid, list);
  }
  let ticks = 0;
  let seen = false;
  const stack = [root];
  while (stack.length > 0) {
    const pid = stack.pop()!;
    const rest = statFields(pid);
    if (!rest) continue;
    const t = [11, 12, 13, 14].map((i) => Number(rest[i]));
    if (t.some((x) => !Number.isFinite(x))) continue;
    ticks += t.reduce((a, b) => a + b, 0);
    seen = true;
    stack.push(...(children.get(pid) ?? []));
  }
  return seen ? (ticks * 1000) / CLK_TCK : null;
}

/** A process whose CPU is measured: its pid, or `{ tree: pid }` for the process and all its descendants. */
export type ProcRef = number | { tree: number };

const cpuOfRef = (ref: ProcRef | undefined): number | null => (ref === undefined ? null : typeof ref === "number" ? cpuMsOf(ref) : treeCpuMsOf(ref.tree));

const selfCpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

/**
 * Measures how much CPU each named process used over a window, as a percentage of one core: on a
 * 2-core machine the processes together can use at most 200 %. Tells where a suite's time goes
 * without a profiler (the bench driver itself is `driver`).
 */
export class CpuMeter {
  #start = new Map<string, number>();
  #t0 = 0;

  constructor(private readonly pids: () => Record<string, ProcRef | undefined>) {}

  begin(): void {
    this.#t0 = performance.now();
    this.#start.clear();
    this.#start.set("driver", selfCpuMs());
    for (const [name, ref] of Object.entries(this.pids())) {
      const ms = cpuOfRef(ref);
      if (ms !== null) this.#start.set(name, ms);
    }
  }

  /** Per process: % of one core over the window since begin(). */
  end(): Record<string, number> {
    const wall = performance.now() - this.#t0;
    const out: Record<string, number> = {};
    const now: Record<string, number | null> = { driver: selfCpuMs() };
    for (const [name, ref] of Object.entries(this.pids())) now[name] = cpuOfRef(ref);
    for (const [name, before] of this.#start) {
      const after = now[name];
      if (typeof after === "number" && wall > 0) out[name] = Math.round(((after - before) / wall) * 1000) / 10;
    }
    return out;
  }
}

/** Resolves a path relative to the compiled `dist/` folder (`./workers/x.js`). */
export const distPath = (rel: string): string => fileURLToPath(new URL(rel, import.meta.url));

/**
 * A reference worker in its own process: on 2 cores the driver and the worker compete for CPU as
 * the services do, instead of sharing one event loop. It prints `ready` once it consumes.
 */
export class ChildWorker {
  #child: ChildProcess | undefined;
  #exit: Promise<void> = Promise.resolve();
  readonly output: string[] = [];

  constructor(
    readonly script: string,
    readonly args: readonly string[],
  ) {}

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  async start(timeoutMs = 15_000): Promise<void> {
    const child = spawn(process.execPath, [this.script, ...this.args], { stdio: ["ignore", "pipe", "pipe"] });
    this.#child = child;
    this.#exit = new Promise((r) => child.once("exit", () => r()));
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${this.script} not ready after ${timeoutMs} ms:\n${this.output.join("")}`)), timeoutMs);
      const onData = (chunk: Buffer) => {
        const s = chunk.toString();
        this.output.push(s);
        if (this.output.length > 200) this.output.shift();
        if (/^ready$/m.test(s)) {
          clearTimeout(t);
          resolve();
        }
      };
      child.stdout?.on("data", onData);
      child.stderr?.on("data", onData);
      child.once("exit", (code, signal) => {
        clearTimeout(t);
        reject(new Error(`${this.script} exited (${code ?? signal}):\n${this.output.join("")}`));
      });
    });
  }

  async stop(): Promise<void> {
    const child = this.#child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    const t = setTimeout(() => child.kill("SIGKILL"), 5_000);
    await this.#exit;
    clearTimeout(t);
  }
}

/** Reads `--name value` / `--flag` style arguments (the workers' only interface). */
export function argOf(argv: readonly string[], name: string): string | undefined {
  const i = argv.indexOf(`--${name}`);
  if (i < 0) return undefined;
  const v = argv[i + 1];
  return v === undefined || v.startsWith("--") ? "true" : v;
}
