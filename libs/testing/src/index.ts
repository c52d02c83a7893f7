import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { createServer, request as httpRequest, type IncomingMessage } from "node:http";
import { join } from "node:path";
import { REPO_ROOT, startNatsServer, type NatsServer, type NatsServerOptions } from "@orch/nats-server";

/**
 * Test helpers that use the real parts: a real nats-server, the real services as child processes
 * (built output, as users run them), HTTP and SSE over real sockets. Nothing here mocks our own code.
 */

export { startNatsServer, type NatsServer } from "@orch/nats-server";

export const SERVICE_NAMES = ["event-bus", "orchestrator", "agent-hub", "scheduler", "gateway"] as const;
export type ServiceName = (typeof SERVICE_NAMES)[number];

/** Starts a nats-server with JetStream in a fresh temporary store. */
export function startNats(opts: NatsServerOptions = {}): Promise<NatsServer> {
  return startNatsServer(opts);
}

export async function freePort(): Promise<number> {
  // Below Linux's ephemeral range (32768–60999), so that no server another test starts on port 0
  // can take it between this check and the service's own listen; random, so that parallel test
  // files rarely pick the same one (Stack.start tries again if one does).
  for (let i = 0; i < 20; i++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (await bindable(port)) return port;
  }
  return await listenOn(0);
}

function bindable(port: number): Promise<boolean> {
  return listenOn(port).then(
    () => true,
    () => false,
  );
}

function listenOn(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(port, "127.0.0.1", () => {
      const addr = srv.address();
      const got = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(got));
    });
  });
}

