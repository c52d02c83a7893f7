import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, http, Stack, waitFor, type ServiceProcess } from "@orch/testing";

/**
 * Seed 001's tasks and runs (`/tasks`, `/runs`) as its clients use them: over a real socket to the
 * gateway, through NATS to the core, the agent hub (the stub executor) and back. Then its worker
 * and periodic scheduler (the scheduler service), its rate limit, and a gateway restart.
 */

let stack: Stack;
let base: string;

beforeAll(async () => {
  // The seed's rate limit (20 POSTs per minute) is shown on a second gateway; this one has it off.
  stack = await Stack.start({ serviceEnv: { gateway: { ORCH_RATE_LIMIT_ENABLED: "false" } } });
  base = stack.baseUrl;
});

afterAll(async () => {
  await stack?.stop();
});

const RUN_ID = /^run-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

const post = (path: string, json?: unknown, headers: Record<string, string> = {}) =>
  http("POST", base + path, json === undefined ? { headers } : { json, headers });
const get = (path: string) => http("GET", base + path);

async function queue(task: Record<string, unknown>): Promise<{ ok: true; queued: number; runId: string }> {
  const r = await post("/tasks", task);
  expect(r.status, r.text).toBe(200);
  return r.json();
}

async function task(id: string) {
  const r = await get(`/tasks/${encodeURIComponent(id)}`);
  expect(r.status, r.text).toBe(200);
  return r.json().data;
}

async function dispatch() {
  const r = await post("/tasks/dispatch");
  expect(r.status, r.text).toBe(200);
  return r.json();
}

