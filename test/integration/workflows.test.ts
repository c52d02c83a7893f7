import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jsonToStruct, valueToJson, type OrchestratorServiceClient } from "@orch/proto";
import { Stack, freePort, http, waitFor, type HttpResponse, grpcClient, type GrpcTestClient } from "@orch/testing";

/**
 * Seed 002 (the SpecKit workflow orchestrator) end to end: a client of its HTTP API over a real
 * socket, through the gateway, NATS, the core and the agent hub with the offline stub executor.
 * Its documented curl examples, a workflow to completion through both approvals, rework on
 * rejection up to the bound, a client's agent_complete, every error body, feature ids, history.
 */

let stack: Stack;
let base: string;
let grpc: GrpcTestClient;
let client: OrchestratorServiceClient;

beforeAll(async () => {
  stack = await Stack.start();
  base = stack.baseUrl;
  grpc = grpcClient(stack.grpcPort);
  client = grpc.client;
});

afterAll(async () => {
  client?.close();
  await stack?.stop();
});

const call = <Res = any>(method: string, req: unknown): Promise<Res> => grpc.call<Res>(method, req);

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const KEYS = ["id", "workflow_type", "status", "feature_id", "current_phase", "result", "error", "created_at", "updated_at", "completed_at"];
const JSON_HEADERS = { "Content-Type": "application/json" };
const MAX_REWORKS = 3;

const create = (body: unknown) => http("POST", `${base}/workflows`, { json: body });
const get = (id: string) => http("GET", `${base}/workflows/${id}`);
const advance = (id: string, body: unknown) => http("POST", `${base}/workflows/${id}/advance`, { json: body });
const history = async (id: string) => {
  const r = await http("GET", `${base}/workflows/${id}/history`);
  expect(r.status, r.text).toBe(200);
  return r.json<any[]>();
};

async function created(body: unknown): Promise<any> {
  const r = await create(body);
  expect(r.status, r.text).toBe(201);
  return r.json();
}

function ok(r: HttpResponse): any {
  expect(r.status, r.text).toBe(200);
  return r.json();
}

/** Polls GET /workflows/{id} until `pred` holds. */
async function until(id: string, pred: (w: any) => boolean, what: string): Promise<any> {
  return waitFor(
    async () => {
      const w = ok(await get(id));
      return pred(w) ? w : undefined;
    },
    { timeoutMs: 30_000, what },
  );
}

const waiting = (id: string, phase: string) => until(id, (w) => w.status === "waiting_approval" && w.current_phase === phase, `${phase} to wait for approval`);
const transitions = (rows: any[]) => rows.map((h) => `${h.from_status}>${h.to_status}:${h.trigger}`);

describe("the seed's curl examples", () => {
  let id: string;

  it("POST /workflows creates a workflow that starts at once (201)", async () => {
    // curl -X POST http://localhost:8000/workflows -H "Content-Type: application/json" -d '…'
    const r = await http("POST", `${base}/workflows`, {
      headers: { "Content-Type": "application/json" },
      body: `{
    "workflow_type": "specify",
    "feature_description": "Add user authentication with OAuth2",
    "context": {"priority": "P1"}
  }`,
    });
    expect(r.status, r.text).toBe(201);
    const w = r.json();
    expect(Object.keys(w)).toEqual(KEYS);
    expect(w).toMatchObject({
      workflow_type: "specify",
      status: "in_progress",
      feature_id: "001-add-user-authentication-with-o",
      current_phase: "phase_1",
      result: null,
      error: null,
      completed_at: null,
    });
    expect(w.id).toMatch(UUID);
    expect(w.created_at).toMatch(ISO);
    expect(w.updated_at).toMatch(ISO);
    id = w.id;
  });

  it("GET /workflows/{workflow_id} answers the workflow", async () => {
    // curl http://localhost:8000/workflows/{workflow_id}
    const r = await http("GET", `${base}/workflows/${id}`);
    expect(r.status).toBe(200);
    const w = r.json();
    expect(Object.keys(w)).toEqual(KEYS);
    expect(w).toMatchObject({
      id,
      workflow_type: "specify",
      feature_id: "001-add-user-authentication-with-o",
      current_phase: "phase_1",
      result: null,
      error: null,
      completed_at: null,
    });
    expect(["in_progress", "waiting_approval"]).toContain(w.status);
  });

  it("POST /workflows/{workflow_id}/advance with human_approved moves on to phase_2", async () => {
    // The stub agent finishes phase_1 on its own, which then waits for a human.
    await waiting(id, "phase_1");
    // curl -X POST http://localhost:8000/workflows/{workflow_id}/advance -H "Content-Type: application/json" -d '…'
    const r = await http("POST", `${base}/workflows/${id}/advance`, {
      headers: { "Content-Type": "application/json" },
      body: `{
    "trigger": "human_approved",
    "phase_result": {"approved": true}
  }`,
    });
    expect(r.status, r.text).toBe(200);
    const w = r.json();
    expect(Object.keys(w)).toEqual(KEYS);
    expect(w).toMatchObject({ id, status: "in_progress", current_phase: "phase_2", result: null, completed_at: null });
  });
});

