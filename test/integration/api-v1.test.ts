import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Stack, http, sse, waitFor, type HttpResponse } from "@orch/testing";

/**
 * Our own API, /api/v1, end to end over the real system (stub executor): a client drives a SpecKit
 * run through approvals, lists runs made by other surfaces, publishes definitions, manages
 * projects, reads history, sessions, timers and queues. Bodies and error shapes are asserted exactly.
 */

let stack: Stack;
let base: string;
const repo = mkdtempSync(join(tmpdir(), "orch-v1-repo-"));
const git = (cwd: string, ...args: string[]) =>
  execFileSync("git", ["-c", "user.name=Test", "-c", "user.email=test@localhost", ...args], { cwd, encoding: "utf8" }).trim();
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

beforeAll(async () => {
  git(repo, "init", "-q", "-b", "main");
  writeFileSync(join(repo, "README.md"), "# v1\n");
  git(repo, "add", "-A");
  git(repo, "commit", "-q", "-m", "initial");
  stack = await Stack.start({ env: { ORCH_RATE_LIMIT_MAX: "10000" } });
  base = `${stack.baseUrl}/api/v1`;
  const p = await http("PUT", `${base}/projects/acme`, { json: { name: "Acme", localPath: repo, baseBranch: "main" } });
  expect(p.status, p.text).toBe(201);
});

afterAll(async () => {
  await stack?.stop();
  rmSync(repo, { recursive: true, force: true });
});

const get = (path: string, headers: Record<string, string> = {}) => http("GET", base + path, { headers });
const post = (path: string, json?: unknown, headers: Record<string, string> = {}) =>
  http("POST", base + path, json === undefined ? { headers } : { json, headers });
const ok = (r: HttpResponse, status = 200) => {
  expect(r.status, r.text).toBe(status);
  return r.json();
};
const stepOf = (run: any, id: string) => run.steps.find((s: any) => s.id === id);
const until = (id: string, pred: (run: any) => boolean, what: string, timeoutMs = 30_000) =>
  waitFor(
    async () => {
      const run = ok(await get(`/runs/${id}`));
      return pred(run) ? run : undefined;
    },
    { timeoutMs, what },
  );
const errorOf = (r: HttpResponse) => r.json().error as { code: string; message: string; details?: any };

const INPUT = { feature_description: "Add user authentication with OAuth2", feature_id: "001-add-user-auth" };