/** Polls `fn` until it returns something other than undefined/false, or fails after `timeoutMs`. */
export async function waitFor<T>(
  fn: () => T | Promise<T>,
  opts: { timeoutMs?: number; intervalMs?: number; what?: string } = {},
): Promise<Exclude<T, false | undefined | null>> {
  const deadline = Date.now() + (opts.timeoutMs ?? 15_000);
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false && v !== null) return v as Exclude<T, false | undefined | null>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${opts.what ?? "condition"}${last ? `: ${(last as Error).message}` : ""}`);
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 50));
  }
}

export interface LogLine {
  level?: string;
  msg?: string;
  [k: string]: unknown;
}

/** One service running as its own process, from its built entry point. */
export class ServiceProcess {
  readonly lines: LogLine[] = [];
  readonly raw: string[] = [];
  #child: ChildProcess | undefined;
  #exit: Promise<void> = Promise.resolve();

  constructor(
    readonly name: ServiceName,
    readonly env: Record<string, string>,
  ) {}

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  get running(): boolean {
    return this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null;
  }

  /** How the last run of the process ended: its exit code, or the signal that killed it (null while it runs). */
  get exit(): { code: number | null; signal: NodeJS.Signals | null } | null {
    const c = this.#child;
    return c && (c.exitCode !== null || c.signalCode !== null) ? { code: c.exitCode, signal: c.signalCode } : null;
  }

  /** Starts the process and waits for its `ready` log line. */
  async start(timeoutMs = 20_000): Promise<void> {
    const entry = join(REPO_ROOT, "services", this.name, "dist", "main.js");
    if (!existsSync(entry)) throw new Error(`${entry} is missing: build first (npm run build)`);
    const from = this.lines.length;
    const child = spawn(process.execPath, [entry], {
      env: { ...process.env, ...this.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.#child = child;
    // `close`, not `exit`: the process has ended AND its output has been read to the end.
    this.#exit = new Promise((r) => child.once("close", () => r()));
    // One buffer per stream: a line is whole only within its own stream.
    const reader = () => {
      let buf = "";
      return (chunk: Buffer) => {
        buf += chunk.toString();
        let nl: number;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (!line) continue;
          this.raw.push(line);
          try {
            this.lines.push(JSON.parse(line) as LogLine);
          } catch {
            this.lines.push({ msg: line, level: "raw" });
          }
        }
      };
    };
    child.stdout?.on("data", reader());
    child.stderr?.on("data", reader());
    await this.waitForLog((l) => l.msg === "ready", { timeoutMs, from });
  }

  async waitForLog(pred: (l: LogLine) => boolean, opts: { timeoutMs?: number; from?: number } = {}): Promise<LogLine> {
    try {
      return await waitFor(
        () => {
          if (!this.running && this.#child) throw new Error(`${this.name} exited:\n${this.raw.slice(-20).join("\n")}`);
          return this.lines.slice(opts.from ?? 0).find(pred);
        },
        { timeoutMs: opts.timeoutMs ?? 15_000, what: `${this.name} log line`, intervalMs: 25 },
      );
    } catch (err) {
      // What the process said meanwhile is what tells why (a CI log has nothing else).
      const said = this.raw.slice(Math.max(opts.from ?? 0, this.raw.length - 20));
      if ((err as Error).message.startsWith("timed out")) (err as Error).message += `; its last lines:\n${said.join("\n")}`;
      throw err;
    }
  }

  /** Sends a signal and waits for the process to exit. */
  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    if (!this.running) return;
    this.#child!.kill(signal);
    await this.#exit;
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.#child!.kill("SIGTERM");
    const t = setTimeout(() => this.#child?.kill("SIGKILL"), 12_000);
    await this.#exit;
    clearTimeout(t);
  }
}

export interface StackOptions {
  /** Extra environment for every service. */
  env?: Record<string, string>;
  /** Per-service environment. */
  serviceEnv?: Partial<Record<ServiceName, Record<string, string>>>;
  /** Which services to start (all five by default). */
  services?: readonly ServiceName[];
  /** Use this server instead of starting one. */
  nats?: NatsServer;
}

/** The whole system on a fresh nats-server: what `npm start` runs, one process per service. */
export class Stack {
  readonly services = new Map<ServiceName, ServiceProcess>();
  /** Further processes started with `spawn` (second replicas, differently configured gateways). */
  readonly extra: ServiceProcess[] = [];

  private baseEnv: Record<string, string> = {};
  /** Where the agent hub keeps repositories and worktrees (removed by `stop`). */
  readonly workspace = mkdtempSync(join(tmpdir(), "orch-workspace-"));

  private constructor(
    readonly nats: NatsServer,
    private readonly ownNats: boolean,
    readonly httpPort: number,
    readonly grpcPort: number,
  ) {}

  /** Starts the stack; a service that finds its port taken meanwhile (another test's) gets the stack started again on new ports. */
  static async start(opts: StackOptions = {}): Promise<Stack> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await Stack.#startOnce(opts);
      } catch (err) {
        if (attempt >= 3 || !/EADDRINUSE/.test((err as Error).message ?? "")) throw err;
      }
    }
  }

  static async #startOnce(opts: StackOptions): Promise<Stack> {
    const nats = opts.nats ?? (await startNats());
    const stack = new Stack(nats, opts.nats === undefined, await freePort(), await freePort());
    const base: Record<string, string> = {
      ORCH_NATS_URL: nats.url,
      PORT: String(stack.httpPort),
      HOST: "127.0.0.1",
      ORCH_GRPC_PORT: String(stack.grpcPort),
      ORCH_LOG_LEVEL: "info",
      // Offline agents, a throw-away workspace, and no user configuration file.
      ORCH_AGENT_EXECUTOR: "stub",
      ORCH_WORKSPACE: stack.workspace,
      ORCH_CONFIG: "none",
      ...opts.env,
    };
    stack.baseEnv = { ORCH_AGENT_EXECUTOR: "stub", ORCH_WORKSPACE: stack.workspace, ORCH_CONFIG: "none", ...opts.env };
    for (const name of opts.services ?? SERVICE_NAMES) {
      stack.services.set(name, new ServiceProcess(name, { ...base, ...opts.serviceEnv?.[name] }));
    }
    try {
      await Promise.all([...stack.services.values()].map((s) => s.start()));
    } catch (err) {
      await stack.stop();
      throw err;
    }
    return stack;
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.httpPort}`;
  }

  service(name: ServiceName): ServiceProcess {
    const s = this.services.get(name);
    if (!s) throw new Error(`${name} is not part of this stack`);
    return s;
  }

  /** Starts one more process of a service on this stack's NATS (a second replica, say). */
  async spawn(name: ServiceName, env: Record<string, string> = {}): Promise<ServiceProcess> {
    const p = new ServiceProcess(name, { ORCH_NATS_URL: this.nats.url, ORCH_LOG_LEVEL: "info", ...this.baseEnv, ...env });
    this.extra.push(p);
    await p.start();
    return p;
  }

  /** SIGKILL (by default) a service, as a crash would. */
  kill(name: ServiceName, signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    return this.service(name).kill(signal);
  }

  /** Starts a service again and waits for its `ready` line (20 s unless told). */
  restart(name: ServiceName, timeoutMs?: number): Promise<void> {
    return this.service(name).start(timeoutMs);
  }

  async stop(): Promise<void> {
    await Promise.all([...this.services.values(), ...this.extra].map((s) => s.stop()));
    if (this.ownNats) await this.nats.stop();
    rmSync(this.workspace, { recursive: true, force: true });
  }
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: <T = any>() => T;
}

