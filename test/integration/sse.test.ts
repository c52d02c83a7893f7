import { readFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Stack, http, sse, waitFor, type SseConnection, type SseFrame } from "@orch/testing";

/**
 * Resumable SSE end to end (/api/v1 streams, real gateway, real JetStream): a client that
 * reconnects with Last-Event-ID during a running workflow misses nothing and sees nothing twice;
 * idle streams carry heartbeats; a client that stops reading is told where to resume and let go,
 * while the gateway's memory stays flat and it keeps serving everyone else.
 */

const HEARTBEAT_MS = 200;
let stack: Stack;
let base: string;

beforeAll(async () => {
  stack = await Stack.start({
    env: { ORCH_RATE_LIMIT_MAX: "100000" },
    serviceEnv: { gateway: { ORCH_SSE_HEARTBEAT_MS: String(HEARTBEAT_MS), ORCH_SSE_MAX_BUFFER_BYTES: "1024" } },
  });
  base = `${stack.baseUrl}/api/v1`;
});

afterAll(async () => {
  await stack?.stop();
});

const ids = (fs: SseFrame[]) => fs.filter((f) => f.id !== undefined).map((f) => Number(f.id));
const increasing = (xs: number[]) => xs.every((x, i) => i === 0 || x > xs[i - 1]!);
const ended = (s: SseConnection, ms = 30_000) =>
  Promise.race([s.ended, new Promise((_, rej) => setTimeout(() => rej(new Error("the stream did not end")), ms))]);

describe("reconnecting with Last-Event-ID", () => {
  it("during a running workflow: no gap and no duplicate across three connections", async () => {
    const step = { type: "ci", payload: { mock: { delayMs: 400 } } };
    const job = await http("POST", `${stack.baseUrl}/api/orchestrator/jobs`, {
      json: { goal: "slow", steps: [step, step, step, step, step], limits: { maxSteps: 10, maxWallMs: 60_000 } },
    });
    expect(job.status).toBe(200);
    const id = job.json().job_id;
    const url = `${base}/runs/${id}/events`;
    // Seed 000 answers once the job is stored; the run exists once the core has created it.
    await waitFor(async () => (await http("GET", `${base}/runs/${id}`)).status === 200, { what: "the job's run" });

    const c1 = await sse(url);
    expect(c1.status).toBe(200);
    await waitFor(() => c1.frames.some((f) => f.event === "step.succeeded"), { what: `a step to succeed: ${JSON.stringify(c1.frames.map((f) => f.event))}` });
    c1.close();
    const first = c1.frames.slice();
    const status = (await http("GET", `${base}/runs/${id}`)).json().status;
    expect(status).toBe("running");
    expect(first.some((f) => f.event === "run.finished")).toBe(false);

    const c2 = await sse(url, { "last-event-id": first.at(-1)!.id! });
    await waitFor(() => c2.frames.filter((f) => f.event === "step.succeeded").length >= 2, {
      what: `two more steps: ${JSON.stringify(c2.frames.map((f) => f.event))}`,
    });
    c2.close();
    const second = c2.frames.slice();
    expect(second.some((f) => f.event === "run.finished")).toBe(false);

    // The third resumes with the query parameter (clients that cannot set the header).
    const c3 = await sse(`${url}?last_event_id=${second.at(-1)!.id}`);
    await ended(c3);
    const third = c3.frames;
    expect(third.at(-1)!.event).toBe("run.finished");

    const full = await sse(url);
    await ended(full);
    const all = [...first, ...second, ...third];
    expect(increasing(ids(all))).toBe(true);
    expect(all.map((f) => [f.id, f.event, f.data])).toEqual(full.frames.map((f) => [f.id, f.event, f.data]));
    expect(full.frames.map((f) => f.json.seq)).toEqual(full.frames.map((_, i) => i + 1));
    expect(full.frames.filter((f) => f.event === "step.succeeded")).toHaveLength(5);
  });

  it("on a project's stream, across runs", async () => {
    const put = await http("PUT", `${base}/projects/resume`, { json: { name: "Resume" } });
    expect(put.status).toBe(201);
    const create = () => http("POST", `${base}/runs`, { json: { definition: "speckit.specify", projectId: "resume", autoStart: false } });
    const a = (await create()).json().id;
    const s1 = await sse(`${base}/projects/resume/events`);
    await s1.waitFor((f) => f.json?.runId === a);
    s1.close();
    const b = (await create()).json().id;
    await http("POST", `${base}/runs/${a}/actions/cancel`);
    const s2 = await sse(`${base}/projects/resume/events`, { "last-event-id": s1.frames.at(-1)!.id! });
    await s2.waitFor((f) => f.event === "run.finished" && f.json.runId === a);
    s2.close();
    const all = [...s1.frames, ...s2.frames];
    expect(increasing(ids(all))).toBe(true);
    const history = (await http("GET", `${base}/events?projectId=resume`)).json().items;
    const upTo = history.findIndex((e: any) => e.id === Number(all.at(-1)!.id));
    expect(all.map((f) => f.json)).toEqual(history.slice(0, upTo + 1));
    expect(new Set(all.map((f) => f.json.runId))).toEqual(new Set([a, b]));
  });
});

