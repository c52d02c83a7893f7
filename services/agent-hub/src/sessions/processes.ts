import { readFileSync } from "node:fs";

/**
 * The processes a session started, as the hub finds them again after it restarted: a harness runs
 * as the leader of its own process group (spawned detached), so killing `-pid` takes its children
 * too. A pid is only trusted with its start time (`/proc/<pid>/stat`, field 22), so a pid the kernel
 * has since given to an unrelated process is never killed.
 */

/** The start time of `pid` in clock ticks since boot, or undefined when there is no such process. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may hold spaces and parentheses: fields start after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return rest[19];
  } catch {
    return undefined;
  }
}

/** Whether the process (or, without /proc, anything in its group) is still there. */
export function isAlive(pid: number, startTime?: string): boolean {
  const now = processStartTime(pid);
  if (now !== undefined) return startTime === undefined || now === startTime;
  try {
    process.kill(pid, 0);
    return startTime === undefined;
  } catch {
    return false;
  }
}

/** Signals the group; `leaderToo` also the pid alone when it leads no group (never after it exited: the pid may be reused). */
function signalGroup(pid: number, signal: NodeJS.Signals, leaderToo = true): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    if (!leaderToo) return false;
    try {
      process.kill(pid, signal);
      return true;
    } catch {
      return false;
    }
  }
}

/**
 * SIGTERM to the whole group, SIGKILL after `graceMs` if the leader is still there. Resolves once
 * the leader is gone (or after the SIGKILL). Does nothing when the pid is not the same process.
 */
export async function killGroup(pid: number, opts: { startTime?: string; graceMs: number }): Promise<boolean> {
  if (!isAlive(pid, opts.startTime)) return false;
  signalGroup(pid, "SIGTERM");
  const until = Date.now() + opts.graceMs;
  while (Date.now() < until) {
    await new Promise((r) => setTimeout(r, 50));
    if (!isAlive(pid, opts.startTime)) {
      // The leader is gone; make sure nothing of its group lingers (the group id outlives it while
      // members remain, and is not reused until they are gone).
      signalGroup(pid, "SIGKILL", false);
      return true;
    }
  }
  signalGroup(pid, "SIGKILL");
  return true;
}
