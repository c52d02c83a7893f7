import { spawn } from "node:child_process";

/**
 * Runs one tool command without a shell (an argv array, `shell: false`) in its own process group,
 * so that a timeout, an output overflow or the session's abort kills it and everything it started.
 * Its environment is the bare minimum (PATH, HOME, locale): nothing of the hub's own environment,
 * API keys included, reaches a tool.
 */

export interface ProcessOptions {
  cwd: string;
  timeoutMs: number;
  /** stdout and stderr together; past it the process is killed and the output marked truncated. */
  maxBytes: number;
  signal: AbortSignal;
}

export interface ProcessOutcome {
  /** The exit code, null when killed or not started. */
  code: number | null;
  stdout: string;
  stderr: string;
  truncated: boolean;
  timedOut: boolean;
  aborted: boolean;
  /** Why it could not start (`ENOENT`: not installed). */
  spawnError?: string;
}

const ENV_KEYS = ["PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR"];

function toolEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const k of ENV_KEYS) {
    const v = process.env[k];
    if (v !== undefined) env[k] = v;
  }
  return env;
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    /* already gone */
  }
}

export function runProcess(cmd: string, args: readonly string[], opts: ProcessOptions): Promise<ProcessOutcome> {
  return new Promise((resolve) => {
    const out: ProcessOutcome = { code: null, stdout: "", stderr: "", truncated: false, timedOut: false, aborted: false };
    if (opts.signal.aborted) {
      out.aborted = true;
      resolve(out);
      return;
    }
    const child = spawn(cmd, [...args], { cwd: opts.cwd, env: toolEnv(), shell: false, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    const bufs = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
    let bytes = 0;
    const take = (which: "stdout" | "stderr") => (chunk: Buffer) => {
      if (out.truncated) return;
      const room = opts.maxBytes - bytes;
      if (chunk.length > room) {
        bufs[which].push(chunk.subarray(0, room));
        bytes = opts.maxBytes;
        out.truncated = true;
        killGroup(child.pid);
        return;
      }
      bufs[which].push(chunk);
      bytes += chunk.length;
    };
    child.stdout.on("data", take("stdout"));
    child.stderr.on("data", take("stderr"));
    const timer = setTimeout(() => {
      out.timedOut = true;
      killGroup(child.pid);
    }, opts.timeoutMs);
    const onAbort = () => {
      out.aborted = true;
      killGroup(child.pid);
    };
    opts.signal.addEventListener("abort", onAbort, { once: true });
    let settled = false;
    const finish = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal.removeEventListener("abort", onAbort);
      out.stdout = Buffer.concat(bufs.stdout).toString("utf8");
      out.stderr = Buffer.concat(bufs.stderr).toString("utf8");
      resolve(out);
    };
    child.once("error", (err: NodeJS.ErrnoException) => {
      out.spawnError = err.code ?? err.message;
      finish();
    });
    child.once("close", (code) => {
      out.code = code;
      finish();
    });
    // A grandchild that left the group can hold the pipes open after the tool exited: stop
    // waiting for them shortly after the exit.
    child.once("exit", (code) => {
      out.code = code;
      setTimeout(() => {
        child.stdout.destroy();
        child.stderr.destroy();
        finish();
      }, 250).unref();
    });
  });
}
