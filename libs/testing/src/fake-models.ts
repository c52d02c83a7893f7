import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * A local model server for tests, speaking a real wire format (Ollama, OpenAI Chat Completions, the
 * OpenAI Responses API, Anthropic Messages) over real HTTP, and answering from a script: each model
 * request takes the next scripted turn. Only what lies outside this machine (a hosted or local LLM)
 * is faked; the executors and CLIs under test talk to it exactly as they would to the real thing.
 *
 * A wire format is a set of routes (`"POST /v1/chat/completions"` → handler) that turn a turn into
 * that format's response (streamed or not). Requests that are not model turns (a CLI's title
 * generation, a health probe) are recognised by the format's `isSideRequest` and answered with
 * `sideText` without consuming the script.
 */

export interface ScriptedToolCall {
  /** Generated when absent (`call_1`, `call_2`, …). */
  id?: string;
  name: string;
  arguments: Record<string, unknown>;
}

export interface ScriptedTurn {
  /** The assistant's text; streamed in pieces of `chunkSize` characters (or as `chunks`). */
  text?: string;
  /** Explicit stream pieces for `text` (their concatenation is the text). */
  chunks?: string[];
  /** Reasoning text, for formats that carry it. */
  reasoning?: string;
  toolCalls?: ScriptedToolCall[];
  usage?: { input: number; output: number };
  /** Answer with this HTTP status and `errorBody` instead (500s, 429s, 401s). */
  status?: number;
  errorBody?: unknown;
  /** Wait this long before answering (timeouts). */
  delayMs?: number;
  /** Drop the connection after the headers and these many stream pieces (a broken stream). */
  breakAfterChunks?: number;
  /** The exact response body to send (malformed answers). */
  raw?: string;
}

export interface RecordedRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  /** Parsed JSON when the body was JSON, else the text. */
  body: unknown;
  /** Whether it took a scripted turn (false for side requests and unknown routes). */
  turn: boolean;
}

export type RouteHandler = (ctx: { req: IncomingMessage; res: ServerResponse; body: unknown; server: FakeModelServer }) => Promise<void> | void;

export interface WireFormat {
  name: string;
  routes: Record<string, RouteHandler>;
  /** A request that is not a model turn (answered with `sideText`). */
  isSideRequest?: (path: string, body: unknown) => boolean;
}

export class FakeModelServer {
  readonly requests: RecordedRequest[] = [];
  /** What side requests (title generation and the like) are answered with. */
  sideText = "Orchestrator session";
  chunkSize = 8;
  #turns: ScriptedTurn[] = [];
  #server: Server | undefined;
  #calls = 0;
  readonly #sockets = new Set<import("node:net").Socket>();

  constructor(readonly format: WireFormat) {}

  /** Appends turns to the script. */
  script(...turns: ScriptedTurn[]): this {
    this.#turns.push(...turns);
    return this;
  }

  /** Turns not yet taken. */
  get remaining(): number {
    return this.#turns.length;
  }

  /** The model requests that took a turn, in order. */
  get turnRequests(): RecordedRequest[] {
    return this.requests.filter((r) => r.turn);
  }

  /** Takes the next turn; with none left, a 500 that says so (a test that under-scripted fails loudly). */
  nextTurn(): ScriptedTurn {
    return this.#turns.shift() ?? { status: 500, errorBody: { error: { message: "fake model server: no scripted turn left" } } };
  }

  /** A fresh tool call id. */
  callId(): string {
    return `call_${++this.#calls}`;
  }

  /** The pieces a turn's text streams in. */
  pieces(turn: ScriptedTurn): string[] {
    if (turn.chunks) return turn.chunks;
    const text = turn.text ?? "";
    const out: string[] = [];
    for (let i = 0; i < text.length; i += this.chunkSize) out.push(text.slice(i, i + this.chunkSize));
    return out;
  }

  get url(): string {
    const a = this.#server?.address() as AddressInfo | undefined;
    if (!a) throw new Error("fake model server not started");
    return `http://127.0.0.1:${a.port}`;
  }

