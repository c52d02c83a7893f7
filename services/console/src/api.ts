/**
 * The console's one way to the gateway: `/api/v1` with the API token the user entered (kept in this
 * browser's localStorage, sent as `Authorization: Bearer`, never rendered), refusals as `ApiError`
 * carrying the server's `{error: {code, message}}`, event streams over EventSource with signed
 * stream tokens, and the supervisor's streamed answers.
 */

const TOKEN_KEY = "orch.console.token";

export const token = {
  get: (): string | null => localStorage.getItem(TOKEN_KEY),
  set: (t: string) => localStorage.setItem(TOKEN_KEY, t.trim()),
  clear: () => localStorage.removeItem(TOKEN_KEY),
};

/** A refusal or failure: the server's code and message, or what went wrong on the way. */
export class ApiError extends Error {
  override name = "ApiError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

function headers(extra: Record<string, string> = {}): Record<string, string> {
  const t = token.get();
  return { accept: "application/json", "x-actor": "console", ...(t ? { authorization: `Bearer ${t}` } : {}), ...extra };
}

/** The `{error: {code, message}}` of a refused answer, whatever its body turned out to be. */
async function refusal(res: Response): Promise<ApiError> {
  const text = await res.text().catch(() => "");
  try {
    const body = JSON.parse(text) as { error?: { code?: string; message?: string; details?: unknown } | string; detail?: unknown };
    if (body.error && typeof body.error === "object") {
      return new ApiError(res.status, body.error.code ?? `HTTP_${res.status}`, body.error.message ?? res.statusText, body.error.details);
    }
  } catch {
    // not JSON: said below
  }
  return new ApiError(res.status, `HTTP_${res.status}`, text.slice(0, 300) || res.statusText || `HTTP ${res.status}`);
}

export async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers: headers(body === undefined ? {} : { "content-type": "application/json" }),
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  } catch (err) {
    throw new ApiError(0, "NETWORK", `The gateway did not answer (${(err as Error).message})`);
  }
  if (!res.ok) throw await refusal(res);
  if (res.status === 204) return undefined as T;
  return (await res.json()) as T;
}

export const api = {
  get: <T>(path: string) => request<T>("GET", `/api/v1${path}`),
  post: <T>(path: string, body?: unknown) => request<T>("POST", `/api/v1${path}`, body),
  del: <T>(path: string) => request<T>("DELETE", `/api/v1${path}`),
};

/** `?a=1&b=2` from the set values (arrays repeat the key). */
export function query(q: Record<string, string | string[] | number | undefined>): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) {
    if (v === undefined || v === "") continue;
    for (const x of [v].flat()) if (x !== "") p.append(k, String(x));
  }
  const s = p.toString();
  return s ? `?${s}` : "";
}

// ── event streams ────────────────────────────────────────────────────────────────────────────────

export interface StreamFrame {
  id: number;
  type: string;
  data: unknown;
}

export type StreamState = "connecting" | "open" | "retrying" | "ended";

export interface StreamOptions {
  /** The event types to listen for (EventSource only reports named events it is told of). */
  types: readonly string[];
  onFrame: (f: StreamFrame) => void;
  onState?: (s: StreamState, detail?: string) => void;
  /** The stream has nothing after this frame (a run's `run.finished`): do not reconnect. */
  isLast?: (f: StreamFrame) => boolean;
  /** Resume after this id (frames up to it were seen already). */
  after?: number;
}

/** Every live stream, so a test can drop their connections (`window.__orchConsole.dropStreams()`). */
const live = new Set<EventStream>();

/**
 * A resumable event stream. EventSource cannot send headers, so each connection opens with a fresh
 * stream token (`POST /api/v1/stream-tokens`, minutes long) and `?last_event_id=` naming the last
 * frame seen; the browser's own reconnect would reuse an expired token, so reconnecting is done
 * here, with backoff. Frames at or below the last id seen are dropped: no duplicate reaches the page.
 */
