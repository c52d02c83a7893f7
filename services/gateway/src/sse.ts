import type { ServerResponse } from "node:http";
import type { FastifyReply, FastifyRequest } from "fastify";

/**
 * Server-Sent Events over the raw socket. Writes wait for `drain`, so a slow client holds at most
 * one frame in our memory; a client whose socket stays full past the deadline (or whose unsent
 * bytes pass the cap) gets a final `resume` event naming the last id it was sent, and is closed, so
 * it reconnects with `Last-Event-ID` and loses nothing. A heartbeat comment keeps proxies from
 * closing an idle stream.
 */

export interface SseLimits {
  heartbeatMs: number;
  /** Unsent bytes a client may hold before it is told to resume. */
  maxBufferBytes: number;
  /** How long a write may wait for the socket to drain. */
  drainTimeoutMs?: number;
}

export const RESUME_EVENT = "resume";

export class SseStream {
  #closed = false;
  #lastId: number | string | undefined;
  #wake: (() => void) | undefined;
  readonly #onClose: (() => void)[] = [];
  readonly #heartbeat: NodeJS.Timeout;
  readonly #limits: Required<SseLimits>;

  constructor(
    private readonly res: ServerResponse,
    headers: Record<string, string>,
    limits: SseLimits,
  ) {
    this.#limits = { drainTimeoutMs: 30_000, ...limits };
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache, no-store, no-transform",
      connection: "keep-alive",
      "x-accel-buffering": "no",
      ...headers,
    });
    res.flushHeaders();
    this.#heartbeat = setInterval(() => void this.#write(": ping\n\n"), this.#limits.heartbeatMs);
    this.#heartbeat.unref();
    res.once("close", () => this.close());
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The id of the last event sent. */
  get lastId(): number | string | undefined {
    return this.#lastId;
  }

  /** One event: `id:` (optional), `event:`, and the JSON `data:` line. */
  async send(event: string, data: unknown, id?: number | string): Promise<void> {
    const lines = id === undefined ? "" : `id: ${id}\n`;
    await this.#write(`${lines}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`, id);
  }

  /**
   * Queues a chunk and waits for the socket to drain. The last id is the last frame handed to the
   * socket (not the last one flushed), so a `resume` names exactly what the client will receive.
   */
  async #write(chunk: string, id?: number | string): Promise<void> {
    if (this.#closed) return;
    // Only a socket that is backed up (a write is waiting for `drain`) counts: within one tick
    // the response is corked, so a fast client's replay also piles up bytes until it flushes.
    if (this.res.writableNeedDrain && this.res.writableLength > this.#limits.maxBufferBytes) return this.#tooSlow();
    const flushed = this.res.write(chunk);
    if (id !== undefined) this.#lastId = id;
    if (flushed) return;
    const drained = await new Promise<boolean>((resolve) => {
      const done = (ok: boolean) => () => {
        clearTimeout(timer);
        this.res.off("drain", onDrain);
        this.res.off("close", onClose);
        resolve(ok);
      };
      const onDrain = done(true);
      const onClose = done(true);
      const timer = setTimeout(done(false), this.#limits.drainTimeoutMs);
      this.res.on("drain", onDrain);
      this.res.on("close", onClose);
      // Told to resume (by a heartbeat that found the buffer full): stop waiting, so the source stops too.
      this.#wake = onClose;
    });
    this.#wake = undefined;
    if (!drained) this.#tooSlow();
  }

  /** Tells the client where to resume from, then lets it go. */
  #tooSlow(): void {
    if (this.#closed) return;
    const data = JSON.stringify({ reason: "slow_consumer", last_event_id: this.#lastId ?? null, message: "Reconnect with Last-Event-ID to resume" });
    this.res.write(`event: ${RESUME_EVENT}\ndata: ${data}\n\n`);
    this.close();
    // A client that never reads again would hold the socket (and what is queued for it) forever.
    const res = this.res;
    const kill = setTimeout(() => res.destroy(), this.#limits.drainTimeoutMs);
    kill.unref();
    res.once("close", () => clearTimeout(kill));
  }

  /** Runs `fn` once the stream is closed (by us or by the client). */
  onClose(fn: () => void): void {
    if (this.#closed) fn();
    else this.#onClose.push(fn);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#heartbeat);
    this.#wake?.();
    for (const fn of this.#onClose.splice(0)) fn();
    if (!this.res.writableEnded) this.res.end();
  }
}

/** Where a reconnecting client left off: `Last-Event-ID`, or `?last_event_id=` for clients that cannot set it. */
export function resumeAfter(req: FastifyRequest): string | undefined {
  const q = (req.query ?? {}) as Record<string, unknown>;
  const raw = req.headers["last-event-id"] ?? q.last_event_id;
  return typeof raw === "string" && raw.trim() !== "" && raw.length <= 64 ? raw.trim() : undefined;
}

export interface SseFrame {
  event: string;
  data: unknown;
  id: string | number;
}

export interface StreamSpec<T> {
  req: FastifyRequest;
  reply: FastifyReply;
  limits: SseLimits;
  headers?: Record<string, string>;
  /** Items after the client's `Last-Event-ID` (all when it sent none), then live ones, until aborted. */
  source: (lastEventId: string | undefined, signal: AbortSignal) => AsyncIterable<T>;
  /** The frame (or frames) for an item (`null` skips it), each with the id a client resumes after. */
  frame: (item: T) => SseFrame | SseFrame[] | null;
  /** Frames sent before the replay (a `ready` event). */
  preamble?: { event: string; data: unknown }[];
  /** Ends the stream after this item (a run's `run.finished`). */
  last?: (item: T) => boolean;
  /**
   * Whether nothing can follow `lastEventId` (a finished run, resumed after its end): then the answer
   * is 204 No Content, which tells an EventSource to stop reconnecting.
   */
  finished?: (lastEventId: string) => Promise<boolean>;
}

/**
 * Streams `source` as SSE, resumable: every frame has an `id:`, and a client that reconnects with
 * `Last-Event-ID` gets exactly the frames after it; one that resumes a finished stream after its
 * last frame gets 204.
 */
export async function streamEvents<T>(spec: StreamSpec<T>): Promise<void> {
  const { req, reply } = spec;
  const after = resumeAfter(req);
  if (after !== undefined && spec.finished && (await spec.finished(after))) {
    await reply
      .code(204)
      .header("cache-control", "no-store")
      .headers(spec.headers ?? {})
      .send();
    return;
  }
  reply.hijack();
  const sse = new SseStream(reply.raw, { "x-request-id": req.id, ...spec.headers }, spec.limits);
  const ac = new AbortController();
  reply.raw.once("close", () => ac.abort());
  // A client told to resume is let go at once: its source stops even while its socket still drains.
  sse.onClose(() => ac.abort());
  try {
    for (const p of spec.preamble ?? []) await sse.send(p.event, p.data);
    for await (const item of spec.source(after, ac.signal)) {
      const f = spec.frame(item);
      for (const x of f === null ? [] : Array.isArray(f) ? f : [f]) await sse.send(x.event, x.data, x.id);
      if (sse.closed || spec.last?.(item)) break;
    }
  } catch (err) {
    if (!ac.signal.aborted) req.log.error({ err }, "event stream failed");
  } finally {
    sse.close();
    ac.abort();
  }
}
