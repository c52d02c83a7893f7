import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { connectBus, type Bus } from "@orch/bus";
import { createLogger } from "@orch/logging";
import { Stack, http, waitFor } from "@orch/testing";

/**
 * The operational routes seeds 001 and 004 share, on the real system with an API token set:
 * `/metrics` (open; Prometheus text read from JetStream and the run index at scrape time), seed
 * 001's dead-letter queue (`/dlq…`, bearer) and ours (`/api/v1/dead-letters…`) over the real
 * dead-letter stream, and seed 001's `/openapi.yaml` (open).
 */

const TOKEN = "ops-routes-test-token-0123456789";
const AUTH = { authorization: `Bearer ${TOKEN}` };
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

let stack: Stack;
let base: string;
let bus: Bus;

beforeAll(async () => {
  stack = await Stack.start({ env: { ORCH_API_TOKEN: TOKEN } });
  base = stack.baseUrl;
  bus = await connectBus({ url: stack.nats.url, name: "ops-probe", logger: createLogger({ service: "test", level: "silent" }) });
});

afterAll(async () => {
  await bus?.close();
  await stack?.stop();
});

/** One sample's value from a Prometheus text exposition (undefined when absent). */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) have[k!] = v!;
    if (Object.entries(labels).every(([k, v]) => have[k] === v) && Object.keys(have).length === Object.keys(labels).length) return Number(m[3]);
  }
  return undefined;
}

async function scrape(): Promise<string> {
  const r = await http("GET", `${base}/metrics`);
  expect(r.status, r.text).toBe(200);
  return r.text;
}

const enc = new TextEncoder();
/** A command the core cannot read: it parks it as a dead letter (see dead-letters.test.ts). */
async function poison(id: string, body: string): Promise<void> {
  await bus.js.publish(bus.names.subjects.cmd(id), enc.encode(body), { msgID: id });
}

async function dlqSize(): Promise<number> {
  const r = await http("GET", `${base}/dlq/size`, { headers: AUTH });
  expect(r.status, r.text).toBe(200);
  return r.json().size;
}

describe("GET /metrics", () => {
  it("is open, in Prometheus text format, and counts requests by route pattern, queues and runs by status", async () => {
    const first = await http("GET", `${base}/metrics`);
    expect(first.status).toBe(200);
    expect(first.headers["content-type"]).toBe("text/plain; version=0.0.4; charset=utf-8");
    const t0 = first.text;
    for (const family of [
      "orch_gateway_process_cpu_user_seconds_total",
      "orch_gateway_nodejs_eventloop_lag_seconds",
      "orch_gateway_http_requests_total",
      "orch_gateway_http_request_duration_seconds",
      "orchestrator_queue_size",
      "orch_gateway_dead_letters",
      "orch_gateway_consumer_pending",
      "orch_gateway_runs",
      "orch_gateway_nats_up",
    ]) {
      expect(t0, family).toContain(`# TYPE ${family} `);
    }
    expect(sample(t0, "orch_gateway_nats_up")).toBe(1);
    expect(sample(t0, "orchestrator_queue_size")).toBeGreaterThanOrEqual(0);
    expect(sample(t0, "orch_gateway_consumer_pending", { stream: bus.names.streams.runs, consumer: bus.names.consumers.agentHub })).toBeGreaterThanOrEqual(0);
    expect(sample(t0, "orch_gateway_consumer_ack_pending", { stream: bus.names.streams.cmd, consumer: "core-0" })).toBeGreaterThanOrEqual(0);
    expect(sample(t0, "orch_gateway_stream_messages", { stream: bus.names.streams.dlq })).toBeGreaterThanOrEqual(0);

    const jobs = { method: "POST", route: "/api/orchestrator/jobs", status_code: "200" };
    const before = sample(t0, "orch_gateway_http_requests_total", jobs) ?? 0;
    const completedBefore = sample(t0, "orch_gateway_runs", { status: "completed" }) ?? 0;

    const r = await http("POST", `${base}/api/orchestrator/jobs`, { json: { goal: "counted", limits: { maxSteps: 2 } }, headers: AUTH });
    expect(r.status, r.text).toBe(200);
    const id = r.json().job_id as string;
    await waitFor(async () => (await http("GET", `${base}/api/orchestrator/jobs/${id}`, { headers: AUTH })).json().status === "succeeded", {
      what: "the job succeeds",
    });
    expect((await http("GET", `${base}/no/such/route/${id}`, { headers: AUTH })).status).toBe(404);

    const t1 = await waitFor(
      async () => {
        const t = await scrape();
        return (sample(t, "orch_gateway_runs", { status: "completed" }) ?? 0) >= completedBefore + 1 ? t : undefined;
      },
      { what: "the run index counts the job as completed" },
    );
    expect(sample(t1, "orch_gateway_http_requests_total", jobs)).toBe(before + 1);
    expect(sample(t1, "orch_gateway_http_request_duration_seconds_count", jobs)).toBe(before + 1);
    expect(sample(t1, "orch_gateway_http_request_duration_seconds_bucket", { ...jobs, le: "+Inf" })).toBe(before + 1);
    expect(sample(t1, "orch_gateway_http_requests_total", { method: "GET", route: "/api/orchestrator/jobs/:id", status_code: "200" })).toBeGreaterThanOrEqual(
      1,
    );
    expect(sample(t1, "orch_gateway_http_requests_total", { method: "GET", route: "unmatched", status_code: "404" })).toBe(1);
    expect(sample(t1, "orch_gateway_http_requests_total", { method: "GET", route: "/metrics", status_code: "200" })).toBeGreaterThanOrEqual(1);
    // Route patterns only: no raw URL (the job id) in any label.
    expect(t1).not.toContain(id);
    expect(sample(t1, "orch_gateway_stream_messages", { stream: bus.names.streams.cmd })).toBeGreaterThanOrEqual(1);
  });
});

