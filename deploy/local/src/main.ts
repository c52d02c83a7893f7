import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync } from "node:fs";
import { createServer } from "node:net";
import { isAbsolute, join, relative } from "node:path";
import { Writable } from "node:stream";
import { ConfigError, configFileUsed, loadConfig, readConfigFile, RunnerConfig, type ConfigFile } from "@orch/config";
import { logFormat } from "@orch/logging";
import { REPO_ROOT, startNatsServer, type NatsServer } from "@orch/nats-server";
import { build as prettyStream } from "pino-pretty";

/**
 * The dev runner behind `npm start`: the embedded nats-server (unless ORCH_NATS_URL points at one)
 * and the five services, each its own process talking only over NATS and gRPC, as in production.
 * A service that dies is started again with backoff, and so is the embedded nats-server (on the
 * same port and store directory, so the services reconnect to it); Ctrl-C stops everything cleanly.
 *
 * Environment: everything the services read, plus RunnerConfig's (ORCH_DATA_DIR, default `.data/`;
 * ORCH_NATS_STORE_DIR, the JetStream store, `<data dir>/nats` by default; ORCH_NATS_SYNC) and
 * ORCH_LOG_FORMAT (`pretty` on a terminal, `json` otherwise; seed 004's TASKSGODZILLA_LOG_JSON=true
 * is `json`).
 *
 * Configuration file: seed 003's first run. With neither ORCH_CONFIG nor ORCHESTRATOR_CONFIG set,
 * `~/.config/orchestrator/config.toml` is created with the defaults when missing; its path is
 * printed at start, and an invalid file stops start-up with one message listing every problem.
 */

const SERVICES = ["event-bus", "orchestrator", "agent-hub", "scheduler", "gateway"] as const;
type Service = (typeof SERVICES)[number];

/**
 * V8 flags per service, unless NODE_OPTIONS already sets the same one. The core gets a heap limit:
 * V8 otherwise sizes the heap from the machine's memory and, after a burst of commands, keeps
 * hundreds of MB of headroom it has no use for (docs/benchmarks.md, idle scale). Its live data is
 * bounded (the record cache's ORCH_CORE_CACHE_MB, plus the commands in flight).
 */
const V8_FLAGS: Partial<Record<Service, string[]>> = { orchestrator: ["--max-old-space-size=256"] };

function nodeOptionsFor(service: Service, current: string | undefined): string | undefined {
  const extra = (V8_FLAGS[service] ?? []).filter((f) => !(current ?? "").includes(f.split("=")[0]!));
  if (extra.length === 0) return current;
  return [current, ...extra].filter(Boolean).join(" ");
}

const env = process.env;
let pretty: boolean;
let runner: RunnerConfig;
let file: ConfigFile | undefined;
try {
  const created = readConfigFile(env, { createDefault: true })?.created === true;
  runner = loadConfig(RunnerConfig, env);
  file = configFileUsed();
  if (file && created) file = { ...file, created };
  // ORCH_LOG_FORMAT, or seed 004's TASKSGODZILLA_LOG_JSON.
  pretty = logFormat(env, process.stdout.isTTY === true) === "pretty";
} catch (err) {
  process.stderr.write(err instanceof ConfigError ? `orch: ${err.message}\n` : `orch: invalid configuration:\n  - ${(err as Error).message}\n`);
  process.exit(2);
}
const dataDir = runner.ORCH_DATA_DIR ?? join(REPO_ROOT, ".data");
const httpPort = Number(env.PORT ?? 8080);
const httpHost = env.HOST ?? "127.0.0.1";
const grpcPort = Number(env.ORCH_GRPC_PORT ?? 50051);
const grpcHost = env.ORCH_GRPC_HOST ?? "127.0.0.1";

const out: Writable = pretty
  ? prettyStream({ colorize: true, ignore: "pid,hostname", translateTime: "SYS:HH:MM:ss.l", messageFormat: "{service} | {msg}", destination: 1 })
  : process.stdout;

/** A path as the banner shows it: relative to the current directory when under it. */
function shown(p: string): string {
  const r = relative(process.cwd(), p);
  return r && !r.startsWith("..") && !isAbsolute(r) ? r : p;
}

function say(msg: string, fields: Record<string, unknown> = {}): void {
  out.write(`${JSON.stringify({ level: 30, time: Date.now(), service: "runner", msg, ...fields })}\n`);
}