describe("a specify workflow, through both approvals", () => {
  it("completes after phase_2's approval, with completed_at and the last phase_result as its result", async () => {
    const w0 = await created({ workflow_type: "specify", feature_description: "Export reports as CSV files" });
    const id = w0.id;
    await waiting(id, "phase_1");
    const w1 = ok(await advance(id, { trigger: "human_approved", phase_result: { approved: true } }));
    expect(w1).toMatchObject({ status: "in_progress", current_phase: "phase_2", completed_at: null, result: null });

    await waiting(id, "phase_2");
    const w2 = ok(await advance(id, { trigger: "human_approved", phase_result: { approved: true, notes: "ship it" } }));
    expect(w2).toMatchObject({ id, status: "completed", current_phase: "phase_2", result: { approved: true, notes: "ship it" }, error: null });
    expect(w2.completed_at).toMatch(ISO);
    expect(Date.parse(w2.completed_at)).toBeGreaterThanOrEqual(Date.parse(w2.created_at));
    expect(ok(await get(id))).toEqual(w2);

    // A finished workflow takes no trigger.
    const again = await advance(id, { trigger: "human_approved" });
    expect(again.status).toBe(400);
    expect(again.json().error).toMatchObject({ code: "INVALID_STATE_TRANSITION", message: "Invalid transition from completed with trigger human_approved" });

    // The seed's workflow_history: every transition with its trigger.
    const rows = await history(id);
    expect(transitions(rows)).toEqual([
      "pending>in_progress:start",
      "in_progress>waiting_approval:agent_complete",
      "waiting_approval>in_progress:human_approved",
      "in_progress>waiting_approval:agent_complete",
      "waiting_approval>completed:human_approved",
    ]);
    for (const h of rows) {
      expect(Object.keys(h)).toEqual(["id", "workflow_id", "from_status", "to_status", "trigger", "metadata", "created_at"]);
      expect(h.id).toMatch(UUID);
      expect(h.workflow_id).toBe(id);
      expect(h.created_at).toMatch(ISO);
    }
    expect(new Set(rows.map((h) => h.id)).size).toBe(rows.length);
    expect(rows.map((h) => h.metadata.phase)).toEqual([undefined, "phase_1", "phase_1", "phase_2", "phase_2"]);
    expect(rows[1].metadata).toMatchObject({ by: "agent", revision: expect.stringMatching(/^\d+-[0-9a-f]{12}$/) });
    expect(rows[2].metadata).toMatchObject({ actor: "api", revision: rows[1].metadata.revision });
    const seqs = rows.map((h) => h.metadata.run_seq);
    expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
    // Stable: the same rows on every read.
    expect(await history(id)).toEqual(rows);
  });

  it("without a phase_result, the result is phase_2's own output", async () => {
    const { id } = await created({ workflow_type: "tasks", feature_description: "Break the CSV export into tasks" });
    await waiting(id, "phase_1");
    ok(await advance(id, { trigger: "human_approved" }));
    await waiting(id, "phase_2");
    const w = ok(await advance(id, { trigger: "human_approved" }));
    expect(w.status).toBe("completed");
    expect(w.result).toMatchObject({ role: "reviewer", type: "speckit.tasks", artifact: `specs/${w.feature_id}/tasks.md` });
  });
});