describe("/api/v1 runs: a SpecKit specify workflow driven by a client", () => {
  it("creates the run, approves each phase with the revision it read, and the run completes", async () => {
    const created = await post(
      "/runs",
      { definition: "speckit.specify", projectId: "acme", title: "OAuth2", labels: { feature: "001" }, input: INPUT },
      { "x-actor": "alice" },
    );
    const run = ok(created, 201);
    expect(created.headers.location).toBe(`/api/v1/runs/${run.id}`);
    expect(run).toMatchObject({
      projectId: "acme",
      definition: { id: "speckit.specify", version: 1 },
      view: "speckit",
      mode: "mock",
      title: "OAuth2",
      labels: { feature: "001" },
      status: "running",
      input: INPUT,
    });
    expect(run.createdAt).toMatch(ISO);
    expect(run.startedAt).toMatch(ISO);
    expect(run).not.toHaveProperty("runId");
    expect(run.steps.map((s: any) => [s.id, s.role, s.status])).toEqual([
      ["phase_1", "architect", "running"],
      ["phase_2", "reviewer", "pending"],
    ]);

    let now = await until(run.id, (r) => stepOf(r, "phase_1").status === "waiting_approval", "phase 1 to wait for approval");
    const p1 = stepOf(now, "phase_1");
    expect(p1.revision).toMatch(/^1-[0-9a-f]{12}$/);
    expect(p1.startedAt).toMatch(ISO);
    expect(p1.output).toMatchObject({ artifact: `specs/${INPUT.feature_id}/spec.md` });

    // The step, its list, and the approvals queue show the same thing.
    expect(ok(await get(`/runs/${run.id}/steps/phase_1`))).toEqual(p1);
    const steps = ok(await get(`/runs/${run.id}/steps`));
    expect(steps.total).toBe(2);
    expect(steps.items[0]).toEqual(p1);
    const approvals = ok(await get(`/approvals?projectId=acme`));
    expect(approvals.items).toContainEqual({
      runId: run.id,
      projectId: "acme",
      definition: { id: "speckit.specify", version: 1 },
      runTitle: "OAuth2",
      step: { ...p1, runId: run.id },
    });

    // Rejecting what someone else no longer sees: a stale revision is a conflict.
    const stale = await post(`/runs/${run.id}/steps/phase_1/reject`, { revision: "1-000000000000" });
    expect(stale.status).toBe(409);
    expect(errorOf(stale)).toMatchObject({ code: "CONFLICT", details: { reason: "STALE_REVISION" } });

    const approved = ok(await post(`/runs/${run.id}/steps/phase_1/approve`, { revision: p1.revision }, { "x-actor": "alice" }));
    expect(stepOf(approved, "phase_1").status).toBe("completed");
    now = await until(run.id, (r) => stepOf(r, "phase_2").status === "waiting_approval", "phase 2 to wait for approval");
    const p2 = stepOf(now, "phase_2");
    ok(await post(`/runs/${run.id}/steps/phase_2/actions/approve`, { revision: p2.revision, reason: "looks good" }));
    const done = await until(run.id, (r) => r.status === "completed", "the run to complete");
    expect(done.finishedAt).toMatch(ISO);
    expect(done.steps.map((s: any) => s.status)).toEqual(["completed", "completed"]);

    // An action the run cannot take now.
    const illegal = await post(`/runs/${run.id}/actions/start`);
    expect(illegal.status).toBe(409);
    expect(errorOf(illegal).code).toBe("ILLEGAL_TRANSITION");
    const illegalStep = await post(`/runs/${run.id}/steps/phase_1/approve`, {});
    expect(illegalStep.status).toBe(409);
    expect(errorOf(illegalStep).code).toBe("ILLEGAL_TRANSITION");

    // History: every event in order, ISO times, the actor recorded.
    const history = ok(await get(`/runs/${run.id}/history`));
    expect(history.total).toBe(history.items.length);
    expect(history.items.map((e: any) => e.seq)).toEqual(history.items.map((_: unknown, i: number) => i + 1));
    expect(history.items[0]).toMatchObject({ type: "run.created", runId: run.id, projectId: "acme", seq: 1 });
    expect(history.items.every((e: any) => ISO.test(e.at) && Number.isInteger(e.id))).toBe(true);
    const types = history.items.map((e: any) => e.type);
    expect(types.filter((t: string) => t === "step.approved")).toHaveLength(2);
    expect(types.at(-1)).toBe("run.finished");
    expect(history.items.find((e: any) => e.type === "step.approved").data).toMatchObject({ stepId: "phase_1", actor: "alice" });

    // Its event stream replays everything and ends after run.finished.
    const s = await sse(`${base}/runs/${run.id}/events`);
    expect(s.status).toBe(200);
    expect(s.headers["content-type"]).toMatch(/^text\/event-stream/);
    await s.ended;
    expect(s.frames.map((f) => [Number(f.id), f.event])).toEqual(history.items.map((e: any) => [e.id, e.type]));
    expect(s.frames[0]!.json).toEqual(history.items[0]);
    // Resuming past the end of a finished run ends at once.
    const resumed = await sse(`${base}/runs/${run.id}/events`, { "last-event-id": String(history.items.at(-1).id) });
    await resumed.ended;
    expect(resumed.frames).toEqual([]);

    // Its sessions: one per phase, run by the stub.
    const sessions = ok(await get(`/runs/${run.id}/sessions`));
    expect(sessions.items.map((x: any) => [x.stepId, x.role, x.executor, x.status])).toEqual([
      ["phase_1", "architect", "stub", "completed"],
      ["phase_2", "reviewer", "stub", "completed"],
    ]);
    const first = sessions.items[0];
    expect(first.createdAt).toMatch(ISO);
    expect(first).not.toHaveProperty("snapshot");
    expect(ok(await get(`/sessions/${first.id}`))).toEqual(first);
    const se = await sse(`${base}/sessions/${first.id}/events`);
    await se.ended;
    expect(se.frames.map((f) => f.event)).toEqual([
      "session.starting",
      "session.running",
      "agent.file_edit",
      "agent.message",
      "agent.commit",
      "agent.usage",
      "session.completed",
    ]);
    expect(se.frames[0]!.json).toMatchObject({ sessionId: first.id, runId: run.id, seq: 1, at: expect.stringMatching(ISO) });
    const cancel = await post(`/sessions/${first.id}/cancel`);
    expect(cancel.status).toBe(409);
    expect(errorOf(cancel).code).toBe("ILLEGAL_TRANSITION");
    expect((await get(`/sessions/nope`)).status).toBe(404);
  });

  it("reworks a rejected phase: a new attempt and a new revision", async () => {
    const run = ok(await post("/runs", { definition: { id: "speckit.specify" }, projectId: "acme", input: { ...INPUT, feature_id: "002-rework" } }), 201);
    const first = stepOf(await until(run.id, (r) => stepOf(r, "phase_1").status === "waiting_approval", "phase 1 to wait"), "phase_1");
    const after = ok(await post(`/runs/${run.id}/steps/phase_1/reject`, { revision: first.revision, reason: "needs more detail" }, { "x-actor": "bob" }));
    expect(stepOf(after, "phase_1").reworks).toBe(1);
    const again = stepOf(
      await until(run.id, (r) => stepOf(r, "phase_1").status === "waiting_approval" && stepOf(r, "phase_1").attempt === 2, "the rework to wait"),
      "phase_1",
    );
    expect(again.reworks).toBe(1);
    const rejected = ok(await get(`/runs/${run.id}/history`)).items.find((e: any) => e.type === "step.rejected");
    expect(rejected.data).toMatchObject({ stepId: "phase_1", actor: "bob" });
    // Cancel it through the generic action route, with a reason.
    const cancelled = ok(await post(`/runs/${run.id}/actions/cancel`, { reason: "not needed" }));
    expect(cancelled.status).toBe("cancelled");
  });

  it("answers 404 for an unknown run or step, 400 with the fields for a bad body, 415 for a body that is not JSON", async () => {
    for (const path of ["/runs/nope", "/runs/nope/steps", "/runs/nope/history", "/runs/nope/events", "/runs/nope/sessions"]) {
      const r = await get(path);
      expect(r.status, path).toBe(404);
      expect(r.json(), path).toEqual({ error: { code: "NOT_FOUND", message: "run nope not found" } });
    }
    expect((await post("/runs/nope/actions/pause")).status).toBe(404);
    const run = ok(await post("/runs", { definition: "speckit.specify", autoStart: false, input: INPUT }), 201);
    expect(run).toMatchObject({ status: "pending", projectId: "_default" });
    const noStep = await get(`/runs/${run.id}/steps/phase_9`);
    expect(noStep.status).toBe(404);
    expect(errorOf(noStep).code).toBe("NOT_FOUND");

    const bad = await post("/runs", { definition: 5, labels: "x", autoStart: "yes", extra: 1 });
    expect(bad.status).toBe(400);
    const err = errorOf(bad);
    expect(err.code).toBe("BAD_REQUEST");
    expect(err.details.fields.map((f: any) => f.path).sort()).toEqual(["", "autoStart", "definition", "labels"]);
    expect(err.details.fields.every((f: any) => typeof f.message === "string" && f.message.length > 0)).toBe(true);

    const unknownDef = await post("/runs", { definition: "no.such.definition" });
    expect(unknownDef.status).toBe(400);
    expect(errorOf(unknownDef).details.fields).toEqual([{ path: "definition", message: expect.stringContaining("no.such.definition") }]);

    const badSignal = await post(`/runs/${run.id}/actions/fail_step`, { stepId: "phase_1" });
    expect(badSignal.status).toBe(400);
    expect(errorOf(badSignal).details.fields).toEqual([{ path: "error", message: expect.any(String) }]);
    const unknownAction = await post(`/runs/${run.id}/actions/explode`);
    expect(unknownAction.status).toBe(400);
    expect(errorOf(unknownAction).details.fields[0].path).toBe("name");

    const text = await http("POST", `${base}/runs`, { body: "definition=job", headers: { "content-type": "application/x-www-form-urlencoded" } });
    expect(text.status).toBe(415);
    expect(errorOf(text).code).toBe("UNSUPPORTED_MEDIA_TYPE");
    const broken = await http("POST", `${base}/runs`, { body: "{", headers: { "content-type": "application/json" } });
    expect(broken.status).toBe(400);
    expect(errorOf(broken).code).toBe("BAD_REQUEST");
    expect((await get("/runs?status=bogus")).status).toBe(400);
    expect(errorOf(await get("/runs?label=nocolon")).details.fields[0].path).toBe("label");

    // Starting it by hand, with facts through set_facts; X-Actor lands in the events.
    ok(await post(`/runs/${run.id}/actions/set_facts`, { facts: { reviewed: true } }));
    const started = ok(await post(`/runs/${run.id}/actions/start`, undefined, { "x-actor": "carol" }));
    expect(started.status).toBe("running");
    expect(started.facts).toMatchObject({ reviewed: true });
    const changed = ok(await get(`/runs/${run.id}/history`)).items.find((e: any) => e.type === "run.status_changed");
    expect(changed.data).toMatchObject({ from: "pending", to: "running", actor: "carol" });
    ok(await post(`/runs/${run.id}/actions/cancel`));
  });

  it("a job with no steps runs seed 000's implicit dev.log step and succeeds; a run that would wait for steps for ever is refused", async () => {
    const created = ok(await post("/runs", { definition: "job", input: { goal: "x" } }), 201);
    const run = await until(created.id, (r) => r.status === "completed", "the job to complete", 15_000);
    expect(run.steps.map((s: any) => [s.id, s.type, s.status, s.attempt])).toEqual([["s0", "dev.log", "completed", 1]]);
    // Seed 000's view of the same run.
    expect((await http("GET", `${stack.baseUrl}/api/orchestrator/jobs/${created.id}`)).json()).toMatchObject({ status: "succeeded", stepsRun: 1 });

    // `task` takes its steps with the run and has none of its own: without steps it is refused, naming the field.
    const r = await post("/runs", { definition: "task" });
    expect(r.status).toBe(400);
    expect(errorOf(r)).toMatchObject({ code: "BAD_REQUEST", details: { fields: [{ path: "steps", message: expect.stringContaining("steps is required") }] } });
  });

  it("creates a run once per Idempotency-Key", async () => {
    const headers = { "idempotency-key": `k-${Date.now()}` };
    const a = await post("/runs", { definition: "speckit.specify", autoStart: false, input: INPUT }, headers);
    const b = await post("/runs", { definition: "speckit.specify", autoStart: false, input: INPUT }, headers);
    expect(a.status).toBe(201);
    expect(b.status).toBe(200);
    expect(b.json().id).toBe(a.json().id);
    await post(`/runs/${a.json().id}/actions/cancel`);
  });
});

