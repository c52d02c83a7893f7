import type { ServerResponse } from "node:http";

/**
 * A Server-Sent Events response over the raw socket. Writes wait for `drain`, so a slow client
 * holds at most one frame in our memory; a heartbeat comment keeps proxies from closing it.
 */
export class SseStream {
  #closed = false;
  readonly #heartbeat: NodeJS.Timeout;

  constructor(
    private readonly res: ServerResponse,
    headers: Record<string, string>,
    heartbeatMs: number,
  ) {
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache, no-store, no-transform",
      connection: "keep-alive",
      "x-accel-buffering": "no",
      ...headers,
    });
    res.flushHeaders();
    this.#heartbeat = setInterval(() => void this.#write(": ping\n\n"), heartbeatMs);
    this.#heartbeat.unref();
    res.once("close", () => this.close());
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** One event: `id:` (optional), `event:`, and the JSON `data:` line. */
  send(event: string, data: unknown, id?: number | string): Promise<void> {
    const lines = id === undefined ? "" : `id: ${id}\n`;
    return this.#write(`${lines}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  async #write(chunk: string): Promise<void> {
    if (this.#closed) return;
    if (!this.res.write(chunk)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          this.res.off("drain", done);
          this.res.off("close", done);
          resolve();
        };
        this.res.on("drain", done);
        this.res.on("close", done);
      });
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#heartbeat);
    if (!this.res.writableEnded) this.res.end();
  }
}