describe("seed 001: tasks", () => {
  it("queues a task, lists it, dispatches it to its role's agent and answers with the result", async () => {
    const q = await queue({ id: "task-1", role: "implementer", description: "Add a CHANGELOG entry", payload: { file: "CHANGELOG.md" } });
    expect(Object.keys(q).sort()).toEqual(["ok", "queued", "runId"]);
    expect(q.ok).toBe(true);
    expect(q.queued).toBe(1);
    expect(q.runId).toMatch(RUN_ID);

    const t = await task("task-1");
    expect(t).toMatchObject({
      id: "task-1",
      runId: q.runId,
      role: "implementer",
      description: "Add a CHANGELOG entry",
      payload: { file: "CHANGELOG.md" },
      status: "queued",
      attempts: 0,
      metadata: {},
      llm: null,
    });
    expect(t.result).toBeUndefined();
    expect(t.history).toEqual([{ status: "queued", timestamp: expect.stringMatching(ISO) }]);

    const all = (await get("/tasks")).json();
    expect(all.ok).toBe(true);
    expect(all.data.map((x: any) => x.id)).toContain("task-1");
    expect((await get("/tasks?status=queued")).json().data.map((x: any) => x.id)).toEqual(["task-1"]);
    expect((await get("/tasks?status=completed")).json().data).toEqual([]);

    const d = await dispatch();
    expect(d).toMatchObject({ ok: true, dispatched: true, result: { taskId: "task-1", status: "completed" } });
    expect(Object.keys(d.result).every((k) => ["taskId", "status", "notes", "output", "llm"].includes(k))).toBe(true);
    expect(d.result.output).toBeDefined();
    expect(d.result.llm).toMatchObject({ executor: "stub" });

    const done = await task("task-1");
    expect(done).toMatchObject({ status: "completed", attempts: 1, result: { taskId: "task-1", status: "completed" } });
    expect(done.llm).toMatchObject({ executor: "stub" });

    const h = (await get("/tasks/task-1/history")).json();
    expect(h.ok).toBe(true);
    expect(h.data.map((e: any) => e.status)).toEqual(["queued", "running", "completed"]);
    const times = h.data.map((e: any) => Date.parse(e.timestamp));
    expect([...times].sort((a, b) => a - b)).toEqual(times);

    expect(await dispatch()).toEqual({ ok: true, dispatched: false });
    expect((await get("/tasks?status=completed")).json().data.map((x: any) => x.id)).toEqual(["task-1"]);
  });

  it("dispatches the oldest queued task first, across runs", async () => {
    const a = await queue({ id: "order-a", role: "architect", description: "Design the cache" });
    const b = await queue({ id: "order-b", role: "reviewer", description: "Review the design" });
    const c = await queue({ id: "order-c", role: "tester", description: "Test the cache", runId: a.runId });
    expect([a.queued, b.queued, c.queued]).toEqual([1, 2, 3]);
    expect(c.runId).toBe(a.runId);
    expect(b.runId).not.toBe(a.runId);
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push((await dispatch()).result.taskId);
    expect(ids).toEqual(["order-a", "order-b", "order-c"]);
    expect(await dispatch()).toEqual({ ok: true, dispatched: false });
  });

  it("merges metadata shallowly", async () => {
    await queue({ id: "meta-1", role: "maintainer", description: "Bump dependencies" });
    let r = await http("PATCH", `${base}/tasks/meta-1/metadata`, { json: { owner: "ana", labels: { a: 1 } } });
    expect(r.status, r.text).toBe(200);
    expect(r.json()).toEqual({ ok: true });
    r = await http("PATCH", `${base}/tasks/meta-1/metadata`, { json: { labels: { b: 2 }, priority: 3 } });
    expect(r.json()).toEqual({ ok: true });
    expect((await task("meta-1")).metadata).toEqual({ owner: "ana", labels: { b: 2 }, priority: 3 });

    r = await http("PATCH", `${base}/tasks/nope/metadata`, { json: { a: 1 } });
    expect(r.status).toBe(404);
    expect(r.json()).toEqual({ ok: false, error: "not_found" });
    r = await http("PATCH", `${base}/tasks/meta-1/metadata`, { json: [1, 2] });
    expect(r.status).toBe(400);
    expect(r.json()).toEqual({ ok: false, error: "invalid_metadata" });
    r = await http("PATCH", `${base}/tasks/meta-1/metadata`, { body: "owner=bob", headers: { "content-type": "application/x-www-form-urlencoded" } });
    expect(r.status).toBe(415);
    expect(r.json()).toEqual({ ok: false, error: "unsupported_media_type" });
    expect((await dispatch()).result.taskId).toBe("meta-1");
    // Metadata stays a task's after it ran.
    r = await http("PATCH", `${base}/tasks/meta-1/metadata`, { json: { reviewed: true } });
    expect(r.status).toBe(200);
    expect((await task("meta-1")).metadata).toEqual({ owner: "ana", labels: { b: 2 }, priority: 3, reviewed: true });
  });

  it("a repeat id overwrites the task and queues it again (it runs once, as the new one)", async () => {
    const first = await queue({ id: "again", role: "implementer", description: "first version" });
    const second = await queue({ id: "again", role: "reviewer", description: "second version", runId: first.runId });
    expect(second.runId).toBe(first.runId);
    expect(second.queued).toBe(1);
    const t = await task("again");
    expect(t).toMatchObject({ role: "reviewer", description: "second version", status: "queued", attempts: 0 });
    expect((await get(`/runs/${first.runId}`)).json().data.taskIds).toEqual(["again"]);
    const d = await dispatch();
    expect(d.result).toMatchObject({ taskId: "again", status: "completed" });
    expect(await dispatch()).toEqual({ ok: true, dispatched: false });

    // A finished task queued again runs again (here in a new run: no runId).
    const third = await queue({ id: "again", role: "tester", description: "third version" });
    expect(third.runId).not.toBe(first.runId);
    expect(await task("again")).toMatchObject({ status: "queued", runId: third.runId, attempts: 0, history: [{ status: "queued" }] });
    expect((await dispatch()).result).toMatchObject({ taskId: "again", status: "completed" });
    // The task left the first run (which is finished). A task added to it: the run goes on.
    expect((await get(`/runs/${first.runId}`)).json().data).toMatchObject({ taskIds: [] });
    const more = await queue({ id: "again-2", role: "tester", description: "one more", runId: first.runId });
    expect(more.runId).toBe(first.runId);
    expect((await get(`/runs/${first.runId}`)).json().data).toMatchObject({ status: "queued", taskIds: ["again-2"] });
    expect((await dispatch()).result.taskId).toBe("again-2");
    expect((await get(`/runs/${first.runId}`)).json().data).toMatchObject({ status: "completed", taskIds: ["again-2"] });
  });

  it("a failed attempt fails the task (notes say why) and its run", async () => {
    const q = await queue({ id: "flaky", role: "tester", description: "Run the suite", payload: { mock: { failTimes: 1, error: "tests are red" } } });
    const d = await dispatch();
    expect(d).toEqual({
      ok: true,
      dispatched: true,
      result: expect.objectContaining({ taskId: "flaky", status: "failed", notes: expect.stringContaining("tests are red") }),
    });
    expect(await task("flaky")).toMatchObject({ status: "failed", attempts: 1, result: { status: "failed" } });
    expect((await get("/tasks/flaky/history")).json().data.map((e: any) => e.status)).toEqual(["queued", "running", "failed"]);
    expect((await get(`/runs/${q.runId}`)).json().data.status).toBe("failed");
  });

  it("rejects bad input in the seed's shape", async () => {
    for (const body of [
      { role: "implementer", description: "x" },
      { id: "x", description: "x" },
      { id: "x", role: "implementer" },
      { id: "x", role: "janitor", description: "x" },
      { id: "", role: "tester", description: "x" },
      [1],
      "text",
    ]) {
      const r = await post("/tasks", body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.json()).toEqual({ ok: false, error: "invalid_task" });
    }
    let r = await http("POST", `${base}/tasks`, { body: "{not json", headers: { "content-type": "application/json" } });
    expect(r.status).toBe(400);
    expect(r.json()).toEqual({ ok: false, error: "bad_request" });
    r = await http("POST", `${base}/tasks`, { body: "id=x", headers: { "content-type": "text/plain" } });
    expect(r.status).toBe(415);
    expect(r.json()).toEqual({ ok: false, error: "unsupported_media_type" });
    r = await post("/tasks", { id: "big", role: "tester", description: "x".repeat(40_000) });
    expect(r.status).toBe(413);
    expect(r.json()).toEqual({ ok: false, error: "payload_too_large" });
    for (const path of ["/tasks/missing", "/tasks/missing/history", "/runs/missing", "/runs/missing/tasks"]) {
      r = await get(path);
      expect(r.status, path).toBe(404);
      expect(r.json()).toEqual({ ok: false, error: "not_found" });
    }
    r = await get("/tasks?status=done");
    expect(r.status).toBe(400);
    expect(r.json()).toEqual({ ok: false, error: "invalid_status" });
    // A body-less dispatch that still says JSON.
    r = await http("POST", `${base}/tasks/dispatch`, { headers: { "content-type": "application/json" } });
    expect(r.status).toBe(200);
    expect(r.json()).toEqual({ ok: true, dispatched: false });
  });
});