describe("human_rejected", () => {
  it(`reworks the same phase with the reason, and fails the workflow on the rejection after ${MAX_REWORKS} reworks`, async () => {
    const { id, feature_id } = await created({ workflow_type: "plan", feature_description: "Plan the OAuth2 login flow" });
    for (let i = 1; i <= MAX_REWORKS; i++) {
      await until(id, (w) => w.status === "waiting_approval", `attempt ${i} to wait for approval`);
      const w = ok(await advance(id, { trigger: "human_rejected", phase_result: { feedback: `needs more detail ${i}` } }));
      // Rework, not the next phase (the original moved on: CONTRACTS.md ✗).
      expect(w, `rejection ${i}`).toMatchObject({ status: "in_progress", current_phase: "phase_1", error: null });
      // The agent gets the reason and does the phase again.
      const run = await waitFor(
        async () => {
          const r = await call("GetRun", { run_id: id });
          const p1 = r.steps.find((s: any) => s.id === "phase_1");
          return p1.status === "waiting_approval" && p1.reworks === i ? r : undefined;
        },
        { timeoutMs: 30_000, what: `rework ${i}` },
      );
      expect(valueToJson(run.steps.find((s: any) => s.id === "phase_1").output)).toMatchObject({
        addressed: `needs more detail ${i}`,
        artifact: `specs/${feature_id}/research.md`,
      });
      expect(run.steps.find((s: any) => s.id === "phase_2").status).toBe("pending");
    }
    await until(id, (w) => w.status === "waiting_approval", "the last rework to wait for approval");
    const w = ok(await advance(id, { trigger: "human_rejected", phase_result: { feedback: "still too vague" } }));
    expect(w).toMatchObject({ status: "failed", current_phase: "phase_1", error: "rejected: still too vague", result: null, completed_at: null });
    expect(ok(await get(id))).toEqual(w);

    const rows = await history(id);
    expect(transitions(rows)).toEqual([
      "pending>in_progress:start",
      ...Array.from({ length: MAX_REWORKS }, () => ["in_progress>waiting_approval:agent_complete", "waiting_approval>in_progress:human_rejected"]).flat(),
      "in_progress>waiting_approval:agent_complete",
      "waiting_approval>failed:human_rejected",
    ]);
    const rejections = rows.filter((h) => h.trigger === "human_rejected").map((h) => h.metadata);
    expect(rejections.map((m) => [m.phase, m.reason, m.rework])).toEqual([
      ["phase_1", "needs more detail 1", 1],
      ["phase_1", "needs more detail 2", 2],
      ["phase_1", "needs more detail 3", 3],
      ["phase_1", "still too vague", 3],
    ]);

    const after = await advance(id, { trigger: "human_rejected" });
    expect(after.status).toBe(400);
    expect(after.json().error).toMatchObject({ code: "INVALID_STATE_TRANSITION", message: "Invalid transition from failed with trigger human_rejected" });
  });
});

describe("agent_complete from a client", () => {
  it("in_progress → waiting_approval with the phase_result as the phase's output; refused once the phase waits", async () => {
    // Without an agent hub the phase stays in progress until someone says it is done.
    await stack.service("agent-hub").stop();
    try {
      const { id } = await created({ workflow_type: "implement", feature_description: "Implement the CSV export" });
      expect(ok(await get(id))).toMatchObject({ status: "in_progress", current_phase: "phase_1" });

      // Nothing waits for a human yet.
      for (const trigger of ["human_approved", "human_rejected"]) {
        const r = await advance(id, { trigger });
        expect(r.status).toBe(400);
        expect(r.json()).toEqual({
          error: {
            code: "INVALID_STATE_TRANSITION",
            message: `Invalid transition from in_progress with trigger ${trigger}`,
            details: { current_status: "in_progress", current_phase: "phase_1", trigger, reason: expect.any(String) },
          },
        });
      }

      const w = ok(await advance(id, { trigger: "agent_complete", phase_result: { code: "written by hand" } }));
      expect(w).toMatchObject({ status: "waiting_approval", current_phase: "phase_1" });
      const run = await call("GetRun", { run_id: id });
      expect(valueToJson(run.steps.find((s: any) => s.id === "phase_1").output)).toEqual({ code: "written by hand" });

      // The phase is done: a second agent_complete is not a transition of the seed's machine.
      const twice = await advance(id, { trigger: "agent_complete" });
      expect(twice.status).toBe(400);
      expect(twice.json().error).toMatchObject({
        code: "INVALID_STATE_TRANSITION",
        message: "Invalid transition from waiting_approval with trigger agent_complete",
      });

      expect(ok(await advance(id, { trigger: "human_approved" }))).toMatchObject({ status: "in_progress", current_phase: "phase_2" });
      const rows = await history(id);
      expect(transitions(rows)).toEqual([
        "pending>in_progress:start",
        "in_progress>waiting_approval:agent_complete",
        "waiting_approval>in_progress:human_approved",
      ]);
      expect(rows[1].metadata).toMatchObject({ phase: "phase_1", by: "client" });

      // Back with an agent hub: phase_2 is done by the agent (phase_1's late result is ignored).
      await stack.restart("agent-hub");
      await waiting(id, "phase_2");
      const after = await call("GetRun", { run_id: id });
      expect(valueToJson(after.steps.find((s: any) => s.id === "phase_1").output)).toEqual({ code: "written by hand" });
    } finally {
      if (!stack.service("agent-hub").running) await stack.restart("agent-hub");
    }
  });
});

