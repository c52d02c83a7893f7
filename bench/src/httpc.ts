import { Agent, request } from "node:http";

/**
 * JSON over HTTP/1.1 with keep-alive connections, for the peers' synchronous entry points (Restate's
 * ingress, the DBOS worker): one socket per workflow in flight, reused, as a client of theirs would.
 */
export class JsonClient {
  readonly #agent: Agent;

  constructor(
    private readonly base: string,
    maxSockets: number,
  ) {
    this.#agent = new Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets });
  }

  post(path: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
    const data = Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = request(
        `${this.base}${path}`,
        { method: "POST", agent: this.#agent, headers: { "content-type": "application/json", "content-length": data.length, ...headers } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      req.end(data);
    });
  }

  close(): void {
    this.#agent.destroy();
  }
}

/** GET, status and body, on a fresh connection (readiness probes). */
export function httpGet(url: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: "GET", agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}