describe("seed 001: runs", () => {
  it("derives a run's status from its tasks, lists runs with pagination and filters", async () => {
    const a = await queue({ id: "run-t1", role: "architect", description: "Plan" });
    await queue({ id: "run-t2", role: "implementer", description: "Build", runId: a.runId });
    let r = await get(`/runs/${a.runId}`);
    expect(r.status).toBe(200);
    const run = r.json().data;
    expect(Object.keys(r.json()).sort()).toEqual(["data", "ok"]);
    expect(Object.keys(run).sort()).toEqual(["createdAt", "id", "metadata", "payload", "status", "taskIds", "type", "updatedAt"]);
    expect(run).toMatchObject({ id: a.runId, type: "manual", status: "queued", taskIds: ["run-t1", "run-t2"], metadata: {} });
    expect(run.createdAt).toMatch(ISO);

    expect((await dispatch()).result.taskId).toBe("run-t1");
    expect((await get(`/runs/${a.runId}`)).json().data.status).toBe("running");
    const tasks = (await get(`/runs/${a.runId}/tasks`)).json();
    expect(tasks.ok).toBe(true);
    expect(tasks.data.map((t: any) => [t.id, t.status])).toEqual([
      ["run-t1", "completed"],
      ["run-t2", "queued"],
    ]);

    let list = (await get("/runs?status=running")).json();
    expect(list.data.map((x: any) => x.id)).toEqual([a.runId]);
    expect(list).toMatchObject({ ok: true, total: 1, offset: 0, limit: 50 });
    expect((await dispatch()).result.taskId).toBe("run-t2");
    expect((await get(`/runs/${a.runId}`)).json().data.status).toBe("completed");
    expect((await get("/runs?status=running")).json().total).toBe(0);

    list = (await get("/runs")).json();
    expect(list.total).toBeGreaterThanOrEqual(6);
    expect(list.data).toHaveLength(list.total);
    expect(list.data.at(-1).id).toBe(a.runId);
    const page = (await get("/runs?offset=1&limit=2")).json();
    expect(page).toMatchObject({ ok: true, offset: 1, limit: 2, total: list.total });
    expect(page.data.map((x: any) => x.id)).toEqual(list.data.slice(1, 3).map((x: any) => x.id));
    expect((await get("/runs?limit=1000")).json().limit).toBe(200);
    const failed = (await get("/runs?status=failed")).json();
    expect(failed.data.every((x: any) => x.status === "failed")).toBe(true);
    expect(failed.total).toBe(1);

    r = await get("/runs?status=done");
    expect(r.status).toBe(400);
    expect(r.json()).toEqual({ ok: false, error: "invalid_status" });
  });

  it("shows a run of tasks through /api/v1/runs too", async () => {
    const a = await queue({ id: "visible", role: "reviewer", description: "Look" });
    const r = await get(`/api/v1/runs/${a.runId}`);
    expect(r.status, r.text).toBe(200);
    expect(JSON.stringify(r.json())).toContain("task.queue");
    expect((await dispatch()).result.taskId).toBe("visible");
  });
});