describe("seed 001 dead-letter queue (/dlq)", () => {
  it("lists real dead letters, counts them, replays them to their subject, and purges them", async () => {
    expect(await dlqSize()).toBe(0);
    expect((await http("GET", `${base}/dlq`, { headers: AUTH })).json()).toEqual({ ok: true, data: [] });

    await poison("ops-garbage-1", "this is not json");
    await poison("ops-garbage-2", JSON.stringify({ type: "job.explode", runId: "ops-garbage-2" }));
    await waitFor(async () => (await dlqSize()) === 2, { what: "two dead letters" });

    const list = await http("GET", `${base}/dlq`, { headers: AUTH });
    expect(list.status).toBe(200);
    const body = list.json();
    expect(body.ok).toBe(true);
    const bySubject = Object.fromEntries(body.data.map((d: { subject: string }) => [d.subject, d]));
    expect(bySubject[bus.names.subjects.cmd("ops-garbage-1")]).toEqual({
      id: expect.any(Number),
      origin: "core",
      subject: bus.names.subjects.cmd("ops-garbage-1"),
      reason: "undecodable",
      error: expect.stringContaining("not JSON"),
      at: expect.stringMatching(ISO),
      deliveries: 1,
    });
    expect(bySubject[bus.names.subjects.cmd("ops-garbage-2")]).toEqual({
      id: expect.any(Number),
      origin: "core",
      subject: bus.names.subjects.cmd("ops-garbage-2"),
      reason: "invalid",
      error: expect.any(String),
      at: expect.stringMatching(ISO),
      deliveries: 1,
      payload: { type: "job.explode", runId: "ops-garbage-2" },
    });
    const oldIds = body.data.map((d: { id: number }) => d.id) as number[];
    expect(oldIds[0]).toBeLessThan(oldIds[1]!);
    const scraped = await waitFor(async () => {
      const t = await scrape();
      return sample(t, "orch_gateway_dead_letters") === 2 ? t : undefined;
    });
    expect(sample(scraped, "orch_gateway_stream_messages", { stream: bus.names.streams.dlq })).toBe(2);

    // Replay one: republished to its command subject, still malformed, so the core parks it again.
    const garbage1 = bySubject[bus.names.subjects.cmd("ops-garbage-1")].id as number;
    const replay = await http("POST", `${base}/dlq/replay`, { json: { ids: [garbage1] }, headers: AUTH });
    expect(replay.status, replay.text).toBe(200);
    expect(replay.json()).toEqual({ ok: true, replayed: 1, failed: 0 });
    const after = await waitFor(
      async () => {
        const d = (await http("GET", `${base}/dlq`, { headers: AUTH })).json().data as { id: number; subject: string }[];
        return d.length === 2 && d.some((x) => x.id > oldIds[1]!) ? d : undefined;
      },
      { what: "the replayed letter parked again" },
    );
    expect(after.map((d) => d.id)).not.toContain(garbage1);
    const again = after.find((d) => d.id > oldIds[1]!)!;
    expect(again).toMatchObject({ subject: bus.names.subjects.cmd("ops-garbage-1"), origin: "core", reason: "undecodable" });
    // It went back through the command stream as a new message, carrying its replay's mark.
    const detail = (await http("GET", `${base}/api/v1/dead-letters/${again.id}`, { headers: AUTH })).json();
    expect(detail.headers["Orch-Replay-Of"]).toBe(`${bus.names.streams.dlq}:${garbage1}`);
    expect(detail.headers["Orch-Original-Msg-Id"]).toBe("ops-garbage-1");
    expect(Buffer.from(detail.data, "base64").toString()).toBe("this is not json");

    // Unknown ids fail and change nothing; a bad body is a 400 in seed 001's shape.
    expect((await http("POST", `${base}/dlq/replay`, { json: { ids: [987654] }, headers: AUTH })).json()).toEqual({ ok: true, replayed: 0, failed: 1 });
    const bad = await http("POST", `${base}/dlq/replay`, { json: { ids: "all" }, headers: AUTH });
    expect(bad.status).toBe(400);
    expect(bad.json()).toEqual({ ok: false, error: "invalid_request" });
    expect(await dlqSize()).toBe(2);

    // No body (even with a JSON content type): every dead letter.
    const all = await http("POST", `${base}/dlq/replay`, { headers: { ...AUTH, "content-type": "application/json" } });
    expect(all.status, all.text).toBe(200);
    expect(all.json()).toEqual({ ok: true, replayed: 2, failed: 0 });
    const maxBefore = Math.max(...after.map((d) => d.id));
    await waitFor(
      async () => {
        const d = (await http("GET", `${base}/dlq`, { headers: AUTH })).json().data as { id: number }[];
        return d.length === 2 && d.every((x) => x.id > maxBefore);
      },
      { what: "both parked again" },
    );

    const purge = await http("DELETE", `${base}/dlq`, { headers: AUTH });
    expect(purge.status).toBe(200);
    expect(purge.json()).toEqual({ ok: true, purged: 2 });
    expect(await dlqSize()).toBe(0);
    expect((await http("GET", `${base}/dlq`, { headers: AUTH })).json()).toEqual({ ok: true, data: [] });
    expect((await http("DELETE", `${base}/dlq`, { headers: AUTH })).json()).toEqual({ ok: true, purged: 0 });

    // The system kept going.
    const r = await http("POST", `${base}/api/orchestrator/jobs`, { json: { goal: "still working", limits: { maxSteps: 1 } }, headers: AUTH });
    const jobId = r.json().job_id;
    await waitFor(async () => (await http("GET", `${base}/api/orchestrator/jobs/${jobId}`, { headers: AUTH })).json().status === "succeeded");
  });
});