describe("heartbeats", () => {
  it("arrive on an idle stream", async () => {
    const run = (await http("POST", `${base}/runs`, { json: { definition: "speckit.specify", autoStart: false } })).json();
    const s = await sse(`${base}/runs/${run.id}/events`);
    await waitFor(() => s.comments.filter((c) => c === "ping").length >= 3, { what: "three heartbeats", timeoutMs: 10_000 });
    s.close();
    expect(s.frames.map((f) => f.event)).toEqual(["run.created"]);
    await http("POST", `${base}/runs/${run.id}/actions/cancel`);
  });
});

// ── a client that stops reading ──────────────────────────────────────────────────────────────

/** The gateway's resident memory, in bytes. */
const rss = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) * 1024;

/** An HTTP/1.1 response body: de-chunked. */
function dechunk(raw: Buffer): string {
  const head = raw.indexOf("\r\n\r\n");
  let i = head + 4;
  const out: Buffer[] = [];
  for (;;) {
    const eol = raw.indexOf("\r\n", i);
    if (eol < 0) break;
    const size = parseInt(raw.subarray(i, eol).toString(), 16);
    if (!Number.isFinite(size) || size === 0) break;
    out.push(raw.subarray(eol + 2, eol + 2 + size));
    i = eol + 2 + size + 2;
  }
  return Buffer.concat(out).toString("utf8");
}

function frames(body: string): { id?: number; event: string; data: string }[] {
  return body
    .split("\n\n")
    .filter((b) => b.trim() && !b.startsWith(":"))
    .map((b) => {
      const f: { id?: number; event: string; data: string } = { event: "message", data: "" };
      for (const line of b.split("\n")) {
        if (line.startsWith("id: ")) f.id = Number(line.slice(4));
        else if (line.startsWith("event: ")) f.event = line.slice(7);
        else if (line.startsWith("data: ")) f.data = line.slice(6);
      }
      return f;
    });
}