describe("a workflow cancelled through the runs API", () => {
  it("is failed, with an error and a cancel row in its history", async () => {
    const { id } = await created({ workflow_type: "specify", feature_description: "A workflow nobody wants" });
    await waiting(id, "phase_1");
    await call("SignalRun", { run_id: id, signal: jsonToStruct({ name: "cancel" }), reason: "not needed" });
    const w = await until(id, (x) => x.status === "failed", "the workflow to fail");
    expect(w).toMatchObject({ status: "failed", current_phase: "phase_1", result: null, completed_at: null });
    expect(typeof w.error).toBe("string");
    const rows = await history(id);
    expect(transitions(rows)).toEqual(["pending>in_progress:start", "in_progress>waiting_approval:agent_complete", "waiting_approval>failed:cancel"]);
    expect(rows[2].metadata).toMatchObject({ reason: "not needed" });
  });
});

describe("feature ids", () => {
  it("number features in sequence and slug the description (lowercase, [a-z0-9-], 30 characters)", async () => {
    const a = await created({ workflow_type: "specify", feature_description: "  Fix: the *LOGIN* page -- crashes on Safari 17!!  " });
    const b = await created({ workflow_type: "plan", feature_description: "Über-fast search ✨ for 2FA users" });
    const c = await created({ workflow_type: "tasks", feature_description: "ÜÜÜÜÜÜÜÜÜÜÜÜ" });
    const n = Number(a.feature_id.slice(0, 3));
    expect(a.feature_id).toBe(`${String(n).padStart(3, "0")}-fix-the-login-page-crashes-on`);
    expect(b.feature_id).toBe(`${String(n + 1).padStart(3, "0")}-ber-fast-search-for-2fa-users`);
    expect(c.feature_id).toBe(`${String(n + 2).padStart(3, "0")}-feature`);
    for (const w of [a, b, c]) expect(w.feature_id).toMatch(/^\d{3}-[a-z0-9-]{1,30}$/);
  });

  it("are labels of the runs, which the run index lists under the view speckit", async () => {
    const w = await created({ workflow_type: "implement", feature_description: "Find me in the run index" });
    const found = await waitFor(
      async () => {
        const r = await call("ListRuns", { view: "speckit", labels: { feature_id: w.feature_id } });
        return r.runs.length === 1 ? r.runs[0] : undefined;
      },
      { what: "the workflow in the run index" },
    );
    expect(found).toMatchObject({
      run_id: w.id,
      definition_id: "speckit.implement",
      view: "speckit",
      labels: { workflow_type: "implement", feature_id: w.feature_id },
    });
  });
});

