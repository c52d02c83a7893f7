import { EventSourceParserStream } from "eventsource-parser/stream";
import { CliError, ExitCode, exitCodeOf, type ServerError } from "./errors.js";

/**
 * The gateway's HTTP API and its event streams, as `orch` uses them. Every failure is a CliError
 * whose exit code says what went wrong (errors.ts); the server's `{error: {code, message,
 * details}}` is kept, so its reason can be printed.
 *
 * Event streams send `Authorization: Bearer` like every other request (the gateway accepts it on
 * SSE routes; stream tokens exist for browsers' EventSource, which cannot set headers).
 */

export interface ClientOptions {
  url: string;
  token?: string | undefined;
  /** Recorded as who acted (`X-Actor`). */
  actor?: string | undefined;
}

export interface Frame {
  event: string;
  data: string;
  id?: string | undefined;
}

type Query = Record<string, string | number | readonly string[] | undefined>;

export class Client {
  readonly base: string;
  constructor(readonly opts: ClientOptions) {
    this.base = opts.url.replace(/\/+$/, "");
  }

  #url(path: string, query?: Query): string {
    const u = new URL(this.base + path);
    for (const [k, v] of Object.entries(query ?? {})) {
      if (v === undefined) continue;
      if (Array.isArray(v)) for (const x of v) u.searchParams.append(k, x);
      else u.searchParams.set(k, String(v));
    }
    return u.toString();
  }

  #headers(extra: Record<string, string> = {}): Record<string, string> {
    return {
      ...(this.opts.token ? { authorization: `Bearer ${this.opts.token}` } : {}),
      ...(this.opts.actor ? { "x-actor": this.opts.actor } : {}),
      ...extra,
    };
  }

  async #fetch(method: string, path: string, init: { query?: Query; json?: unknown; headers?: Record<string, string>; signal?: AbortSignal | undefined }) {
    const url = this.#url(path, init.query);
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers: this.#headers({ ...(init.json !== undefined ? { "content-type": "application/json" } : {}), ...init.headers }),
        ...(init.json !== undefined ? { body: JSON.stringify(init.json) } : {}),
        ...(init.signal ? { signal: init.signal } : {}),
      });
    } catch (err) {
      if ((err as Error).name === "AbortError") throw err;
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      const why = cause?.code ?? cause?.message ?? (err as Error).message;
      throw new CliError(ExitCode.Unreachable, `cannot reach the gateway at ${this.base}: ${why} (set ORCH_URL or --url)`, undefined, { cause: err });
    }
    if (!res.ok) throw await httpError(method, path, res);
    return res;
  }

  /** A JSON request; the answer's body, parsed. */
  async request<T = any>(method: string, path: string, init: { query?: Query; json?: unknown; headers?: Record<string, string> } = {}): Promise<T> {
    const res = await this.#fetch(method, path, init);
    const text = await res.text();
    if (text === "") return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new CliError(ExitCode.Server, `${method} ${path}: the server answered ${res.status} with a body that is not JSON`);
    }
  }

  get = <T = any>(path: string, query?: Query) => this.request<T>("GET", path, query ? { query } : {});
  post = <T = any>(path: string, json?: unknown, headers?: Record<string, string>) =>
    this.request<T>("POST", path, { ...(json !== undefined ? { json } : {}), ...(headers ? { headers } : {}) });

  /**
   * The frames of an event stream until it ends (the server closed it, or answered 204 for a
   * stream already over). `lastEventId` resumes after that id.
   */
  async *stream(
    path: string,
    init: { method?: string; json?: unknown; lastEventId?: string | undefined; signal?: AbortSignal | undefined } = {},
  ): AsyncGenerator<Frame> {
    const res = await this.#fetch(init.method ?? "GET", path, {
      headers: { accept: "text/event-stream", ...(init.lastEventId ? { "last-event-id": init.lastEventId } : {}) },
      json: init.json,
      signal: init.signal,
    });
    if (res.status === 204 || !res.body) return;
    const type = res.headers.get("content-type") ?? "";
    if (!type.startsWith("text/event-stream")) {
      throw new CliError(ExitCode.Server, `${path}: expected an event stream, the server answered ${type || "no content type"}`);
    }
    const frames = res.body.pipeThrough(new TextDecoderStream()).pipeThrough(new EventSourceParserStream());
    const reader = frames.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        yield { event: value.event ?? "message", data: value.data, id: value.id };
      }
    } catch (err) {
      if ((err as Error).name === "AbortError" || init.signal?.aborted) return;
      throw new CliError(ExitCode.Unreachable, `${path}: the event stream broke: ${(err as Error).message}`, undefined, { cause: err });
    } finally {
      reader.releaseLock();
      await res.body.cancel().catch(() => undefined);
    }
  }

  /**
   * A resumable stream followed to its end: reconnects with `Last-Event-ID` when the server asks
   * (`event: resume`, a slow consumer) or the connection drops, until `done(frame)` says so or the
   * server ends the stream itself.
   */
  async *follow(path: string, done: (f: Frame) => boolean, signal?: AbortSignal): AsyncGenerator<Frame> {
    let last: string | undefined;
    for (let attempt = 0; ; attempt++) {
      let resume = false;
      try {
        for await (const f of this.stream(path, { lastEventId: last, signal })) {
          if (f.event === "resume") {
            resume = true;
            break;
          }
          if (f.id) last = f.id;
          attempt = 0;
          yield f;
          if (done(f)) return;
        }
        if (!resume) return;
      } catch (err) {
        if (signal?.aborted) return;
        if (!(err instanceof CliError) || err.exitCode !== ExitCode.Unreachable || attempt >= 5) throw err;
        await new Promise((r) => setTimeout(r, 500 * 2 ** attempt));
      }
    }
  }
}

