import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The embedded default: a local `nats-server` child process with JetStream, bound to 127.0.0.1 on a
 * free port. The dev runner and the tests start it the same way. Installing a binary is the job of
 * `scripts/lib/nats.mjs` (run by `npm start` and `npm test`); this module only finds and runs one.
 */

/** The repository root (this file is `libs/nats-server/{src,dist}/index.*`). */
export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
export const TOOLS_BIN = join(process.env.ORCH_TOOLS_DIR ?? join(REPO_ROOT, ".tools"), "nats-server", "bin", "nats-server");

export class NatsServerNotFoundError extends Error {
  override readonly name = "NatsServerNotFoundError";
  readonly code = "NATS_SERVER_NOT_FOUND";
  constructor() {
    super(
      "nats-server not found: run `npm test` or `npm start` once (they install it into .tools/), install nats-server >= 2.10 on the PATH, set ORCH_NATS_SERVER_BIN, or set ORCH_NATS_URL",
    );
  }
}

export interface NatsVersion {
  text: string;
  major: number;
  minor: number;
  patch: number;
}

export function natsServerVersion(bin: string): NatsVersion | null {
  const r = spawnSync(bin, ["--version"], { encoding: "utf8", timeout: 10_000 });
  if (r.status !== 0) return null;
  const m = /v?(\d+)\.(\d+)\.(\d+)/.exec(`${r.stdout}${r.stderr}`);
  if (!m) return null;
  return { text: `${m[1]}.${m[2]}.${m[3]}`, major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]) };
}

const atLeast = (v: NatsVersion, major: number, minor: number) => v.major > major || (v.major === major && v.minor >= minor);

/** $ORCH_NATS_SERVER_BIN, then the project's tools folder, then the PATH; 2.10+ preferred. */
export function findNatsServer(): { path: string; version: NatsVersion } {
  const paths = [process.env.ORCH_NATS_SERVER_BIN, TOOLS_BIN];
  for (const dir of [...(process.env.PATH ?? "").split(delimiter), "/usr/sbin", "/usr/local/sbin"]) {
    if (dir) paths.push(join(dir, "nats-server"));
  }
  const found: { path: string; version: NatsVersion }[] = [];
  for (const p of paths) {
    if (!p || !existsSync(p) || found.some((f) => f.path === p)) continue;
    const version = natsServerVersion(p);
    if (version === null) continue;
    if (p === process.env.ORCH_NATS_SERVER_BIN || atLeast(version, 2, 10)) return { path: p, version };
    found.push({ path: p, version });
  }
  const fallback = found[0];
  if (fallback) return fallback;
  throw new NatsServerNotFoundError();
}

export interface NatsServerOptions {
  /** JetStream store directory; a fresh temporary one (removed on stop) when omitted. */
  storeDir?: string;
  /** Client port; a free one when omitted. */
  port?: number;
  bin?: string;
  /** `sync_interval: always` (2.10+): fsync every acknowledged write. */
  syncAlways?: boolean;
  /** Receives every line nats-server logs. */
  onLog?: (line: string) => void;
  /**
   * Called when the server exits on its own (a crash, a kill from outside), not through `stop`,
   * `kill` or `restart`: a supervisor starts it again with `restart`.
   */
  onExit?: (how: { code: number | null; signal: NodeJS.Signals | null }) => void;
  startTimeoutMs?: number;
}

export interface NatsServer {
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  readonly storeDir: string;
  readonly version: NatsVersion;
  /** Stops the server (SIGTERM, then SIGKILL after a grace period). */
  stop(): Promise<void>;
  /** Kills the server at once, as a crash would. */
  kill(): Promise<void>;
  /** Starts it again on the same port and store directory. */
  restart(): Promise<void>;
}

const live = new Set<ChildProcess>();
process.once("exit", () => {
  for (const c of live) c.kill("SIGKILL");
});

function configFor(storeDir: string, port: number, version: NatsVersion, syncAlways: boolean): string {
  const js = [`  store_dir: ${JSON.stringify(storeDir)}`];
  if (syncAlways && atLeast(version, 2, 10)) js.push("  sync_interval: always");
  return [`host: "127.0.0.1"`, `port: ${port}`, `jetstream {`, ...js, `}`, ""].join("\n");
}

async function launch(
  bin: string,
  confPath: string,
  onLog: ((line: string) => void) | undefined,
  timeoutMs: number,
): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(bin, ["-c", confPath], { stdio: ["ignore", "pipe", "pipe"] });
  live.add(child);
  child.once("exit", () => live.delete(child));
  return await new Promise((resolve, reject) => {
    let port = 0;
    let tail = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`nats-server did not become ready within ${timeoutMs} ms:\n${tail}`));
    }, timeoutMs);
    const onData = (buf: Buffer) => {
      const text = buf.toString();
      tail = (tail + text).slice(-4000);
      for (const line of text.split("\n")) {
        if (!line) continue;
        onLog?.(line);
        const m = /Listening for client connections on [^\s]*:(\d+)/.exec(line);
        if (m) port = Number(m[1]);
        if (line.includes("Server is ready") && port > 0) {
          clearTimeout(timer);
          resolve({ child, port });
        }
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`nats-server exited (${signal ?? code}) before it was ready:\n${tail}`));
    });
  });
}

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    child.once("exit", () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

export async function startNatsServer(opts: NatsServerOptions = {}): Promise<NatsServer> {
  const found = opts.bin ? { path: opts.bin, version: natsServerVersion(opts.bin) } : findNatsServer();
  if (!found.version) throw new NatsServerNotFoundError();
  const version = found.version;
  const ownStore = opts.storeDir === undefined;
  const storeDir = opts.storeDir ?? mkdtempSync(join(tmpdir(), "orch-nats-"));
  mkdirSync(storeDir, { recursive: true });
  const confDir = mkdtempSync(join(tmpdir(), "orch-nats-conf-"));
  const confPath = join(confDir, "nats-server.conf");
  const timeout = opts.startTimeoutMs ?? 15_000;

  writeFileSync(confPath, configFor(storeDir, opts.port ?? -1, version, opts.syncAlways ?? false));
  let { child, port } = await launch(found.path, confPath, opts.onLog, timeout);
  // Pin the port so a restart comes back where clients expect it.
  writeFileSync(confPath, configFor(storeDir, port, version, opts.syncAlways ?? false));

  // An exit nobody asked for (not stop, kill or restart) is reported to onExit.
  let expected = false;
  const watch = (c: ChildProcess) =>
    c.once("exit", (code, signal) => {
      if (c === child && !expected) opts.onExit?.({ code, signal });
    });
  watch(child);

  const terminate = async (signal: NodeJS.Signals) => {
    expected = true;
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    if (!(await waitExit(child, 10_000))) {
      child.kill("SIGKILL");
      await waitExit(child, 5_000);
    }
  };

  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    get pid() {
      return child.pid ?? -1;
    },
    storeDir,
    version,
    async stop() {
      await terminate("SIGTERM");
      rmSync(confDir, { recursive: true, force: true });
      if (ownStore) rmSync(storeDir, { recursive: true, force: true });
    },
    async kill() {
      await terminate("SIGKILL");
    },
    async restart() {
      await terminate("SIGTERM");
      ({ child } = await launch(found.path, confPath, opts.onLog, timeout));
      expected = false;
      watch(child);
    },
  };
}