describe("errors, each in the seed's shape", () => {
  const NONE = "00000000-0000-4000-8000-000000000000";

  it("an unknown workflow type: 400 INVALID_WORKFLOW_TYPE", async () => {
    const r = await create({ workflow_type: "refactor", feature_description: "Add user authentication with OAuth2" });
    expect(r.status).toBe(400);
    expect(r.json()).toEqual({
      error: {
        code: "INVALID_WORKFLOW_TYPE",
        message: "Invalid workflow type: refactor",
        details: { workflow_type: "refactor", valid_types: ["specify", "plan", "tasks", "implement"] },
      },
    });
  });

  it("a missing field, a short description, a wrong type: 422 in FastAPI's shape", async () => {
    let r = await create({ workflow_type: "specify" });
    expect(r.status).toBe(422);
    expect(r.json()).toEqual({
      detail: [{ type: "missing", loc: ["body", "feature_description"], msg: "Field required", input: { workflow_type: "specify" } }],
    });

    r = await create({ workflow_type: "specify", feature_description: "too short" });
    expect(r.status).toBe(422);
    expect(r.json()).toEqual({
      detail: [
        {
          type: "string_too_short",
          loc: ["body", "feature_description"],
          msg: "String should have at least 10 characters",
          input: "too short",
          ctx: { min_length: 10 },
        },
      ],
    });

    // Validation comes before the type check, and names every field.
    r = await create({ workflow_type: 7, feature_description: "short", context: "P1" });
    expect(r.status).toBe(422);
    expect(r.json().detail.map((d: any) => [d.type, d.loc.join(".")])).toEqual([
      ["string_type", "body.workflow_type"],
      ["string_too_short", "body.feature_description"],
      ["dict_type", "body.context"],
    ]);

    r = await create({});
    expect(r.status).toBe(422);
    expect(r.json().detail.map((d: any) => [d.type, d.loc.join(".")])).toEqual([
      ["missing", "body.workflow_type"],
      ["missing", "body.feature_description"],
    ]);
  });

  it("a body that is not JSON, empty or not an object: 422", async () => {
    let r = await http("POST", `${base}/workflows`, { headers: JSON_HEADERS, body: '{"workflow_type": "specify",' });
    expect(r.status).toBe(422);
    expect(r.json()).toEqual({
      detail: [{ type: "json_invalid", loc: ["body", expect.any(Number)], msg: "JSON decode error", input: {}, ctx: { error: expect.any(String) } }],
    });

    r = await http("POST", `${base}/workflows`, { headers: JSON_HEADERS, body: "" });
    expect(r.status).toBe(422);
    expect(r.json()).toEqual({ detail: [{ type: "missing", loc: ["body"], msg: "Field required", input: null }] });

    r = await http("POST", `${base}/workflows`, { headers: JSON_HEADERS, body: '["specify"]' });
    expect(r.status).toBe(422);
    expect(r.json()).toEqual({
      detail: [
        { type: "model_attributes_type", loc: ["body"], msg: "Input should be a valid dictionary or object to extract fields from", input: ["specify"] },
      ],
    });

    r = await http("POST", `${base}/workflows`, { headers: { "Content-Type": "text/plain" }, body: "specify" });
    expect(r.status).toBe(422);
    expect(r.json().detail[0]).toMatchObject({ type: "model_attributes_type", loc: ["body"], input: "specify" });

    r = await http("POST", `${base}/workflows/${NONE}/advance`, { headers: JSON_HEADERS, body: "{trigger}" });
    expect(r.status).toBe(422);
    expect(r.json().detail[0]).toMatchObject({ type: "json_invalid", loc: ["body", 1] });

    r = await advance(NONE, { phase_result: {} });
    expect(r.status).toBe(422);
    expect(r.json()).toEqual({ detail: [{ type: "missing", loc: ["body", "trigger"], msg: "Field required", input: { phase_result: {} } }] });
  });

  it("a malformed id: 400 INVALID_UUID; an unknown one: 404 WORKFLOW_NOT_FOUND", async () => {
    let r = await get("not-a-uuid");
    expect(r.status).toBe(400);
    expect(r.json()).toEqual({ error: { code: "INVALID_UUID", message: "Invalid workflow ID format: not-a-uuid", details: { workflow_id: "not-a-uuid" } } });

    r = await get(NONE);
    expect(r.status).toBe(404);
    expect(r.json()).toEqual({ error: { code: "WORKFLOW_NOT_FOUND", message: `Workflow ${NONE} not found`, details: { workflow_id: NONE } } });

    r = await http("GET", `${base}/workflows/${NONE}/history`);
    expect(r.status).toBe(404);
    expect(r.json().error.code).toBe("WORKFLOW_NOT_FOUND");
    r = await http("GET", `${base}/workflows/nope/history`);
    expect(r.status).toBe(400);
    expect(r.json().error.code).toBe("INVALID_UUID");
  });

  it("an id in capitals is the same workflow", async () => {
    const { id } = await created({ workflow_type: "specify", feature_description: "Case-insensitive workflow ids" });
    expect(ok(await get(id.toUpperCase())).id).toBe(id);
  });

  it("a run that is not a SpecKit workflow is not found", async () => {
    const job = await http("POST", `${base}/api/orchestrator/jobs`, { json: { goal: "not a workflow", steps: [], limits: { maxSteps: 3, maxWallMs: 2000 } } });
    expect(job.status, job.text).toBe(200);
    const jobId = job.json().job_id;
    await waitFor(async () => (await http("GET", `${base}/api/orchestrator/jobs/${jobId}`)).json().status === "succeeded", { what: "the job to finish" });
    for (const r of [await get(jobId), await advance(jobId, { trigger: "agent_complete" }), await http("GET", `${base}/workflows/${jobId}/history`)]) {
      expect(r.status).toBe(404);
      expect(r.json()).toEqual({ error: { code: "WORKFLOW_NOT_FOUND", message: `Workflow ${jobId} not found`, details: { workflow_id: jobId } } });
    }
  });

  it("advance checks the id, then the trigger, then the workflow, then the transition", async () => {
    // A bad id and a bad trigger: the id first.
    let r = await advance("nope", { trigger: "finish" });
    expect(r.status).toBe(400);
    expect(r.json().error.code).toBe("INVALID_UUID");

    // An unknown workflow and a bad trigger: the trigger first.
    for (const trigger of ["finish", "start", "error"]) {
      r = await advance(NONE, { trigger });
      expect(r.status).toBe(400);
      expect(r.json()).toEqual({
        error: {
          code: "INVALID_TRIGGER",
          message: `Invalid trigger: ${trigger}`,
          details: { trigger, valid_triggers: ["agent_complete", "human_approved", "human_rejected"] },
        },
      });
    }

    r = await advance(NONE, { trigger: "human_approved" });
    expect(r.status).toBe(404);
    expect(r.json().error.code).toBe("WORKFLOW_NOT_FOUND");

    const { id } = await created({ workflow_type: "specify", feature_description: "Order of the advance checks" });
    await waiting(id, "phase_1");
    r = await advance(id, { trigger: "agent_complete" });
    expect(r.status).toBe(400);
    expect(r.json()).toEqual({
      error: {
        code: "INVALID_STATE_TRANSITION",
        message: "Invalid transition from waiting_approval with trigger agent_complete",
        details: { current_status: "waiting_approval", current_phase: "phase_1", trigger: "agent_complete", reason: expect.any(String) },
      },
    });
    // Refused triggers change nothing.
    expect(ok(await get(id))).toMatchObject({ status: "waiting_approval", current_phase: "phase_1" });
  });

  it('without a valid token: 401 {"error":{"code":"UNAUTHORIZED",…}}', async () => {
    const port = await freePort();
    await stack.spawn("gateway", { PORT: String(port), HOST: "127.0.0.1", ORCH_API_TOKEN: "seed-002-token" });
    const gw = `http://127.0.0.1:${port}`;
    for (const r of [
      await http("GET", `${gw}/workflows/${NONE}`),
      await http("POST", `${gw}/workflows`, { json: { workflow_type: "specify", feature_description: "Add user authentication with OAuth2" } }),
      await http("POST", `${gw}/workflows/${NONE}/advance`, { json: { trigger: "human_approved" }, headers: { Authorization: "Bearer wrong" } }),
      await http("GET", `${gw}/workflows/${NONE}/history`),
    ]) {
      expect(r.status).toBe(401);
      expect(r.json()).toEqual({ error: { code: "UNAUTHORIZED", message: "Unauthorized" } });
    }
    const r = await http("GET", `${gw}/workflows/${NONE}`, { headers: { Authorization: "Bearer seed-002-token" } });
    expect(r.status).toBe(404);
    expect(r.json().error.code).toBe("WORKFLOW_NOT_FOUND");
  });
});
