import { spawn } from "node:child_process";
import { accessSync, constants, readdirSync, readFileSync, statSync } from "node:fs";
import { delimiter, isAbsolute, join, resolve } from "node:path";

/**
 * A CLI as a child process: the leader of its own process group (`detached`), stdin closed (Codex
 * waits for EOF otherwise), its output read line by line. It is stopped, group and all, when it
 * prints nothing within the startup time, outlives its wall clock, or the session is aborted:
 * SIGTERM to the group, SIGKILL after the grace period. When the leader exits on its own, whatever
 * it left running in its group (a dev server, a watcher) is killed too: the worktree is about to
 * be committed and removed. Either way `runChild` returns once nothing of the group is left
 * running (or after a short bound, on a system without /proc).
 */

export type StopKind = "startup_timeout" | "timeout" | "aborted";

export type ChildEnd =
  | { kind: "exited"; code: number | null; signal: NodeJS.Signals | null }
  | { kind: StopKind; code: number | null; signal: NodeJS.Signals | null }
  | { kind: "spawn_error"; error: NodeJS.ErrnoException };

export interface ChildSpec {
  /** An absolute path (see `resolveBinary`). */
  binary: string;
  args: readonly string[];
  cwd: string;
  /** The whole environment: nothing is inherited. */
  env: Record<string, string>;
  startupTimeoutMs: number;
  timeoutMs: number;
  killGraceMs: number;
  signal: AbortSignal;
  onSpawn(pid: number): void;
  onLine(stream: "stdout" | "stderr", line: string): void;
}

/** A line longer than this is cut (a CLI printing a whole file in one event stays readable). */
const MAX_LINE_CHARS = 32 * 1024 * 1024;
/** How long the pipes may stay open after the leader exited (a grandchild that left the group holds them). */
const DRAIN_MS = 2_000;
/** How long the group's killed members may take to go. */
const GROUP_GONE_MS = 2_000;

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: nothing left in the group.
  }
}

/**
 * Whether anything of the group still runs: its live members from /proc (zombies, which wait for
 * a parent to reap them, are gone for this purpose), or without /proc whether the group exists.
 */
function groupRuns(pgid: number): boolean {
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    try {
      process.kill(-pgid, 0);
      return true;
    } catch {
      return false;
    }
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, "utf8");
      // After the command name (which may hold spaces and parentheses): state, ppid, pgrp, …
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(pgrp) === pgid && state !== "Z" && state !== "X") return true;
    } catch {
      // gone meanwhile
    }
  }
  return false;
}

async function groupGone(pgid: number): Promise<void> {
  const until = Date.now() + GROUP_GONE_MS;
  while (groupRuns(pgid) && Date.now() < until) {
    signalGroup(pgid, "SIGKILL");
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Splits a stream's text into lines as it arrives. */
function lines(onLine: (line: string) => void): { push(chunk: string): void; end(): void } {
  let buf = "";
  return {
    push(chunk) {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl).replace(/\r$/, "");
        buf = buf.slice(nl + 1);
        if (line.trim()) onLine(line);
      }
      if (buf.length > MAX_LINE_CHARS) {
        onLine(buf.slice(0, MAX_LINE_CHARS));
        buf = "";
      }
    },
    end() {
      if (buf.trim()) onLine(buf);
      buf = "";
    },
  };
}

export async function runChild(spec: ChildSpec): Promise<ChildEnd> {
  const child = spawn(spec.binary, spec.args, { cwd: spec.cwd, env: spec.env, stdio: ["ignore", "pipe", "pipe"], detached: true });
  let stopped: StopKind | undefined;
  let sawLine = false;
  let killTimer: NodeJS.Timeout | undefined;

  const stop = (kind: StopKind) => {
    if (stopped || child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    stopped = kind;
    signalGroup(child.pid, "SIGTERM");
    killTimer = setTimeout(() => signalGroup(child.pid!, "SIGKILL"), spec.killGraceMs);
  };

  const spawned = await new Promise<NodeJS.ErrnoException | undefined>((resolveSpawn) => {
    child.once("spawn", () => resolveSpawn(undefined));
    child.once("error", (err) => resolveSpawn(err));
  });
  if (spawned || child.pid === undefined) return { kind: "spawn_error", error: spawned ?? Object.assign(new Error("no pid"), { code: "ESPAWN" }) };
  const pid = child.pid;
  spec.onSpawn(pid);

  const onLine = (stream: "stdout" | "stderr") => (line: string) => {
    sawLine = true;
    spec.onLine(stream, line);
  };
  const out = lines(onLine("stdout"));
  const err = lines(onLine("stderr"));
  child.stdout.setEncoding("utf8").on("data", (c: string) => out.push(c));
  child.stderr.setEncoding("utf8").on("data", (c: string) => err.push(c));
  const drained = Promise.all([new Promise((r) => child.stdout.once("close", r)), new Promise((r) => child.stderr.once("close", r))]);

  const onAbort = () => stop("aborted");
  spec.signal.addEventListener("abort", onAbort, { once: true });
  if (spec.signal.aborted) stop("aborted");
  const startup = setTimeout(() => sawLine || stop("startup_timeout"), spec.startupTimeoutMs);
  const wall = setTimeout(() => stop("timeout"), spec.timeoutMs);

  const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => {
    if (child.exitCode !== null || child.signalCode !== null) r({ code: child.exitCode, signal: child.signalCode });
    else child.once("exit", (code, signal) => r({ code, signal }));
  });
  clearTimeout(startup);
  clearTimeout(wall);
  if (killTimer) clearTimeout(killTimer);
  spec.signal.removeEventListener("abort", onAbort);
  signalGroup(pid, "SIGKILL");
  await groupGone(pid);
  let drainTimer: NodeJS.Timeout | undefined;
  await Promise.race([drained, new Promise((r) => (drainTimer = setTimeout(r, DRAIN_MS)))]);
  clearTimeout(drainTimer);
  child.stdout.destroy();
  child.stderr.destroy();
  out.end();
  err.end();
  return { kind: stopped ?? "exited", ...exit };
}

function executable(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The absolute path of `binary` (a path, or a name looked up on `path`), or undefined when there is none to run. */
export function resolveBinary(binary: string, path: string | undefined): string | undefined {
  if (binary.includes("/")) {
    const p = isAbsolute(binary) ? binary : resolve(binary);
    return executable(p) ? p : undefined;
  }
  for (const dir of (path ?? "").split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, binary);
    if (executable(p)) return p;
  }
  return undefined;
}
