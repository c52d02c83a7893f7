import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

/**
 * What the fake trackers share: one local HTTP server each, every request recorded, and failures
 * a test injects (the next N requests answer `status`, or hang past the client's timeout).
 */

export interface RecordedTrackerRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
  status?: number;
}

export interface InjectedFailure {
  status: number;
  /** How many requests fail (then the tracker answers again); Infinity: until `heal()`. */
  times: number;
  /** Requests answered as usual before the failures start. */
  after: number;
  body?: unknown;
}

export abstract class FakeTrackerServer {
  readonly requests: RecordedTrackerRequest[] = [];
  #server: Server | undefined;
  #sockets = new Set<Socket>();
  #failure: InjectedFailure | undefined;
  url = "";

  protected abstract handle(req: IncomingMessage, body: unknown, rec: RecordedTrackerRequest): Promise<{ status: number; body: unknown }>;

  /**
   * The next `times` requests answer `status` (429 and 5xx: what a tracker that struggles says),
   * after `after` more requests are answered as usual (a failure part way through an operation).
   */
  fail(status: number, times = Infinity, opts: { body?: unknown; after?: number } = {}): void {
    this.#failure = { status, times, after: opts.after ?? 0, ...(opts.body !== undefined ? { body: opts.body } : {}) };
  }

  heal(): void {
    this.#failure = undefined;
  }

  async start(): Promise<this> {
    this.#server = createServer((req, res) => void this.#serve(req, res));
    this.#server.on("connection", (s) => {
      this.#sockets.add(s);
      s.on("close", () => this.#sockets.delete(s));
    });
    await new Promise<void>((resolve) => this.#server!.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  async #serve(req: IncomingMessage, res: ServerResponse) {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString("utf8");
    let body: unknown = undefined;
    try {
      body = raw ? JSON.parse(raw) : undefined;
    } catch {
      body = raw;
    }
    const rec: RecordedTrackerRequest = { method: req.method ?? "GET", path: req.url ?? "/", headers: req.headers, body };
    this.requests.push(rec);
    let out: { status: number; body: unknown } | undefined;
    const f = this.#failure;
    if (f && f.after > 0) f.after--;
    else if (f && f.times > 0) {
      f.times--;
      out = { status: f.status, body: f.body ?? { message: `injected failure ${f.status}` } };
    }
    if (!out) {
      try {
        out = await this.handle(req, body, rec);
      } catch (err) {
        out = { status: 500, body: { message: (err as Error).message } };
      }
    }
    rec.status = out.status;
    res.writeHead(out.status, { "content-type": "application/json; charset=utf-8" });
    res.end(JSON.stringify(out.body ?? null));
  }
}