describe("/api/v1/dead-letters", () => {
  it("pages, shows one, replays with a result per letter, and purges, in our error shape", async () => {
    for (let i = 1; i <= 3; i++) await poison(`ops-v1-${i}`, `not json ${i}`);
    await waitFor(async () => (await http("GET", `${base}/api/v1/dead-letters`, { headers: AUTH })).json().total === 3, { what: "three dead letters" });

    const p1 = await http("GET", `${base}/api/v1/dead-letters?limit=2`, { headers: AUTH });
    expect(p1.status).toBe(200);
    const page1 = p1.json();
    expect(page1.total).toBe(3);
    expect(page1.items).toHaveLength(2);
    expect(page1.nextAfter).toBe(page1.items[1].id);
    expect(page1.items[0]).toEqual({
      id: expect.any(Number),
      origin: "core",
      stream: bus.names.streams.cmd,
      streamSeq: expect.any(Number),
      subject: expect.stringMatching(/^orch\.cmd\.\d+\.ops-v1-\d$/),
      reason: "undecodable",
      error: expect.any(String),
      at: expect.stringMatching(ISO),
      deliveries: 1,
    });
    const page2 = (await http("GET", `${base}/api/v1/dead-letters?limit=2&after=${page1.nextAfter}`, { headers: AUTH })).json();
    expect(page2.items).toHaveLength(1);
    expect(page2.nextAfter).toBeUndefined();
    expect(page2.items[0].id).toBeGreaterThan(page1.nextAfter);
    const ids = [...page1.items, ...page2.items].map((d: { id: number }) => d.id);
    expect(new Set(ids).size).toBe(3);

    const one = await http("GET", `${base}/api/v1/dead-letters/${ids[0]}`, { headers: AUTH });
    expect(one.status).toBe(200);
    const d = one.json();
    expect(d).toMatchObject({ id: ids[0], origin: "core", reason: "undecodable", size: Buffer.byteLength(Buffer.from(d.data, "base64")) });
    expect(Buffer.from(d.data, "base64").toString()).toMatch(/^not json \d$/);
    expect(d.headers["Nats-Msg-Id"]).toMatch(/^ops-v1-\d$/);

    const missing = await http("GET", `${base}/api/v1/dead-letters/987654`, { headers: AUTH });
    expect(missing.status).toBe(404);
    expect(missing.json()).toEqual({ error: { code: "NOT_FOUND", message: expect.any(String) } });
    const malformed = await http("GET", `${base}/api/v1/dead-letters/abc`, { headers: AUTH });
    expect(malformed.status).toBe(400);
    expect(malformed.json().error.code).toBe("BAD_REQUEST");
    const badBody = await http("POST", `${base}/api/v1/dead-letters/replay`, { json: { limit: 0 }, headers: AUTH });
    expect(badBody.status).toBe(400);
    expect(badBody.json().error.code).toBe("BAD_REQUEST");

    const replay = await http("POST", `${base}/api/v1/dead-letters/replay`, { json: { ids: [ids[0], 987654] }, headers: AUTH });
    expect(replay.status, replay.text).toBe(200);
    expect(replay.json()).toEqual({
      replayed: 1,
      failed: 1,
      results: [
        { id: ids[0], status: "replayed" },
        { id: 987654, status: "not_found", error: expect.any(String) },
      ],
    });
    // Gone under its old id; back under a new one (still malformed).
    expect((await http("GET", `${base}/api/v1/dead-letters/${ids[0]}`, { headers: AUTH })).status).toBe(404);
    await waitFor(
      async () => {
        const l = (await http("GET", `${base}/api/v1/dead-letters`, { headers: AUTH })).json();
        return l.total === 3 && l.items.some((x: { id: number }) => x.id > Math.max(...ids));
      },
      { what: "the replayed letter parked again" },
    );

    const unauth = await http("GET", `${base}/api/v1/dead-letters`);
    expect(unauth.status).toBe(401);
    expect(unauth.json()).toEqual({ error: { code: "UNAUTHORIZED", message: expect.any(String) } });

    const purge = await http("DELETE", `${base}/api/v1/dead-letters`, { headers: AUTH });
    expect(purge.status).toBe(200);
    expect(purge.json()).toEqual({ purged: 3 });
    expect((await http("GET", `${base}/api/v1/dead-letters`, { headers: AUTH })).json()).toEqual({ items: [], total: 0 });
  });
});