async function httpError(method: string, path: string, res: Response): Promise<CliError> {
  const text = await res.text().catch(() => "");
  let server: ServerError | undefined;
  try {
    const body = JSON.parse(text) as { error?: ServerError; detail?: unknown; message?: string };
    if (body.error && typeof body.error === "object" && typeof body.error.message === "string") server = body.error;
    else if (typeof body.detail === "string") server = { code: String(res.status), message: body.detail };
    else if (typeof body.message === "string") server = { code: String(res.status), message: body.message };
  } catch {
    // not JSON: say what the status says
  }
  const code = exitCodeOf(res.status, server?.code);
  const hint = code === ExitCode.Auth ? " (set ORCH_API_TOKEN or --token)" : "";
  const message = server ? `${server.message}${reasonOf(server)}` : `${res.status} ${res.statusText}`;
  return new CliError(code, `${method} ${path}: ${res.status} ${server?.code ?? res.statusText}: ${message}${hint}`, server);
}

/** The part of the server's details worth printing: the engine's reason, the invalid fields. */
export function reasonOf(e: ServerError): string {
  const d = e.details as
    { reason?: unknown; fields?: { path: string; message: string }[]; formErrors?: string[]; fieldErrors?: Record<string, string[]> } | undefined;
  const parts: string[] = [];
  if (d && typeof d.reason === "string") parts.push(`reason ${d.reason}`);
  if (d && Array.isArray(d.fields)) parts.push(...d.fields.map((f) => `${f.path || "(body)"}: ${f.message}`));
  // Seed 000's "Invalid Task Packet" carries zod's flattened errors.
  if (d && Array.isArray(d.formErrors)) parts.push(...d.formErrors);
  if (d && d.fieldErrors && typeof d.fieldErrors === "object") parts.push(...Object.entries(d.fieldErrors).map(([k, v]) => `${k}: ${v.join(", ")}`));
  return parts.length ? ` (${parts.join("; ")})` : "";
}