  async start(): Promise<this> {
    this.#server = createServer((req, res) => void this.#handle(req, res));
    this.#server.on("connection", (s) => {
      this.#sockets.add(s);
      s.on("close", () => this.#sockets.delete(s));
    });
    await new Promise<void>((resolve) => this.#server!.listen(0, "127.0.0.1", resolve));
    return this;
  }

  async stop(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString("utf8");
    let body: unknown = text;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      /* not JSON: keep the text */
    }
    const path = (req.url ?? "/").split("?")[0]!;
    const key = `${req.method} ${path}`;
    const handler = this.format.routes[key];
    const side = handler !== undefined && (this.format.isSideRequest?.(path, body) ?? false);
    this.requests.push({ method: req.method ?? "GET", path, headers: req.headers, body, turn: handler !== undefined && !side });
    try {
      if (!handler) {
        res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ error: { message: `fake ${this.format.name}: no route ${key}` } }));
        return;
      }
      await handler({ req, res, body, server: this });
    } catch (err) {
      if (!res.headersSent) res.writeHead(500, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { message: (err as Error).message } }));
    }
  }

  /** Common preamble of a turn: its delay, then an error status or a raw body if scripted. Returns true when answered. */
  async answeredSpecially(turn: ScriptedTurn, res: ServerResponse): Promise<boolean> {
    if (turn.delayMs) await new Promise((r) => setTimeout(r, turn.delayMs));
    if (res.destroyed) return true;
    if (turn.status && turn.status >= 400) {
      res
        .writeHead(turn.status, { "content-type": "application/json" })
        .end(JSON.stringify(turn.errorBody ?? { error: { message: `scripted ${turn.status}` } }));
      return true;
    }
    if (turn.raw !== undefined) {
      res.writeHead(200, { "content-type": "application/json" }).end(turn.raw);
      return true;
    }
    return false;
  }
}

/** The model a request names, or `fake-model`. */
export function modelOf(body: unknown): string {
  const m = (body as { model?: unknown } | undefined)?.model;
  return typeof m === "string" && m ? m : "fake-model";
}

/** Drops the connection once what was written has gone out (a stream cut short, not a clean end). */
export function cut(res: ServerResponse): void {
  res.socket?.end();
}

/**
 * A non-streamed answer: the whole JSON body, or, when the turn breaks (`breakAfterChunks`), half of
 * it and a dropped connection.
 */
export function sendWhole(res: ServerResponse, turn: ScriptedTurn, payload: string, contentType = "application/json"): void {
  res.writeHead(200, { "content-type": contentType });
  if (turn.breakAfterChunks !== undefined) {
    res.write(payload.slice(0, Math.floor(payload.length / 2)));
    cut(res);
    return;
  }
  res.end(payload);
}

/**
 * Counts a streamed answer's chunks against the turn's `breakAfterChunks`: call `sent()` after each
 * chunk; it answers whether to go on, and drops the connection at the break.
 */
export function chunkBudget(res: ServerResponse, turn: ScriptedTurn): { sent(): boolean; readonly count: number; spent(): boolean } {
  let n = 0;
  const spent = () => turn.breakAfterChunks !== undefined && n >= turn.breakAfterChunks;
  return {
    sent() {
      n++;
      if (!spent()) return true;
      cut(res);
      return false;
    },
    get count() {
      return n;
    },
    spent,
  };
}

/** Writes Server-Sent Events (`data: <json>\n\n`, optionally with `event:` lines). */
export function sseWriter(res: ServerResponse): { send(data: unknown, event?: string): void; raw(line: string): void; end(): void } {
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
  return {
    send(data, event) {
      res.write(`${event ? `event: ${event}\n` : ""}data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`);
    },
    raw(line) {
      res.write(line);
    },
    end() {
      res.end();
    },
  };
}

/** Writes newline-delimited JSON (Ollama's streaming format). */
export function ndjsonWriter(res: ServerResponse): { send(data: unknown): void; end(): void } {
  res.writeHead(200, { "content-type": "application/x-ndjson" });
  return {
    send(data) {
      res.write(`${JSON.stringify(data)}\n`);
    },
    end() {
      res.end();
    },
  };
}
