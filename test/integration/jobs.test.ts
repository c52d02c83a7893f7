import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ServiceProcess, Stack, freePort, http, sse, waitFor, type SseFrame } from "@orch/testing";

/**
 * Seed 000 end to end: HTTP over a real socket to the gateway, through NATS JetStream, the core,
 * the scheduler and the agent hub, back as SSE. Every behaviour its document and its original
 * implementation define, as a user's client sees it.
 */

let stack: Stack;
let base: string;

beforeAll(async () => {
  stack = await Stack.start();
  base = stack.baseUrl;
});

afterAll(async () => {
  await stack?.stop();
});

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

async function submit(packet: unknown): Promise<string> {
  const r = await http("POST", `${base}/api/orchestrator/jobs`, { json: packet });
  expect(r.status, r.text).toBe(200);
  return r.json().job_id;
}

/** Every frame of a job's stream, from `ready` to `end` (the server closes the stream). */
async function frames(jobId: string, headers: Record<string, string> = {}): Promise<SseFrame[]> {
  const s = await sse(`${base}/api/orchestrator/events?job=${jobId}`, headers);
  expect(s.status).toBe(200);
  await Promise.race([s.ended, new Promise((_, rej) => setTimeout(() => rej(new Error("stream did not end")), 30_000))]);
  return s.frames;
}

const types = (fs: SseFrame[]) => fs.map((f) => f.event);