describe("unusual URLs", () => {
  it("a path segment over 100 characters: 414 URI_TOO_LONG, without the URL quoted back", async () => {
    const long = "a".repeat(101);
    for (const path of [`/api/v1/runs/${long}`, `/api/orchestrator/jobs/${long}`, `/workflows/${long}`]) {
      const r = await http("GET", `${stack.baseUrl}${path}`);
      expect(r.status, path).toBe(414);
      expect(r.json()).toEqual({ error: { code: "URI_TOO_LONG", message: "A segment of the URL's path is longer than 100 characters" } });
    }
  });

  it("/docs/static/<unknown> is a 404; the known assets are served", async () => {
    for (const file of ["nope.js", "swagger-ui.css.map", "..%2Fpackage.json", "constructor", "__proto__"]) {
      const r = await http("GET", `${stack.baseUrl}/docs/static/${file}`);
      expect(r.status, file).toBe(404);
      expect(r.json().error.code).toBe("NOT_FOUND");
    }
    const css = await http("GET", `${stack.baseUrl}/docs/static/swagger-ui.css`);
    expect(css.status).toBe(200);
    expect(css.headers["content-type"]).toMatch(/^text\/css/);
  });
});

describe("/api/v1 runs made by other surfaces", () => {
  it("lists a seed 000 job, filters, and pages with a cursor", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await http("POST", `${stack.baseUrl}/api/orchestrator/jobs`, { json: { goal: `job ${i}`, steps: [{ type: "ci" }], limits: { maxSteps: 3 } } });
      expect(r.status).toBe(200);
      ids.push(r.json().job_id);
    }
    for (const id of ids) await until(id, (r) => r.status === "completed", `job ${id}`);
    const jobs = await waitFor(
      async () => {
        const page = ok(await get("/runs?view=job&status=completed,failed&limit=500"));
        return ids.every((id) => page.items.some((x: any) => x.id === id)) ? page : undefined;
      },
      { what: "the jobs in the run index" },
    );
    const one = jobs.items.find((x: any) => x.id === ids[0]);
    expect(one).toMatchObject({ id: ids[0], projectId: "_default", definition: { id: "job", version: 1 }, view: "job", status: "completed", title: "job 0" });
    expect(one.createdAt).toMatch(ISO);
    expect(Object.keys(one).sort()).toEqual(
      expect.arrayContaining(["id", "projectId", "definition", "view", "labels", "status", "createdAt", "updatedAt", "seq"]),
    );
    expect(jobs.total).toBeGreaterThanOrEqual(3);
    // The same run through its own surface and ours.
    expect(ok(await get(`/runs/${ids[0]}`))).toMatchObject({ id: ids[0], definition: { id: "job" }, status: "completed" });
    // Repeated status filters equal the comma list; the definition filter; paging.
    const repeated = ok(await get("/runs?view=job&status=completed&status=failed&limit=500"));
    expect(repeated.items.map((x: any) => x.id)).toEqual(jobs.items.map((x: any) => x.id));
    expect(ok(await get("/runs?definition=job&limit=500")).items.map((x: any) => x.id)).toEqual(expect.arrayContaining(ids));
    const p1 = ok(await get("/runs?view=job&limit=2"));
    expect(p1.items).toHaveLength(2);
    expect(typeof p1.nextCursor).toBe("string");
    const p2 = ok(await get(`/runs?view=job&limit=2&cursor=${encodeURIComponent(p1.nextCursor)}`));
    expect(p2.items.map((x: any) => x.id)).not.toContain(p1.items[0].id);
    expect(ok(await get("/runs?label=feature:001")).items.every((x: any) => x.labels.feature === "001")).toBe(true);

    // Events as JSON history, paged by event id.
    const evs = ok(await get(`/events?runId=${ids[0]}&limit=2`));
    expect(evs.items).toHaveLength(2);
    expect(evs.items[0]).toMatchObject({ runId: ids[0], seq: 1, type: "run.created" });
    const rest = ok(await get(`/events?runId=${ids[0]}&cursor=${evs.nextCursor}`));
    expect(rest.items[0].seq).toBe(3);
    expect(rest.total).toBe(evs.total);
    expect(rest.nextCursor).toBeUndefined();
    expect(rest.items.at(-1).type).toBe("run.finished");
    const proj = ok(await get(`/events?projectId=_default&limit=1000`));
    const mine = proj.items.filter((e: any) => e.runId === ids[1]).map((e: any) => e.seq);
    expect(mine.length).toBeGreaterThan(2);
    expect(mine).toEqual(mine.map((_: unknown, i: number) => i + 1));
  });

  it("shows armed timers (a job's wall clock) and the work queues", async () => {
    const r = await http("POST", `${stack.baseUrl}/api/orchestrator/jobs`, {
      json: { goal: "slow", steps: [{ type: "ci", payload: { mock: { delayMs: 3000 } } }], limits: { maxSteps: 3, maxWallMs: 60_000 } },
    });
    const id = r.json().job_id;
    const timers = await waitFor(
      async () => {
        const t = ok(await get(`/timers?runId=${id}`));
        return t.items.length ? t : undefined;
      },
      { what: "the wall-clock timer" },
    );
    expect(timers.items).toEqual([{ id: `${id}.wall`, runId: id, kind: "wall_clock", dueAt: expect.stringMatching(ISO), setAt: expect.stringMatching(ISO) }]);
    expect(Date.parse(timers.items[0].dueAt) - Date.parse(timers.items[0].setAt)).toBeGreaterThan(50_000);
    expect(ok(await get("/timers")).items.some((t: any) => t.runId === id)).toBe(true);
    await until(id, (x) => x.status === "completed", "the slow job");
    await waitFor(async () => ok(await get(`/timers?runId=${id}`)).total === 0, { what: "the timer to be disarmed" });

    const queues = ok(await get("/queues"));
    expect(queues.total).toBe(queues.items.length);
    const adapter = queues.items.find((q: any) => q.finished > 0);
    expect(adapter).toMatchObject({
      name: expect.any(String),
      queued: expect.any(Number),
      started: expect.any(Number),
      finished: expect.any(Number),
      failed: expect.any(Number),
    });
  });
});