describe("seed 001: durability and rate limit", () => {
  it("keeps tasks, metadata and the queue across a gateway restart", async () => {
    const q = await queue({ id: "durable", role: "implementer", description: "Survive a restart" });
    await http("PATCH", `${base}/tasks/durable/metadata`, { json: { note: "kept" } });
    const before = await task("durable");
    await stack.kill("gateway");
    await stack.restart("gateway");
    const after = await task("durable");
    expect(after).toEqual(before);
    expect(after.metadata).toEqual({ note: "kept" });
    expect((await get(`/runs/${q.runId}`)).json().data.taskIds).toEqual(["durable"]);
    expect((await dispatch()).result).toMatchObject({ taskId: "durable", status: "completed" });
  });

  it("limits POST /tasks to 20 per minute per client: 429 with Retry-After; ORCH_RATE_LIMIT_ENABLED=false turns it off", async () => {
    // This gateway has the limit off.
    for (let i = 0; i < 25; i++) expect((await post("/tasks", { id: `x${i}` })).status).toBe(400);

    const port = await freePort();
    const limited: ServiceProcess = await stack.spawn("gateway", { PORT: String(port), HOST: "127.0.0.1" });
    try {
      const url = `http://127.0.0.1:${port}/tasks`;
      for (let i = 0; i < 20; i++) expect((await http("POST", url, { json: { id: `y${i}` } })).status).toBe(400);
      const r = await http("POST", url, { json: { id: "over", role: "tester", description: "too many" } });
      expect(r.status).toBe(429);
      const body = r.json();
      expect(Object.keys(body).sort()).toEqual(["error", "ok", "retryAfter"]);
      expect(body).toMatchObject({ ok: false, error: "rate_limit_exceeded" });
      expect(body.retryAfter).toBeGreaterThan(0);
      expect(body.retryAfter).toBeLessThanOrEqual(60);
      expect(Number(r.headers["retry-after"])).toBe(body.retryAfter);
      // Reads are not limited.
      expect((await http("GET", url)).status).toBe(200);
    } finally {
      await limited.stop();
    }
    expect((await get("/tasks/over")).status).toBe(404);
  });
});