describe("seed 000 jobs", () => {
  it("runs the documented example and streams start → end, then closes", async () => {
    const r = await http("POST", `${base}/api/orchestrator/jobs`, {
      json: { goal: "hello", steps: [], limits: { maxSteps: 3, maxWallMs: 2000 } },
    });
    expect(r.status).toBe(200);
    expect(r.headers["cache-control"]).toBe("no-store");
    expect(Object.keys(r.json())).toEqual(["job_id"]);
    const id = r.json().job_id as string;
    expect(id).toMatch(UUID);

    const fs = await frames(id);
    expect(types(fs)).toEqual(["ready", "start", "step.start", "step.ok", "end"]);
    expect(fs[0]!.json).toEqual({ job_id: id, mode: "mock" });
    expect(fs[0]!.id).toBeUndefined();
    const ids = fs.slice(1).map((f) => Number(f.id));
    expect(ids.every((n) => Number.isInteger(n) && n > 0)).toBe(true);
    expect([...ids].sort((a, b) => a - b)).toEqual(ids);
    for (const f of fs.slice(1)) {
      expect(f.json.job_id).toBe(id);
      expect(f.json.type).toBe(f.event);
      expect(typeof f.json.t).toBe("number");
    }
    expect(fs[2]!.json.data).toEqual({ i: 0, step: { type: "dev.log" } });
    expect(fs[3]!.json.data).toEqual({ i: 0 });
    expect(fs[4]!.json.data).toEqual({ status: "succeeded" });

    const job = (await http("GET", `${base}/api/orchestrator/jobs/${id}`)).json();
    expect(job).toMatchObject({ job_id: id, status: "succeeded", stepsRun: 1 });
    expect(new Date(job.started_at).toISOString()).toBe(job.started_at);
    expect(Date.parse(job.finished_at)).toBeGreaterThanOrEqual(Date.parse(job.started_at));
    expect(job.error).toBeUndefined();
  });

  it("replays every event to a client that connects after the job ended", async () => {
    const id = await submit({ goal: "late", steps: [{ type: "ci" }, { type: "docs" }], limits: { maxSteps: 3 } });
    await waitFor(async () => (await http("GET", `${base}/api/orchestrator/jobs/${id}`)).json().status === "succeeded");
    const first = await frames(id);
    const second = await frames(id);
    expect(types(first)).toEqual(["ready", "start", "step.start", "step.ok", "step.start", "step.ok", "end"]);
    expect(second.map((f) => [f.id, f.data])).toEqual(first.map((f) => [f.id, f.data]));
  });

  it("streams live to a client that connects before the job runs", async () => {
    const id = await submit({ goal: "live", steps: [{ type: "ci", payload: { mock: { delayMs: 600 } } }], limits: { maxSteps: 1 } });
    const s = await sse(`${base}/api/orchestrator/events?job=${id}`);
    await s.waitFor((f) => f.event === "step.start");
    expect(s.frames.some((f) => f.event === "end")).toBe(false);
    await s.ended;
    expect(types(s.frames)).toEqual(["ready", "start", "step.start", "step.ok", "end"]);
  });

  it("retries a step that fails twice, then succeeds (step.retry ×2, step.ok)", async () => {
    const id = await submit({ goal: "flaky", steps: [{ type: "ci", payload: { mock: { failTimes: 2 } } }], limits: { maxSteps: 3, maxWallMs: 10_000 } });
    const fs = await frames(id);
    expect(types(fs)).toEqual(["ready", "start", "step.start", "step.retry", "step.retry", "step.ok", "end"]);
    const [r1, r2] = fs.filter((f) => f.event === "step.retry").map((f) => f.json.data);
    expect(r1).toMatchObject({ i: 0, attempt: 1 });
    expect(r2).toMatchObject({ i: 0, attempt: 2 });
    expect(r1.backoffMs).toBeGreaterThanOrEqual(100);
    expect(r1.backoffMs).toBeLessThanOrEqual(130);
    expect(r2.backoffMs).toBeGreaterThanOrEqual(200);
    expect(r2.backoffMs).toBeLessThanOrEqual(230);
    expect(fs.at(-1)!.json.data).toEqual({ status: "succeeded" });
  });

  it("fails a job whose step always fails, with the step's error", async () => {
    const id = await submit({
      goal: "doomed",
      steps: [{ type: "ci", payload: { mock: { failTimes: 9, error: "tests red" } } }, { type: "docs" }],
      limits: { maxSteps: 3 },
    });
    const fs = await frames(id);
    expect(types(fs)).toEqual(["ready", "start", "step.start", "step.retry", "step.retry", "step.error", "end"]);
    expect(fs.find((f) => f.event === "step.error")!.json.data).toEqual({ i: 0, error: "tests red" });
    expect(fs.at(-1)!.json.data).toEqual({ status: "failed" });
    expect((await http("GET", `${base}/api/orchestrator/jobs/${id}`)).json()).toMatchObject({ status: "failed", error: "tests red", stepsRun: 0 });
  });

  it("fails an unknown step type at once, with a clear error", async () => {
    const id = await submit({ goal: "typo", steps: [{ type: "deploy.prod" }], limits: { maxSteps: 3 } });
    const fs = await frames(id);
    expect(types(fs)).toEqual(["ready", "start", "step.start", "step.error", "end"]);
    expect(fs.find((f) => f.event === "step.error")!.json.data.error).toMatch(/unknown step type 'deploy\.prod'/);
  });

  it("enforces limits.maxSteps before each step", async () => {
    const id = await submit({ goal: "budget", steps: [{ type: "ci" }, { type: "ci" }, { type: "ci" }], limits: { maxSteps: 2 } });
    const fs = await frames(id);
    expect(types(fs)).toEqual(["ready", "start", "step.start", "step.ok", "step.start", "step.ok", "end"]);
    expect(fs.at(-1)!.json.data).toEqual({ status: "failed" });
    expect((await http("GET", `${base}/api/orchestrator/jobs/${id}`)).json()).toMatchObject({ status: "failed", error: "step_budget_exceeded", stepsRun: 2 });
  });

  it("enforces limits.maxWallMs, even while a step is still running", async () => {
    const id = await submit({
      goal: "slow",
      steps: [{ type: "ci", payload: { mock: { delayMs: 5_000 } } }, { type: "docs" }],
      limits: { maxSteps: 3, maxWallMs: 400 },
    });
    const t0 = Date.now();
    const fs = await frames(id);
    expect(Date.now() - t0).toBeLessThan(4_500);
    expect(types(fs)).toEqual(["ready", "start", "step.start", "end"]);
    expect((await http("GET", `${base}/api/orchestrator/jobs/${id}`)).json()).toMatchObject({ status: "failed", error: "wall_clock_exceeded" });
  });

  it("accepts snake_case and kebab-case limit keys", async () => {
    const id = await submit({ goal: "snake", steps: [{ type: "ci" }, { type: "ci" }], limits: { max_steps: 1, "max-wall-ms": 5_000 } });
    await frames(id);
    expect((await http("GET", `${base}/api/orchestrator/jobs/${id}`)).json()).toMatchObject({ status: "failed", error: "step_budget_exceeded", stepsRun: 1 });
  });

  it("cancels a running job, idempotently", async () => {
    const id = await submit({ goal: "cancel me", steps: [{ type: "ci", payload: { mock: { delayMs: 5_000 } } }], limits: { maxSteps: 1, maxWallMs: 60_000 } });
    const s = await sse(`${base}/api/orchestrator/events?job=${id}`);
    await s.waitFor((f) => f.event === "step.start");
    for (let i = 0; i < 2; i++) {
      const r = await http("POST", `${base}/api/orchestrator/jobs/${id}/cancel`);
      expect(r.status).toBe(200);
      expect(r.json()).toEqual({ ok: true });
    }
    await s.ended;
    expect(s.frames.at(-1)!.json.data).toEqual({ status: "canceled" });
    expect((await http("GET", `${base}/api/orchestrator/jobs/${id}`)).json()).toMatchObject({ status: "canceled" });
    const again = await http("POST", `${base}/api/orchestrator/jobs/${id}/cancel`, { headers: { "content-type": "application/json" } });
    expect(again.json()).toEqual({ ok: true });
  });

  it("serves the job's logs, ending with job.end", async () => {
    const id = await submit({ goal: "logs", steps: [{ type: "ci" }, { type: "docs" }], limits: { maxSteps: 3 } });
    await frames(id);
    const all = (await http("GET", `${base}/api/orchestrator/jobs/${id}/logs`)).json();
    expect(all.job_id).toBe(id);
    const msgs = all.logs.map((l: { msg: string }) => l.msg);
    expect(msgs[0]).toBe("job.queued");
    expect(msgs.at(-1)).toBe("job.end");
    expect(msgs).toContain("ci: default pipeline (log-only)");
    expect(all.logs.at(-1).data).toEqual({ status: "succeeded" });
    const two = (await http("GET", `${base}/api/orchestrator/jobs/${id}/logs?n=2`)).json();
    expect(two.logs.map((l: { msg: string }) => l.msg)).toEqual(["step.ok", "job.end"]);
    for (const n of ["0", "201", "x"]) {
      const r = await http("GET", `${base}/api/orchestrator/jobs/${id}/logs?n=${n}`);
      expect(r.status).toBe(400);
      expect(r.json().error.code).toBe("BAD_REQUEST");
    }
  });

  it("gives the same job for the same Idempotency-Key", async () => {
    const key = `k-${Date.now()}`;
    const body = { json: { goal: "once", limits: { maxSteps: 1 } }, headers: { "idempotency-key": key } };
    const a = (await http("POST", `${base}/api/orchestrator/jobs`, body)).json().job_id;
    const b = (await http("POST", `${base}/api/orchestrator/jobs`, body)).json().job_id;
    expect(a).toBe(b);
    const fs = await frames(a);
    expect(fs.filter((f) => f.event === "start")).toHaveLength(1);
  });

  it("answers ping with the mode, and once=1 with only the ready frame", async () => {
    expect((await http("GET", `${base}/api/orchestrator/ping`)).json()).toEqual({ ok: true, mode: "mock" });
    const id = await submit({ goal: "once", limits: { maxSteps: 1 } });
    const s = await sse(`${base}/api/orchestrator/events?job=${id}&once=1`);
    await s.ended;
    expect(types(s.frames)).toEqual(["ready"]);
  });
});