describe("/api/v1 definitions", () => {
  const yaml = (title: string) =>
    ["id: acme.review", "version: 1", `title: ${title}`, "view: generic", "steps:", "  - id: review", "    role: reviewer", "    type: acme.review", ""].join(
      "\n",
    );

  it("lists the built-ins, publishes YAML and JSON versions (immutable), and runs one", async () => {
    const list = ok(await get("/definitions"));
    expect(list.total).toBe(list.items.length);
    expect(list.items).toContainEqual({
      id: "speckit.specify",
      version: 1,
      title: expect.any(String),
      view: "speckit",
      source: "builtin",
      hash: expect.any(String),
    });
    const one = ok(await get("/definitions/speckit.specify"));
    expect(one).toMatchObject({ id: "speckit.specify", version: 1, source: "builtin", definition: { id: "speckit.specify", steps: expect.any(Array) } });

    const put = await http("POST", `${base}/definitions`, { body: yaml("Review"), headers: { "content-type": "application/yaml" } });
    expect(put.status, put.text).toBe(201);
    expect(put.json()).toMatchObject({ id: "acme.review", version: 1, title: "Review", view: "generic", source: "stored" });
    expect(put.headers.location).toBe("/api/v1/definitions/acme.review?version=1");
    const same = await http("POST", `${base}/definitions`, { body: yaml("Review"), headers: { "content-type": "text/yaml" } });
    expect(same.status).toBe(200);
    expect(same.json().hash).toBe(put.json().hash);
    const changed = await http("POST", `${base}/definitions`, { body: yaml("Changed"), headers: { "content-type": "application/yaml" } });
    expect(changed.status).toBe(409);
    expect(errorOf(changed).code).toBe("CONFLICT");

    const v2 = await post("/definitions", {
      id: "acme.review",
      version: 2,
      title: "Review v2",
      view: "generic",
      steps: [{ id: "review", role: "reviewer", type: "acme.review" }],
    });
    expect(v2.status, v2.text).toBe(201);
    expect(ok(await get("/definitions/acme.review"))).toMatchObject({ version: 2, title: "Review v2" });
    expect(ok(await get("/definitions/acme.review?version=1"))).toMatchObject({ version: 1, title: "Review" });
    expect(
      ok(await get("/definitions"))
        .items.filter((d: any) => d.id === "acme.review")
        .map((d: any) => d.version),
    ).toEqual([1, 2]);

    const invalid = await post("/definitions", { id: "acme.bad", version: 1, steps: "nope" });
    expect(invalid.status).toBe(400);
    expect(errorOf(invalid).details.fields.some((f: any) => f.path === "steps")).toBe(true);
    const notYaml = await http("POST", `${base}/definitions`, { body: "a: [", headers: { "content-type": "application/yaml" } });
    expect(notYaml.status).toBe(400);
    expect((await get("/definitions/acme.none")).status).toBe(404);
    expect((await get("/definitions/acme.review?version=9")).status).toBe(404);

    const run = ok(await post("/runs", { definition: "acme.review@1", projectId: "acme" }), 201);
    expect(run.definition).toEqual({ id: "acme.review", version: 1 });
    await until(run.id, (r) => r.status === "completed", "the acme.review run");
  });
});