describe("ORCH_RATE_LIMIT_ENABLED=false", () => {
  it("turns off the rate limit of every route, not only POST /tasks", async () => {
    // A maximum of 1 POST per window: with limits on, every second POST would be a 429.
    const port = await freePort();
    const gw: ServiceProcess = await stack.spawn("gateway", {
      PORT: String(port),
      HOST: "127.0.0.1",
      ORCH_RATE_LIMIT_ENABLED: "false",
      ORCH_RATE_LIMIT_MAX: "1",
    });
    try {
      const at = `http://127.0.0.1:${port}`;
      for (const [path, json, n] of [
        ["/api/orchestrator/jobs", { goal: "" }, 3],
        ["/api/v1/runs", {}, 3],
        ["/workflows", {}, 3],
        ["/projects", {}, 3],
        ["/tasks", { id: "limitless" }, 3],
        // The webhooks take ten times the maximum.
        ["/webhooks/github", { zen: "ping" }, 12],
      ] as const) {
        for (let i = 0; i < n; i++) {
          const r = await http("POST", `${at}${path}`, { json, headers: { "x-github-event": "ping" } });
          expect(r.status, `${path} #${i + 1}: ${r.text}`).not.toBe(429);
        }
      }
    } finally {
      await gw.stop();
    }
  });
});

describe("seed 001: worker and periodic runs (scheduler service)", () => {
  it("the worker drains the queue without dispatch calls and retries a failed attempt; the periodic scheduler creates runs of one task per role", async () => {
    await queue({ id: "w-1", role: "architect", description: "Background one" });
    await queue({ id: "w-2", role: "implementer", description: "Background two", payload: { mock: { failTimes: 1 } } });
    const w3 = await queue({ id: "w-3", role: "tester", description: "Background three" });
    const scheduler = await stack.spawn("scheduler", {
      ORCH_WORKER_ENABLED: "true",
      ORCH_WORKER_POLL_INTERVAL_MS: "100",
      ORCH_WORKER_MAX_RETRIES: "2",
      ORCH_WORKER_BACKOFF_MS: "200",
      ORCH_SCHEDULER_ENABLED: "true",
      ORCH_SCHEDULE_INTERVAL_MS: "1500",
      ORCH_SCHEDULE_ROLES: "architect,tester",
      ORCH_SCHEDULE_DESCRIPTION: "Nightly health check",
    });
    try {
      await waitFor(
        async () => {
          const ts = await Promise.all(["w-1", "w-2", "w-3"].map(task));
          return ts.every((t) => t.status === "completed") ? ts : undefined;
        },
        { timeoutMs: 60_000, what: "the worker to complete the queued tasks" },
      );
      const w2 = await task("w-2");
      expect(w2.attempts).toBe(2);
      expect(w2.history.map((e: any) => e.status)).toEqual(["queued", "running", "failed", "running", "completed"]);
      expect((await get(`/runs/${w3.runId}`)).json().data.status).toBe("completed");

      const scheduled = await waitFor(
        async () => {
          const runs = (await get("/runs")).json().data.filter((r: any) => r.type === "scheduled");
          return runs.length >= 2 && runs.slice(0, 2).every((r: any) => r.status === "completed") ? runs : undefined;
        },
        { timeoutMs: 60_000, what: "two periodic runs, completed by the worker" },
      );
      for (const run of scheduled.slice(0, 2)) {
        expect(run.taskIds).toHaveLength(2);
        expect(run.payload).toMatchObject({ roles: ["architect", "tester"], description: "Nightly health check" });
        const ts = (await get(`/runs/${run.id}/tasks`)).json().data;
        expect(ts.map((t: any) => t.role)).toEqual(["architect", "tester"]);
        expect(ts.every((t: any) => t.description === "Nightly health check" && t.status === "completed")).toBe(true);
      }
      expect(new Set(scheduled.map((r: any) => r.id)).size).toBe(scheduled.length);
    } finally {
      await scheduler.stop();
    }
  });
});