describe("seed 000 HTTP contract", () => {
  it("answers a CORS preflight with 204 and never allows credentials", async () => {
    for (const path of ["/api/orchestrator/jobs", "/api/orchestrator/events", "/api/orchestrator/jobs/x/cancel"]) {
      const r = await http("OPTIONS", `${base}${path}`, { headers: { origin: "https://example.com", "access-control-request-method": "POST" } });
      expect(r.status).toBe(204);
      expect(r.headers["access-control-allow-origin"]).toBe("*");
      expect(r.headers["access-control-allow-credentials"]).toBeUndefined();
    }
  });

  it("puts the security headers on every response, errors and streams included", async () => {
    const id = await submit({ goal: "headers", limits: { maxSteps: 1 } });
    const responses = [
      await http("GET", `${base}/api/orchestrator/jobs/${id}`),
      await http("GET", `${base}/api/orchestrator/jobs/00000000-0000-4000-8000-000000000000`),
      await http("POST", `${base}/api/orchestrator/jobs`, { body: "{", headers: { "content-type": "application/json" } }),
      await http("GET", `${base}/api/orchestrator/ping`),
    ];
    const stream = await sse(`${base}/api/orchestrator/events?job=${id}&once=1`);
    await stream.ended;
    for (const r of [...responses, stream]) {
      expect(r.headers["x-content-type-options"]).toBe("nosniff");
      expect(r.headers["referrer-policy"]).toBe("no-referrer");
      expect(r.headers["access-control-allow-origin"]).toBe("*");
      expect(r.headers["access-control-allow-credentials"]).toBeUndefined();
      expect(r.headers["x-request-id"]).toBeTruthy();
    }
    expect(stream.headers["content-type"]).toMatch(/^text\/event-stream/);
  });

  it("answers malformed JSON with 400 BAD_REQUEST", async () => {
    const r = await http("POST", `${base}/api/orchestrator/jobs`, { body: '{"goal": "x",', headers: { "content-type": "application/json" } });
    expect(r.status).toBe(400);
    expect(r.json().error).toMatchObject({ code: "BAD_REQUEST" });
    expect(typeof r.json().error.message).toBe("string");
  });

  it("answers a schema violation with 400 'Invalid Task Packet' and the fields", async () => {
    const r = await http("POST", `${base}/api/orchestrator/jobs`, { json: { goal: "", steps: [{ type: "" }], limits: { maxSteps: 1000 } } });
    expect(r.status).toBe(400);
    const e = r.json().error;
    expect(e.code).toBe("BAD_REQUEST");
    expect(e.message).toBe("Invalid Task Packet");
    expect(Object.keys(e.details.fieldErrors).sort()).toEqual(["goal", "limits", "steps"]);
    for (const body of ["", "null", "[]", '"str"', "42"]) {
      const x = await http("POST", `${base}/api/orchestrator/jobs`, { body, headers: { "content-type": "application/json" } });
      expect(x.status, body).toBe(400);
      expect(x.json().error.code).toBe("BAD_REQUEST");
    }
  });

  it("answers a non-JSON body with 415", async () => {
    for (const [ct, body] of [
      ["text/plain", "goal=x"],
      ["application/x-www-form-urlencoded", "goal=x"],
      ["", '{"goal":"x","limits":{"maxSteps":1}}'],
    ] as const) {
      const r = await http("POST", `${base}/api/orchestrator/jobs`, { body, headers: ct ? { "content-type": ct } : {} });
      expect(r.status, ct).toBe(415);
      expect(r.json().error.code).toBe("UNSUPPORTED_MEDIA_TYPE");
    }
  });

  it("answers a body above ORCH_MAX_REQUEST_BYTES with 413", async () => {
    const big = JSON.stringify({ goal: "x".repeat(40_000), limits: { maxSteps: 1 } });
    const r = await http("POST", `${base}/api/orchestrator/jobs`, { body: big, headers: { "content-type": "application/json" } });
    expect(r.status).toBe(413);
    expect(r.json().error.code).toBe("PAYLOAD_TOO_LARGE");
    const ok = JSON.stringify({ goal: "x".repeat(9_000), limits: { maxSteps: 1 } });
    expect((await http("POST", `${base}/api/orchestrator/jobs`, { body: ok, headers: { "content-type": "application/json" } })).status).toBe(200);
  });

  it("answers malformed ids with 400 and unknown ones with 404", async () => {
    for (const path of [
      "/api/orchestrator/jobs/not-a-uuid",
      "/api/orchestrator/jobs/123/logs",
      "/api/orchestrator/events?job=../x",
      "/api/orchestrator/events",
    ]) {
      const r = await http("GET", `${base}${path}`);
      expect(r.status, path).toBe(400);
      expect(r.json().error.code).toBe("BAD_REQUEST");
    }
    const unknown = "0b7c3a1e-0000-4000-8000-000000000000";
    for (const [m, path] of [
      ["GET", `/api/orchestrator/jobs/${unknown}`],
      ["GET", `/api/orchestrator/jobs/${unknown}/logs`],
      ["POST", `/api/orchestrator/jobs/${unknown}/cancel`],
      ["GET", `/api/orchestrator/events?job=${unknown}`],
    ] as const) {
      const r = await http(m, `${base}${path}`);
      expect(r.status, path).toBe(404);
      expect(r.json().error.code).toBe("NOT_FOUND");
    }
    const badEscape = await http("GET", `${base}/api/orchestrator/jobs/%E0%A4%A`);
    expect(badEscape.status).toBe(400);
    expect(badEscape.json().error.code).toBe("BAD_REQUEST");
    const nowhere = await http("GET", `${base}/api/orchestrator/nowhere`);
    expect(nowhere.status).toBe(404);
    expect(nowhere.json().error.code).toBe("NOT_FOUND");
  });

  it("serves /health and /ready", async () => {
    const h = await http("GET", `${base}/health`);
    expect(h.status).toBe(200);
    expect(h.json()).toMatchObject({ status: "ok", service: "gateway" });
    const r = await http("GET", `${base}/ready`);
    expect(r.status).toBe(200);
    expect(r.json()).toEqual({ status: "ready", checks: { nats: "connected", topology: "present" } });
  });

  it("keeps a client's request id and makes one otherwise", async () => {
    const mine = await http("GET", `${base}/api/orchestrator/ping`, { headers: { "x-request-id": "req-123" } });
    expect(mine.headers["x-request-id"]).toBe("req-123");
    const made = await http("GET", `${base}/api/orchestrator/ping`, { headers: { "x-request-id": "bad id with spaces" } });
    expect(made.headers["x-request-id"]).toMatch(UUID);
  });
});