function portFree(port: number, host: string): Promise<boolean> {
  if (port === 0) return Promise.resolve(true);
  return new Promise((resolve) => {
    const s = createServer();
    s.once("error", () => resolve(false));
    s.listen(port, host, () => s.close(() => resolve(true)));
  });
}

class Supervised {
  child: ChildProcess | undefined;
  restarts = 0;
  startedAt = 0;
  stopping = false;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    readonly name: Service,
    readonly serviceEnv: NodeJS.ProcessEnv,
    readonly onLine: (svc: Service, line: string) => void,
  ) {}

  start(): void {
    this.startedAt = Date.now();
    const entry = join(REPO_ROOT, "services", this.name, "dist", "main.js");
    const nodeOptions = nodeOptionsFor(this.name, this.serviceEnv.NODE_OPTIONS);
    const child = spawn(process.execPath, [entry], {
      env: { ...this.serviceEnv, ...(nodeOptions ? { NODE_OPTIONS: nodeOptions } : {}) },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child = child;
    for (const stream of [child.stdout, child.stderr]) {
      let buf = "";
      stream?.on("data", (chunk: Buffer) => {
        buf += chunk.toString();
        let nl: number;
        while ((nl = buf.indexOf("\n")) >= 0) {
          this.onLine(this.name, buf.slice(0, nl));
          buf = buf.slice(nl + 1);
        }
      });
    }
    child.once("exit", (code, signal) => {
      if (this.stopping) return;
      // Config errors (exit 2) will not fix themselves: stop everything instead of looping.
      if (code === 2) {
        say(`${this.name} refused its configuration; stopping`, { code });
        void shutdown(2);
        return;
      }
      if (Date.now() - this.startedAt > 30_000) this.restarts = 0;
      const delay = Math.min(30_000, 500 * 2 ** this.restarts++);
      say(`${this.name} exited (${signal ?? code}); starting it again in ${delay} ms`);
      this.#timer = setTimeout(() => this.start(), delay);
    });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.#timer) clearTimeout(this.#timer);
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once("exit", () => r()));
    child.kill("SIGTERM");
    const t = setTimeout(() => child.kill("SIGKILL"), 12_000);
    await exited;
    clearTimeout(t);
  }
}

let nats: NatsServer | undefined;
const running: Supervised[] = [];
let shuttingDown = false;

/**
 * The embedded nats-server, started again when it dies (same port, same store), with the same
 * backoff as a service: until it is back every request the services make waits or fails.
 */
const natsRestarts = { count: 0, startedAt: 0, timer: undefined as NodeJS.Timeout | undefined };
function restartNats(how: { code: number | null; signal: NodeJS.Signals | null }): void {
  if (shuttingDown || !nats) return;
  if (Date.now() - natsRestarts.startedAt > 30_000) natsRestarts.count = 0;
  const delay = Math.min(30_000, 500 * 2 ** natsRestarts.count++);
  say(`nats-server exited (${how.signal ?? how.code}); starting it again in ${delay} ms`, { url: nats.url });
  natsRestarts.timer = setTimeout(() => {
    natsRestarts.timer = undefined;
    if (shuttingDown || !nats) return;
    natsRestarts.startedAt = Date.now();
    nats.restart().then(
      () => say("nats-server is running again", { pid: nats!.pid, url: nats!.url }),
      (err: unknown) => {
        say(`nats-server did not start: ${(err as Error).message.split("\n")[0]}`);
        restartNats({ code: null, signal: null });
      },
    );
  }, delay);
}

async function shutdown(code: number): Promise<void> {
  if (shuttingDown) return;
  shuttingDown = true;
  if (natsRestarts.timer) clearTimeout(natsRestarts.timer);
  say("stopping the services");
  await Promise.all(running.map((s) => s.stop()));
  if (nats) {
    say("stopping nats-server");
    await nats.stop();
  }
  say("stopped");
  process.exit(code);
}