/** A raw socket that asks for an event stream and does not read it until told to. */
async function slowClient(port: number, path: string, requestId: string) {
  const sock: Socket = connect({ host: "127.0.0.1", port });
  await new Promise<void>((r) => sock.once("connect", () => r()));
  sock.pause();
  sock.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\nX-Request-ID: ${requestId}\r\n\r\n`);
  return {
    /** Reads everything it was sent, until the response ends (its last chunk) or the connection closes. */
    async readAll(): Promise<Buffer> {
      const chunks: Buffer[] = [];
      let tail = "";
      const done = new Promise<void>((resolve) => {
        sock.once("close", () => resolve());
        sock.on("data", (c: Buffer) => {
          chunks.push(c);
          tail = (tail + c.toString("latin1")).slice(-7);
          if (tail.endsWith("\r\n0\r\n\r\n")) resolve();
        });
      });
      sock.resume();
      await Promise.race([done, new Promise((_, rej) => setTimeout(() => rej(new Error("the gateway did not end the slow client's stream")), 30_000))]);
      return Buffer.concat(chunks);
    },
    destroy: () => sock.destroy(),
  };
}

describe("a client that stops reading", () => {
  it("gets a final `resume` frame with its last event id and is disconnected; memory stays flat; others are served", async () => {
    // Enough that one client's backlog (48 MB) is well above what the gateway's heap moves by anyway
    // (tens of MB, GC included, with the other tests' processes on the same 2 cores).
    const RUNS = 2000;
    const BLOB = "x".repeat(24_000);
    expect((await http("PUT", `${base}/projects/bulk`, { json: { name: "Bulk" } })).status).toBe(201);
    const gw = stack.service("gateway");
    const path = "/api/v1/projects/bulk/events";
    const ended = (requestId: string) => gw.waitForLog((l) => l.requestId === requestId && l.msg === "event stream ended", { timeoutMs: 30_000 });

    // A client that stops reading while lots of big events arrive: far more than socket buffers hold.
    const live = await slowClient(stack.httpPort, path, "slow-live");
    let next = 0;
    const worker = async () => {
      while (next < RUNS) {
        next++;
        const r = await http("POST", `${base}/runs`, { json: { definition: "speckit.specify", projectId: "bulk", autoStart: false, input: { blob: BLOB } } });
        expect(r.status).toBe(201);
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    const volume = RUNS * BLOB.length;
    // The gateway lets it go (and says so) without waiting for it to read.
    await ended("slow-live");

    // More clients that stop reading, each offered the whole backlog: the gateway holds a bounded
    // amount for each (a frame, the consumer's prefetch), not the backlog; buffering it would take
    // three times `volume`.
    const before = rss(gw.pid!);
    const replays = [];
    for (let i = 0; i < 3; i++) {
      replays.push(await slowClient(stack.httpPort, path, `slow-replay-${i}`));
      await ended(`slow-replay-${i}`);
    }
    const after = rss(gw.pid!);
    expect(
      after - before,
      `RSS grew by ${((after - before) / 1e6).toFixed(1)} MB while 3 stalled clients were offered ${(volume / 1e6).toFixed(1)} MB each`,
    ).toBeLessThan(volume);
    for (const r of replays) r.destroy();

    // It keeps serving others, streams included.
    expect((await http("GET", `${stack.baseUrl}/health`)).status).toBe(200);
    const history: any[] = [];
    let cursor: string | undefined;
    do {
      const page = (await http("GET", `${base}/events?projectId=bulk&limit=1000${cursor ? `&cursor=${cursor}` : ""}`)).json();
      history.push(...page.items);
      cursor = page.nextCursor;
    } while (cursor);
    expect(history).toHaveLength(RUNS);
    const other = await sse(`${base}/projects/bulk/events`, { "last-event-id": String(history.at(-3).id) });
    await other.waitFor((f) => Number(f.id) === history.at(-1).id);
    other.close();
    expect(ids(other.frames)).toEqual(history.slice(-2).map((e: any) => e.id));

    // Now read what the first was sent: events in order, then `resume` naming the last one, then the end.
    const raw = await live.readAll();
    expect(raw.subarray(0, 15).toString()).toBe("HTTP/1.1 200 OK");
    const got = frames(dechunk(raw));
    const last = got.at(-1)!;
    expect(last.event).toBe("resume");
    const resume = JSON.parse(last.data);
    const sent = got.filter((f) => f.id !== undefined).map((f) => f.id!);
    expect(sent.length).toBeGreaterThan(0);
    expect(sent.length).toBeLessThan(RUNS);
    expect(resume).toEqual({ reason: "slow_consumer", last_event_id: sent.at(-1), message: expect.any(String) });
    expect(sent).toEqual(history.slice(0, sent.length).map((e: any) => e.id));

    // Resuming from there gives the rest: no gap, no duplicate.
    const rest = await sse(`${base}/projects/bulk/events`, { "last-event-id": String(resume.last_event_id) });
    await rest.waitFor((f) => Number(f.id) === history.at(-1).id, 60_000);
    rest.close();
    expect([...sent, ...ids(rest.frames)]).toEqual(history.map((e: any) => e.id));
  }, 180_000);
});