describe("/api/v1 projects", () => {
  it("creates, reads, updates; a token is kept as a hash and never returned", async () => {
    const created = await post("/projects", { id: "billing", name: "Billing", gitUrl: "https://example.com/billing.git", token: "billing-token-0123456789" });
    const p = ok(created, 201);
    expect(created.headers.location).toBe("/api/v1/projects/billing");
    expect(p).toEqual({
      id: "billing",
      name: "Billing",
      gitUrl: "https://example.com/billing.git",
      hasToken: true,
      // The number the core gave it (its seed 004 id), on every project now.
      alias: expect.stringMatching(/^[1-9]\d*$/),
      createdAt: expect.stringMatching(ISO),
      updatedAt: expect.stringMatching(ISO),
    });
    expect(created.text).not.toContain("billing-token");
    expect(created.text).not.toContain("tokenSha256");
    const dup = await post("/projects", { id: "billing", name: "Again" });
    expect(dup.status).toBe(409);
    expect(errorOf(dup).code).toBe("CONFLICT");

    // A project with a token of its own needs it (X-Project-Token), even here where auth is off.
    const denied = await get("/projects/billing");
    expect(denied.status).toBe(401);
    const pt = { "x-project-token": "billing-token-0123456789" };
    expect(ok(await get("/projects/billing", pt))).toEqual(p);
    const updated = ok(await http("PUT", `${base}/projects/billing`, { json: { ciProvider: "github", defaultModels: { architect: "m1" } }, headers: pt }));
    expect(updated).toMatchObject({
      id: "billing",
      name: "Billing",
      ciProvider: "github",
      defaultModels: { architect: "m1" },
      hasToken: true,
      createdAt: p.createdAt,
    });
    const cleared = ok(await http("PUT", `${base}/projects/billing`, { json: { token: null }, headers: pt }));
    expect(cleared.hasToken).toBe(false);
    expect(ok(await get("/projects/billing")).hasToken).toBe(false);

    const list = ok(await get("/projects"));
    expect(list.items.map((x: any) => x.id)).toEqual(expect.arrayContaining(["acme", "billing"]));
    expect(list.total).toBe(list.items.length);
    expect((await get("/projects/nope")).status).toBe(404);
    const noName = await http("PUT", `${base}/projects/fresh`, { json: { gitUrl: "x" } });
    expect(noName.status).toBe(400);
    expect(errorOf(noName).details.fields).toEqual([{ path: "name", message: expect.any(String) }]);
    const badId = await post("/projects", { id: "no spaces", name: "x" });
    expect(badId.status).toBe(400);
    expect(errorOf(badId).details.fields[0].path).toBe("id");
    const short = await post("/projects", { name: "x", token: "short" });
    expect(errorOf(short).details.fields[0].path).toBe("token");
    const gen = ok(await post("/projects", { name: "Generated" }), 201);
    expect(gen.id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("issues stream tokens for event-stream paths only", async () => {
    const t = ok(await post("/stream-tokens", { path: "/api/v1/projects/acme/events" }), 201);
    expect(t).toEqual({ token: expect.any(String), expiresAt: expect.stringMatching(ISO), path: "/api/v1/projects/acme/events" });
    expect(ok(await post("/stream-tokens", { path: "/api/orchestrator/events" }), 201).path).toBe("/api/orchestrator/events");
    const notStream = await post("/stream-tokens", { path: "/api/v1/runs" });
    expect(notStream.status).toBe(400);
    expect(errorOf(notStream).details.fields[0].path).toBe("path");
    expect((await post("/stream-tokens", { path: "/api/v1/runs/nope/events" })).status).toBe(404);
  });
});

describe("/api/v1 while the core is down", () => {
  it("answers 202 for a create or an action the core has not answered yet, and applies them when it is back", async () => {
    const pending = ok(await post("/runs", { definition: "speckit.specify", autoStart: false, input: INPUT }), 201);
    await stack.kill("orchestrator");
    try {
      const accepted = await post(
        "/runs",
        { definition: "speckit.specify", projectId: "acme", autoStart: false, input: INPUT },
        { "idempotency-key": `down-${Date.now()}` },
      );
      expect(accepted.status, accepted.text).toBe(202);
      const body = accepted.json();
      expect(body).toEqual({ id: expect.any(String), projectId: "acme", definition: { id: "speckit.specify" }, status: "pending", accepted: true });
      expect(accepted.headers.location).toBe(`/api/v1/runs/${body.id}`);
      const action = await post(`/runs/${pending.id}/actions/cancel`);
      expect(action.status, action.text).toBe(202);
      expect(action.json()).toEqual({ id: pending.id, action: "cancel", accepted: true });
      await stack.restart("orchestrator");
      expect((await until(body.id, () => true, "the accepted run to be created")).status).toBe("pending");
      await until(pending.id, (r) => r.status === "cancelled", "the stored cancel to be applied");
    } finally {
      if (!stack.service("orchestrator").running) await stack.restart("orchestrator");
    }
  }, 60_000);
});

describe("/api/v1 while NATS or the event-bus is down", () => {
  it("says which: NATS_UNAVAILABLE at once without a connection to NATS, UNAVAILABLE when no event-bus answers", async () => {
    await stack.nats.kill();
    try {
      // Once the gateway has seen its connection go (a request sent just before may wait for its
      // timeout): no wait, and NATS named, not the event-bus.
      await waitFor(
        async () => {
          const r = await get("/runs");
          return r.status === 503 && errorOf(r).code === "NATS_UNAVAILABLE";
        },
        { timeoutMs: 15_000, what: "a 503 NATS_UNAVAILABLE" },
      );
      const t0 = Date.now();
      const listed = { r: await get("/runs"), ms: 0 };
      listed.ms = Date.now() - t0;
      expect(listed.r.status).toBe(503);
      expect(errorOf(listed.r).code).toBe("NATS_UNAVAILABLE");
      expect(listed.ms).toBeLessThan(1_000);
      expect(errorOf(listed.r).message).toMatch(/^NATS is unavailable/);
      // A write that needs NATS says the same.
      const created = await post("/runs", { definition: "job", input: { goal: "x" } });
      expect(created.status).toBe(503);
      expect(errorOf(created).code).toBe("NATS_UNAVAILABLE");
    } finally {
      await stack.nats.restart();
    }
    await waitFor(async () => (await http("GET", `${stack.baseUrl}/ready`)).status === 200, { timeoutMs: 30_000, what: "ready again" });

    // NATS is up, the event-bus is not: the run index has nobody to answer.
    await stack.kill("event-bus");
    try {
      const r = await get("/runs");
      expect(r.status).toBe(503);
      expect(errorOf(r)).toEqual({ code: "UNAVAILABLE", message: "no event-bus answered the run query (is the event-bus service running?)" });
    } finally {
      // Just after a nats-server restart the event-bus once took over 20 s to be ready (2.9, in CI);
      // should it time out, the error carries its last log lines.
      await stack.restart("event-bus", 45_000);
    }
    expect((await get("/runs")).status).toBe(200);
  }, 90_000);
});
