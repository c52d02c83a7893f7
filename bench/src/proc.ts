import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** Clock ticks per second for /proc/<pid>/stat times (100 on every Linux we run on; asked once). */
const CLK_TCK = (() => {
  const r = spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" });
  const n = Number(r.stdout?.trim());
  return Number.isFinite(n) && n > 0 ? n : 100;
})();

/** CPU time (user + system, ms) a process has used so far, or null where /proc cannot tell (not Linux, gone). */
export function cpuMsOf(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may contain spaces and parentheses: fields are counted after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const utime = Number(rest[11]);
    const stime = Number(rest[12]);
    if (!Number.isFinite(utime) || !Number.isFinite(stime)) return null;
    return ((utime + stime) * 1000) / CLK_TCK;
  } catch {
    return null;
  }
}

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

  constructor(private readonly pids: () => Record<string, number | undefined>) {}

  begin(): void {
    this.#t0 = performance.now();
    this.#start.clear();
    this.#start.set("driver", selfCpuMs());
    for (const [name, pid] of Object.entries(this.pids())) {
      const ms = pid === undefined ? null : cpuMsOf(pid);
      if (ms !== null) this.#start.set(name, ms);
    }
  }

  /** Per process: % of one core over the window since begin(). */
  end(): Record<string, number> {
    const wall = performance.now() - this.#t0;
    const out: Record<string, number> = {};
    const now: Record<string, number | null> = { driver: selfCpuMs() };
    for (const [name, pid] of Object.entries(this.pids())) now[name] = pid === undefined ? null : cpuMsOf(pid);
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