async function main(): Promise<void> {
  for (const [port, host, name, variable] of [
    [httpPort, httpHost, "HTTP", "PORT"],
    [grpcPort, grpcHost, "gRPC", "ORCH_GRPC_PORT"],
  ] as const) {
    if (!(await portFree(port, host))) {
      process.stderr.write(`port ${port} on ${host} (${name}) is already in use: stop what holds it or set ${variable} to another port\n`);
      process.exit(1);
    }
  }

  let natsUrl = env.ORCH_NATS_URL;
  let natsNote: string;
  if (natsUrl) {
    natsNote = `external NATS at ${natsUrl}`;
  } else {
    const storeDir = runner.ORCH_NATS_STORE_DIR ?? join(dataDir, "nats");
    mkdirSync(storeDir, { recursive: true });
    nats = await startNatsServer({
      storeDir,
      syncAlways: runner.ORCH_NATS_SYNC === "FULL" || runner.ORCH_NATS_SYNC === "EXTRA",
      onLog: (line) => /\[(ERR|FTL|WRN)\]/.test(line) && say(`nats-server: ${line}`),
      onExit: restartNats,
    });
    natsRestarts.startedAt = Date.now();
    say("nats-server running", { pid: nats.pid, url: nats.url });
    natsUrl = nats.url;
    natsNote = `embedded nats-server ${nats.version.text} at ${nats.url}, JetStream store in ${shown(storeDir)}`;
  }

  // The quick start needs no model: role steps run in the stub executor unless told otherwise, and
  // sessions' repositories and worktrees live beside the JetStream store.
  const executor = runner.ORCH_AGENT_EXECUTOR ?? "stub";
  const workspace = env.ORCH_WORKSPACE || file?.values.ORCH_WORKSPACE || join(dataDir, "workspace");
  const serviceEnv: NodeJS.ProcessEnv = {
    ...env,
    ORCH_NATS_URL: natsUrl,
    PORT: String(httpPort),
    ORCH_GRPC_PORT: String(grpcPort),
    ORCH_AGENT_EXECUTOR: executor,
    ORCH_WORKSPACE: workspace,
  };
  const configNote = file
    ? `${file.path}${file.created ? " (created with the defaults)" : ""}${file.refused.length ? `; not applied: ${file.refused.map((r) => r.key).join(", ")} (the services' warnings say why)` : ""}`
    : env.ORCH_CONFIG === "none" || env.ORCHESTRATOR_CONFIG === "none"
      ? "none (ORCH_CONFIG=none)"
      : "none (no home directory)";
  if (file) say(file.created ? "configuration file created with the defaults" : "configuration file read", { path: file.path });
  let banner = false;
  const onLine = (svc: Service, line: string) => {
    if (!line.startsWith("{")) {
      say(line, { service: svc });
      return;
    }
    out.write(`${line}\n`);
    if (!banner && svc === "gateway" && line.includes('"gateway listening"')) {
      banner = true;
      const backend = env.ORCH_BACKEND ?? "file";
      process.stderr.write(
        [
          "",
          "Orchestrator is running:",
          `  HTTP   http://${httpHost}:${httpPort}    try: curl -s http://${httpHost}:${httpPort}/api/orchestrator/ping`,
          `  Web    http://${httpHost}:${httpPort}/console    the console (API docs at /docs)`,
          `  gRPC   ${grpcHost}:${grpcPort}          proto/orchestrator.proto`,
          `  NATS   ${natsNote} (ORCH_BACKEND=${backend})`,
          `  Jobs   seed 000's steps run in the agent hub's log-only adapters (dev.log, repoops, ci, docs); ORCH_MODE=${env.ORCH_MODE ?? "mock"}`,
          executor === "stub"
            ? "  Agents role steps run in the stub executor (ORCH_AGENT_EXECUTOR=stub): offline, no model, real commits;"
            : `  Agents role steps run in the ${executor} executor (ORCH_AGENT_EXECUTOR=${executor})`,
          ...(executor === "stub" ? ["         set ORCH_AGENT_EXECUTOR=local and LOCAL_LLM_URL/LOCAL_LLM_MODEL to use a local model"] : []),
          `  Work   repositories and worktrees in ${shown(workspace)}`,
          `  Config ${configNote}`,
          "  Ctrl-C stops everything.",
          "",
        ].join("\n"),
      );
    }
  };
  // `on`, not `once`: a second signal while stopping must not kill us half-way.
  process.on("SIGINT", () => void shutdown(0));
  process.on("SIGTERM", () => void shutdown(0));
  for (const name of SERVICES) {
    const s = new Supervised(name, serviceEnv, onLine);
    running.push(s);
    s.start();
  }
}

main().catch(async (err: unknown) => {
  process.stderr.write(`orchestrator: ${(err as Error).message}\n`);
  await shutdown(1);
});
