import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, http, Stack, waitFor, type ServiceProcess } from "@orch/testing";

/**
 * Seed 001's tasks and runs (`/tasks`, `/runs`) as its clients use them: over a real socket to the
 * gateway, through NATS to the core, the agent hub (the stub executor) and back. Tasks are steps of
 * `task.queue` runs, the queue the event-bus's projection of their transitions. Then concurrency,
 * repeat ids, runs whose tasks all ended, restarts of the core and the event-bus, its rate limit;
 * and, on a second stack, the worker and the periodic runs (the core's policy, fired by the scheduler).
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
const engineRun = async (runId: string) => (await get(`/api/v1/runs/${runId}`)).json();
const eventsOf = async (runId: string): Promise<{ type: string; data?: any }[]> => (await get(`/api/v1/runs/${runId}/history`)).json().items;

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

describe("seed 001: the queue under concurrency, repeats and restarts", () => {
  it("two concurrent dispatches never take the same task; with one task queued, one of them finds none", async () => {
    await queue({ id: "race-a", role: "implementer", description: "A", payload: { mock: { delayMs: 300 } } });
    await queue({ id: "race-b", role: "reviewer", description: "B", payload: { mock: { delayMs: 300 } } });
    const both = await Promise.all([dispatch(), dispatch()]);
    expect(both.every((d) => d.ok && d.dispatched)).toBe(true);
    expect(both.map((d) => d.result.taskId).sort()).toEqual(["race-a", "race-b"]);
    for (const id of ["race-a", "race-b"]) expect(await task(id)).toMatchObject({ status: "completed", attempts: 1 });

    await queue({ id: "race-c", role: "tester", description: "C", payload: { mock: { delayMs: 200 } } });
    const one = await Promise.all([dispatch(), dispatch(), dispatch()]);
    expect(one.filter((d) => d.dispatched).map((d) => d.result.taskId)).toEqual(["race-c"]);
    expect(one.filter((d) => !d.dispatched)).toHaveLength(2);
    const c = await task("race-c");
    expect(c.attempts).toBe(1);
    expect(c.history.map((e: any) => e.status)).toEqual(["queued", "running", "completed"]);
  });

  it("a repeat id in another run withdraws the queued one where it was (it never runs there); in the same run after it ran, it runs again", async () => {
    const first = await queue({ id: "moved", role: "architect", description: "first place" });
    const second = await queue({ id: "moved", role: "tester", description: "second place" });
    expect(second.runId).not.toBe(first.runId);
    expect(second.queued).toBe(1);
    await waitFor(async () => (await engineRun(first.runId)).steps?.[0]?.status === "skipped", { what: "the first place withdrawn" });
    expect((await get(`/runs/${first.runId}`)).json().data.taskIds).toEqual([]);
    expect(await task("moved")).toMatchObject({ runId: second.runId, role: "tester", description: "second place", status: "queued" });
    expect((await dispatch()).result).toMatchObject({ taskId: "moved", status: "completed" });
    expect(await dispatch()).toEqual({ ok: true, dispatched: false });

    // Again in its run, after it completed: reset there, queued, run again (the step's second attempt).
    const again = await queue({ id: "moved", role: "tester", description: "once more", runId: second.runId });
    expect(again).toMatchObject({ runId: second.runId, queued: 1 });
    expect(await task("moved")).toMatchObject({ status: "queued", attempts: 0, history: [{ status: "queued" }], description: "once more" });
    expect((await get(`/runs/${second.runId}`)).json().data).toMatchObject({ status: "queued", taskIds: ["moved"] });
    expect((await dispatch()).result).toMatchObject({ taskId: "moved", status: "completed" });
    const step = (await engineRun(second.runId)).steps[0];
    expect(step).toMatchObject({ id: "moved", status: "completed", attempt: 2 });
    const types = (await eventsOf(second.runId)).map((e) => e.type);
    expect(types.filter((t) => t === "step.requeued")).toHaveLength(1);
    expect(types.filter((t) => t === "step.started")).toHaveLength(2);
  });

  it("a task added to a run whose tasks all ended runs in that run: it waits, never finishes, no continuation run", async () => {
    const a = await queue({ id: "ended-1", role: "implementer", description: "one" });
    expect((await dispatch()).result.taskId).toBe("ended-1");
    expect((await get(`/runs/${a.runId}`)).json().data.status).toBe("completed");
    const engine = await engineRun(a.runId);
    expect(engine).toMatchObject({ status: "waiting", definition: { id: "task.queue", version: 2 } });
    expect(engine.finishedAt).toBeUndefined();
    const b = await queue({ id: "ended-2", role: "reviewer", description: "two", runId: a.runId });
    expect(b).toMatchObject({ runId: a.runId, queued: 1 });
    expect((await get(`/runs/${a.runId}`)).json().data).toMatchObject({ status: "running", taskIds: ["ended-1", "ended-2"] });
    expect((await engineRun(a.runId)).status).toBe("running");
    expect((await dispatch()).result).toMatchObject({ taskId: "ended-2", status: "completed" });
    expect((await get(`/runs/${a.runId}`)).json().data.status).toBe("completed");
    expect((await get(`/api/v1/runs/${a.runId}_2`)).status).toBe(404);
    expect((await eventsOf(a.runId)).map((e) => e.type)).not.toContain("run.finished");
  });

  it("counts queued tasks in orchestrator_queue_size", async () => {
    const sample = async () => Number(/^orchestrator_queue_size (\d+)$/m.exec((await get("/metrics")).text)?.[1]);
    expect(await sample()).toBe(0);
    await queue({ id: "metric-1", role: "implementer", description: "counted" });
    await queue({ id: "metric-2", role: "implementer", description: "counted" });
    expect(await sample()).toBe(2);
    await dispatch();
    await dispatch();
    expect(await sample()).toBe(0);
  });

  it("a core restart in the middle of a task: the dispatch still answers, the task ran once, each event once", async () => {
    const q = await queue({ id: "core-crash", role: "implementer", description: "Outlive the core", payload: { mock: { delayMs: 2_500 } } });
    const pending = dispatch();
    await waitFor(async () => (await task("core-crash")).status === "running", { what: "the task to start" });
    await stack.kill("orchestrator");
    await stack.restart("orchestrator");
    const d = await pending;
    expect(d.result).toMatchObject({ taskId: "core-crash", status: "completed" });
    const t = await task("core-crash");
    expect(t).toMatchObject({ status: "completed", attempts: 1 });
    expect(t.history.map((e: any) => e.status)).toEqual(["queued", "running", "completed"]);
    const events = await eventsOf(q.runId);
    expect(events.filter((e) => e.type === "step.started")).toHaveLength(1);
    expect(events.filter((e) => e.type === "step.succeeded")).toHaveLength(1);
    const seqs = events.map((e: any) => e.seq);
    expect(new Set(seqs).size).toBe(seqs.length);
  });

  it("an event-bus restart keeps the queue, its order, and the tasks (the projection is loaded back)", async () => {
    await queue({ id: "eb-1", role: "architect", description: "first" });
    const second = await queue({ id: "eb-2", role: "tester", description: "second" });
    await http("PATCH", `${base}/tasks/eb-2/metadata`, { json: { kept: true } });
    const before = await Promise.all(["eb-1", "eb-2"].map(task));
    await stack.kill("event-bus");
    await stack.restart("event-bus");
    expect(await Promise.all(["eb-1", "eb-2"].map(task))).toEqual(before);
    expect((await get(`/runs/${second.runId}`)).json().data.taskIds).toEqual(["eb-2"]);
    expect((await get("/tasks?status=queued")).json().data.map((t: any) => t.id)).toEqual(["eb-1", "eb-2"]);
    expect((await dispatch()).result.taskId).toBe("eb-1");
    expect((await dispatch()).result.taskId).toBe("eb-2");
    expect(await dispatch()).toEqual({ ok: true, dispatched: false });
  });
});

describe("seed 001: the worker and periodic runs (the core's policy; the scheduler fires timers)", () => {
  let w: Stack;
  let wbase: string;
  const wpost = (path: string, json?: unknown) => http("POST", wbase + path, json === undefined ? {} : { json });
  const wget = async (path: string) => {
    const r = await http("GET", wbase + path);
    expect(r.status, `${path}: ${r.text}`).toBe(200);
    return r.json();
  };
  const INTERVAL = 1_500;

  beforeAll(async () => {
    w = await Stack.start({
      serviceEnv: {
        gateway: { ORCH_RATE_LIMIT_ENABLED: "false" },
        orchestrator: {
          ORCH_WORKER_ENABLED: "true",
          ORCH_WORKER_POLL_INTERVAL_MS: "100",
          ORCH_WORKER_MAX_RETRIES: "2",
          ORCH_WORKER_BACKOFF_MS: "400",
          ORCH_SCHEDULER_ENABLED: "true",
          ORCH_SCHEDULE_INTERVAL_MS: String(INTERVAL),
          ORCH_SCHEDULE_ROLES: "architect,tester",
          ORCH_SCHEDULE_DESCRIPTION: "Nightly health check",
        },
      },
    });
    wbase = w.baseUrl;
  });

  afterAll(async () => {
    await w?.stop();
  });

  it("says once at start that ORCH_WORKER_POLL_INTERVAL_MS is no longer needed", () => {
    const said = w.service("orchestrator").lines.filter((l) => typeof l.msg === "string" && l.msg.includes("ORCH_WORKER_POLL_INTERVAL_MS"));
    expect(said).toHaveLength(1);
    expect(said[0]!.msg).toMatch(/deprecated and ignored: nothing polls/);
    expect([40, "warn"]).toContain(said[0]!.level);
  });

  it("runs queued tasks without dispatch calls; a failed attempt is retried by the kernel with the worker's backoff (step.retrying, retry timers)", async () => {
    const seen = new Set<string>();
    const q1 = (await wpost("/tasks", { id: "w-1", role: "architect", description: "Background one" })).json();
    const q2 = (await wpost("/tasks", { id: "w-2", role: "implementer", description: "Background two", payload: { mock: { failTimes: 2 } } })).json();
    const q3 = (await wpost("/tasks", { id: "w-3", role: "tester", description: "Background three", runId: q1.runId })).json();
    expect([q1.ok, q2.ok, q3.ok]).toEqual([true, true, true]);
    const done = await waitFor(
      async () => {
        for (const t of (await wget(`/api/v1/timers?runId=${q2.runId}`)).items) if (t.kind === "retry") seen.add(t.id);
        const ts = await Promise.all(["w-1", "w-2", "w-3"].map(async (id) => (await wget(`/tasks/${id}`)).data));
        return ts.every((t) => t.status === "completed") ? ts : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 40, what: "the worker to complete the queued tasks" },
    );
    const w2 = done[1];
    expect(w2.attempts).toBe(3);
    expect(w2.history.map((e: any) => e.status)).toEqual(["queued", "running", "failed", "running", "failed", "running", "completed"]);
    const events: any[] = (await wget(`/api/v1/runs/${q2.runId}/history`)).items;
    const retrying = events.filter((e) => e.type === "step.retrying");
    expect(retrying.map((e) => e.data.backoffMs)).toEqual([400, 800]);
    expect(events.filter((e) => e.type === "step.started").map((e) => e.data.reason)).toEqual(["auto", "retry", "retry"]);
    // Each retry waited for its timer (the scheduler fired it): at least its backoff after the failure.
    const started = events.filter((e) => e.type === "step.started").map((e) => Date.parse(e.at));
    const failed = retrying.map((e) => Date.parse(e.at));
    expect(started[1]! - failed[0]!).toBeGreaterThanOrEqual(400);
    expect(started[2]! - failed[1]!).toBeGreaterThanOrEqual(800);
    expect(seen.size).toBeGreaterThanOrEqual(1);
    expect([...seen].every((id) => id.startsWith(`${q2.runId}.`) && id.endsWith(".retry"))).toBe(true);
    const created = events.find((e) => e.type === "run.created");
    expect(created.data.worker).toEqual({ enabled: true, maxRetries: 2, backoffMs: 400 });
    // The same run's tasks ran one at a time, in the order they were queued.
    const run1: any[] = (await wget(`/api/v1/runs/${q1.runId}/history`)).items;
    const order = run1.filter((e) => e.type === "step.started" || e.type === "step.succeeded").map((e) => `${e.type}:${e.data.stepId}`);
    expect(order).toEqual(["step.started:w-1", "step.succeeded:w-1", "step.started:w-3", "step.succeeded:w-3"]);
    expect((await wget(`/runs/${q1.runId}`)).data.status).toBe("completed");
  });

  it("creates one periodic run per interval slot, across a scheduler restart, a second scheduler and a core restart", async () => {
    const slotsOf = async () => {
      const runs = (await wget("/runs?limit=200")).data.filter((r: any) => r.type === "scheduled");
      return runs as any[];
    };
    await waitFor(async () => ((await slotsOf()).length >= 2 ? true : undefined), { timeoutMs: 30_000, what: "two periodic runs" });
    await w.kill("scheduler");
    await new Promise((r) => setTimeout(r, INTERVAL));
    await w.restart("scheduler");
    const second = await w.spawn("scheduler");
    try {
      const before = (await slotsOf()).length;
      await waitFor(async () => ((await slotsOf()).length >= before + 1 ? true : undefined), {
        timeoutMs: 30_000,
        what: "a periodic run after the scheduler restart",
      });
      await w.kill("orchestrator");
      await new Promise((r) => setTimeout(r, INTERVAL));
      await w.restart("orchestrator");
      const after = (await slotsOf()).length;
      await waitFor(async () => ((await slotsOf()).length >= after + 2 ? true : undefined), {
        timeoutMs: 30_000,
        what: "periodic runs after the core restart",
      });
    } finally {
      await second.stop();
    }
    const runs = await slotsOf();
    const slots = runs.map((r) => r.metadata.slot as number);
    expect(new Set(slots).size, `slots ${slots.join(",")}`).toBe(slots.length);
    for (const r of runs) {
      expect(r.id).toBe(`tasks-periodic-${r.metadata.slot * INTERVAL}`);
      expect(r.payload).toMatchObject({ roles: ["architect", "tester"], description: "Nightly health check", slot: r.metadata.slot });
      expect(r.metadata).toMatchObject({ scheduled: true, intervalMs: INTERVAL });
      expect(r.taskIds).toEqual([`${r.id}-architect`, `${r.id}-tester`]);
    }
    // Each slot's run created once: one run.created each, and one firing per slot on the schedule.
    const fired: any[] = (await wget("/api/v1/runs/tasks-periodic/history")).items.filter((e: any) => e.type === "schedule.fired");
    const ticked = fired.map((e) => e.data.scheduledAt / INTERVAL);
    expect(new Set(ticked).size).toBe(ticked.length);
    for (const s of slots) expect(ticked).toContain(s);
    for (const r of runs.slice(0, 3)) {
      const ev: any[] = (await wget(`/api/v1/runs/${r.id}/history`)).items;
      expect(ev.filter((e) => e.type === "run.created")).toHaveLength(1);
    }
    // The worker completes them.
    const first = runs[0];
    await waitFor(async () => ((await wget(`/runs/${first.id}`)).data.status === "completed" ? true : undefined), {
      timeoutMs: 30_000,
      what: "a periodic run completed",
    });
    const ts = (await wget(`/runs/${first.id}/tasks`)).data;
    expect(ts.map((t: any) => t.role)).toEqual(["architect", "tester"]);
    expect(ts.every((t: any) => t.description === "Nightly health check" && t.status === "completed")).toBe(true);
  });

  it("is a schedule in /api/v1/schedules: paused there, it stays paused across a core restart, and resumes", async () => {
    const s = await wget("/api/v1/schedules/tasks-periodic");
    expect(s.schedule.spec).toMatchObject({ everyMs: INTERVAL, overlap: "allow", catchUp: "one" });
    const paused = await wpost("/api/v1/schedules/tasks-periodic/pause");
    expect(paused.status, paused.text).toBe(200);
    await w.kill("orchestrator");
    await w.restart("orchestrator");
    await new Promise((r) => setTimeout(r, INTERVAL));
    expect((await wget("/api/v1/schedules/tasks-periodic")).status).toBe("paused");
    const resumed = await wpost("/api/v1/schedules/tasks-periodic/resume");
    expect(resumed.status, resumed.text).toBe(200);
    expect(resumed.json().schedule.nextAt).toBeDefined();
  });
});