describe("gateway flags", () => {
  const extra: ServiceProcess[] = [];
  afterAll(async () => {
    await Promise.all(extra.map((p) => p.stop()));
  });

  async function gateway(env: Record<string, string>): Promise<string> {
    const port = await freePort();
    const p = new ServiceProcess("gateway", { ORCH_NATS_URL: stack.nats.url, PORT: String(port), ...env });
    extra.push(p);
    await p.start();
    return `http://127.0.0.1:${port}`;
  }

  it("limits the rate of POSTs per route with 429 and Retry-After", async () => {
    const url = await gateway({ ORCH_RATE_LIMIT_MAX: "2", ORCH_RATE_LIMIT_WINDOW_MS: "60000" });
    const post = () => http("POST", `${url}/api/orchestrator/jobs`, { json: { goal: "rl", limits: { maxSteps: 1 } } });
    expect((await post()).status).toBe(200);
    expect((await post()).status).toBe(200);
    const limited = await post();
    expect(limited.status).toBe(429);
    expect(limited.json().error.code).toBe("RATE_LIMITED");
    expect(Number(limited.headers["retry-after"])).toBeGreaterThan(0);
    expect(limited.headers["access-control-allow-origin"]).toBe("*");
    // GETs are not limited.
    expect((await http("GET", `${url}/api/orchestrator/ping`)).status).toBe(200);
  });

  it("answers 404 on every /api/orchestrator route when ORCH_ENABLED=false", async () => {
    const url = await gateway({ ORCH_ENABLED: "false" });
    for (const [m, path] of [
      ["POST", "/api/orchestrator/jobs"],
      ["GET", "/api/orchestrator/ping"],
      ["GET", "/api/orchestrator/events?job=0b7c3a1e-0000-4000-8000-000000000000"],
      ["OPTIONS", "/api/orchestrator/jobs"],
    ] as const) {
      const r = await http(m, `${url}${path}`, m === "POST" ? { json: { goal: "x", limits: { maxSteps: 1 } } } : {});
      expect(r.status, `${m} ${path}`).toBe(404);
    }
    expect((await http("GET", `${url}/health`)).status).toBe(200);
  });

  it("runs jobs in live mode without honouring mock directives", async () => {
    const url = await gateway({ ORCH_MODE: "live" });
    const r = await http("POST", `${url}/api/orchestrator/jobs`, {
      json: { goal: "live", steps: [{ type: "ci", payload: { mock: { failTimes: 5 } } }], limits: { maxSteps: 1 } },
    });
    const id = r.json().job_id;
    const s = await sse(`${url}/api/orchestrator/events?job=${id}`);
    await s.ended;
    expect(s.frames[0]!.json).toEqual({ job_id: id, mode: "live" });
    expect(types(s.frames)).toEqual(["ready", "start", "step.start", "step.ok", "end"]);
  });
});