describe("GET /openapi.yaml", () => {
  it("is open and is the generated OpenAPI 3.1 document", async () => {
    const r = await http("GET", `${base}/openapi.yaml`);
    expect(r.status).toBe(200);
    expect(r.headers["content-type"]).toMatch(/^application\/yaml/);
    expect(r.text).not.toMatch(/(^|\s)[&*]a\d+\b/m);
    const doc = parse(r.text);
    expect(doc.openapi).toBe("3.1.0");
    for (const p of [
      "/metrics",
      "/openapi.yaml",
      "/dlq",
      "/dlq/size",
      "/dlq/replay",
      "/api/v1/dead-letters",
      "/api/v1/dead-letters/{id}",
      "/api/v1/dead-letters/replay",
    ]) {
      expect(doc.paths, p).toHaveProperty([p]);
    }
    const docs = await http("GET", `${base}/docs/openapi.yaml`);
    expect(parse(docs.text, { maxAliasCount: -1 })).toEqual(doc);
  });
});

describe("auth", () => {
  it("leaves /metrics and /openapi.yaml open and puts the dead-letter routes behind the bearer", async () => {
    expect((await http("GET", `${base}/metrics`)).status).toBe(200);
    expect((await http("GET", `${base}/openapi.yaml`)).status).toBe(200);
    for (const [method, path] of [
      ["GET", "/dlq"],
      ["GET", "/dlq/size"],
      ["POST", "/dlq/replay"],
      ["DELETE", "/dlq"],
    ] as const) {
      for (const headers of [{}, { authorization: "Bearer wrong-token" }]) {
        const r = await http(method, `${base}${path}`, { headers });
        expect(r.status, `${method} ${path}`).toBe(401);
        expect(r.json()).toEqual({ ok: false, error: "unauthorized" });
      }
    }
    expect((await http("GET", `${base}/dlq/size`, { headers: AUTH })).status).toBe(200);
  });
});

describe("/metrics without NATS", () => {
  it("still answers, with what it has and orch_gateway_nats_up 0", async () => {
    await stack.nats.kill();
    try {
      const r = await waitFor(
        async () => {
          const started = Date.now();
          const res = await http("GET", `${base}/metrics`);
          expect(res.status).toBe(200);
          expect(Date.now() - started).toBeLessThan(10_000);
          return sample(res.text, "orch_gateway_nats_up") === 0 ? res : undefined;
        },
        { timeoutMs: 20_000, what: "a scrape without NATS" },
      );
      expect(sample(r.text, "orch_gateway_http_requests_total", { method: "GET", route: "/metrics", status_code: "200" })).toBeGreaterThanOrEqual(1);
      expect(r.text).toContain("# TYPE orchestrator_queue_size gauge");
      expect(sample(r.text, "orchestrator_queue_size")).toBeUndefined();
    } finally {
      await stack.nats.restart();
    }
  });
});