export class EventStream {
  #es: EventSource | undefined;
  #last: number;
  #closed = false;
  #ended = false;
  #retries = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    readonly path: string,
    private readonly opts: StreamOptions,
  ) {
    this.#last = opts.after ?? 0;
    live.add(this);
    void this.#open();
  }

  get lastId(): number {
    return this.#last;
  }

  async #open(): Promise<void> {
    if (this.#closed) return;
    this.opts.onState?.(this.#retries === 0 ? "connecting" : "retrying");
    // A stream token opens a path; the stream's own query (`?recent=`) rides along.
    const [path = "", search = ""] = this.path.split("?");
    let url = path;
    const params = new URLSearchParams(search);
    if (token.get()) {
      try {
        const t = await request<{ token: string }>("POST", "/api/v1/stream-tokens", { path });
        params.set("access_token", t.token);
      } catch (err) {
        // A refusal (401, 404) will not change by retrying: say so and stop.
        if (err instanceof ApiError && err.status >= 400 && err.status < 500 && err.status !== 429) {
          this.opts.onState?.("ended", `${err.code}: ${err.message}`);
          return this.close();
        }
        return this.#retry(err instanceof Error ? err.message : String(err));
      }
    }
    if (this.#closed) return;
    if (this.#last > 0) params.set("last_event_id", String(this.#last));
    if ([...params].length) url += `?${params}`;
    const es = new EventSource(url);
    this.#es = es;
    es.onopen = () => {
      this.#retries = 0;
      this.opts.onState?.("open");
    };
    const onMessage = (type: string) => (ev: MessageEvent<string>) => {
      const id = Number(ev.lastEventId);
      if (!Number.isFinite(id) || id <= this.#last) return;
      this.#last = id;
      let data: unknown;
      try {
        data = JSON.parse(ev.data);
      } catch {
        data = ev.data;
      }
      const frame = { id, type, data };
      this.opts.onFrame(frame);
      if (this.opts.isLast?.(frame)) this.#ended = true;
    };
    for (const t of this.opts.types) es.addEventListener(t, onMessage(t) as EventListener);
    // The server tells a client that fell behind where to resume: the next connection does.
    es.addEventListener("resume", () => this.#reconnect("the server asked to resume"));
    es.onerror = () => this.#reconnect("connection lost");
  }

  #reconnect(why: string): void {
    this.#es?.close();
    this.#es = undefined;
    if (this.#closed) return;
    if (this.#ended) {
      this.opts.onState?.("ended");
      return this.close();
    }
    this.#retry(why);
  }

  #retry(why: string): void {
    if (this.#closed) return;
    this.#retries++;
    const delay = Math.min(10_000, 500 * 2 ** Math.min(this.#retries - 1, 5));
    this.opts.onState?.("retrying", why);
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#open(), delay);
  }

  /** Drops the connection as a network failure would (the stream reconnects where it was). */
  drop(): void {
    if (this.#es) this.#reconnect("dropped");
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#es?.close();
    live.delete(this);
  }
}

declare global {
  interface Window {
    __orchConsole?: { dropStreams: () => number };
  }
}
if (typeof window !== "undefined") {
  window.__orchConsole = {
    dropStreams: () => {
      for (const s of live) s.drop();
      return live.size;
    },
  };
}

// ── the supervisor ───────────────────────────────────────────────────────────────────────────────

export interface AskHandlers {
  onDelta: (text: string) => void;
  onDone: (model: string | undefined) => void;
  onError: (e: ApiError) => void;
}

/**
 * Asks the supervisor about a run: `POST /api/v1/runs/{id}/ask {question, stepId?}` answers JSON
 * 4xx/503 before streaming, or `text/event-stream` frames `delta` `{text}`, then `done` `{model}`,
 * or `error` `{error: {code, message}}`. Read with fetch and a stream reader (a POST, with headers).
 */
export async function ask(runId: string, body: { question: string; stepId?: string }, h: AskHandlers, signal?: AbortSignal): Promise<void> {
  let res: Response;
  try {
    res = await fetch(`/api/v1/runs/${encodeURIComponent(runId)}/ask`, {
      method: "POST",
      headers: headers({ "content-type": "application/json", accept: "text/event-stream" }),
      body: JSON.stringify(body),
      ...(signal ? { signal } : {}),
    });
  } catch (err) {
    return h.onError(new ApiError(0, "NETWORK", `The gateway did not answer (${(err as Error).message})`));
  }
  if (!res.ok) return h.onError(await refusal(res));
  if (!(res.headers.get("content-type") ?? "").includes("text/event-stream") || !res.body) {
    return h.onError(new ApiError(res.status, "BAD_ANSWER", `Expected an event stream, got ${res.headers.get("content-type") ?? "nothing"}`));
  }
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  let finished = false;
  const dispatch = (block: string) => {
    let event = "message";
    const data: string[] = [];
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) continue;
      const i = line.indexOf(":");
      const field = i < 0 ? line : line.slice(0, i);
      const value = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
      if (field === "event") event = value;
      else if (field === "data") data.push(value);
    }
    if (data.length === 0) return;
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(data.join("\n")) as Record<string, unknown>;
    } catch {
      body = { text: data.join("\n") };
    }
    if (event === "delta" && typeof body.text === "string") h.onDelta(body.text);
    else if (event === "done") {
      finished = true;
      h.onDone(typeof body.model === "string" ? body.model : undefined);
    } else if (event === "error") {
      finished = true;
      const e = (body.error ?? {}) as { code?: string; message?: string };
      h.onError(new ApiError(res.status, e.code ?? "ERROR", e.message ?? "The supervisor failed"));
    }
  };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value.replace(/\r\n?/g, "\n");
      let i: number;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        dispatch(buf.slice(0, i));
        buf = buf.slice(i + 2);
      }
    }
    if (buf.trim()) dispatch(buf);
  } catch (err) {
    if (signal?.aborted) return;
    finished = true;
    h.onError(new ApiError(0, "NETWORK", `The answer was cut off (${(err as Error).message})`));
  }
  if (!finished && !signal?.aborted) h.onError(new ApiError(0, "INCOMPLETE", "The answer ended before it was done"));
}