/** A plain HTTP request over a real socket (no client library between the test and the server). */
export async function http(
  method: string,
  url: string,
  opts: { headers?: Record<string, string>; body?: string | Buffer; json?: unknown } = {},
): Promise<HttpResponse> {
  const headers: Record<string, string> = { ...opts.headers };
  let body = opts.body;
  if (opts.json !== undefined) {
    body = JSON.stringify(opts.json);
    headers["content-type"] ??= "application/json";
  }
  return await new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers }, (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString();
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text) });
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

export interface SseFrame {
  id?: string;
  event: string;
  data: string;
  /** `data` parsed as JSON, when it is JSON. */
  json?: any;
}

export interface SseConnection {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** Frames in arrival order; comments (`: ping`) are counted in `comments`. */
  frames: SseFrame[];
  comments: string[];
  /** Resolves when the server closes the stream. */
  ended: Promise<void>;
  /** Waits until a frame matches. */
  waitFor(pred: (f: SseFrame) => boolean, timeoutMs?: number): Promise<SseFrame>;
  close(): void;
}

/** Opens an SSE stream over a real socket and parses frames as they arrive (a GET, or a POST of `json`). */
export async function sse(url: string, headers: Record<string, string> = {}, opts: { method?: string; json?: unknown } = {}): Promise<SseConnection> {
  const body = opts.json === undefined ? undefined : JSON.stringify(opts.json);
  const method = opts.method ?? (body === undefined ? "GET" : "POST");
  const all = { accept: "text/event-stream", ...(body === undefined ? {} : { "content-type": "application/json" }), ...headers };
  return await new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers: all }, (res) => {
      const frames: SseFrame[] = [];
      const comments: string[] = [];
      let buf = "";
      let endResolve!: () => void;
      const ended = new Promise<void>((r) => (endResolve = r));
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        buf += chunk;
        let sep: number;
        while ((sep = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, sep);
          buf = buf.slice(sep + 2);
          const f: SseFrame = { event: "message", data: "" };
          const data: string[] = [];
          for (const line of block.split("\n")) {
            if (line.startsWith(":")) comments.push(line.slice(1).trim());
            else if (line.startsWith("id:")) f.id = line.slice(3).trim();
            else if (line.startsWith("event:")) f.event = line.slice(6).trim();
            else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
          }
          if (data.length === 0 && f.id === undefined && f.event === "message") continue;
          f.data = data.join("\n");
          try {
            f.json = JSON.parse(f.data);
          } catch {
            // not JSON
          }
          frames.push(f);
        }
      });
      res.on("end", () => endResolve());
      res.on("close", () => endResolve());
      resolve({
        status: res.statusCode ?? 0,
        headers: res.headers,
        frames,
        comments,
        ended,
        waitFor: (pred, timeoutMs = 15_000) => waitFor(() => frames.find(pred), { timeoutMs, what: "SSE frame", intervalMs: 20 }),
        close: () => {
          req.destroy();
          endResolve();
        },
      });
    });
    req.on("error", reject);
    req.end(body);
  });
}
export * from "./grpc.js";
export * from "./fake-models.js";
export * from "./fake-models/openai-chat.js";
export * from "./fake-models/ollama.js";
export * from "./fake-models/responses.js";
export * from "./fake-models/anthropic.js";
export * from "./fake-forges/index.js";
export * from "./fake-trackers/index.js";
