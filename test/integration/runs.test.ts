import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { status } from "@grpc/grpc-js";
import { jsonToStruct, structToJson, valueToJson, type OrchestratorServiceClient } from "@orch/proto";
import { Stack, waitFor, grpcClient, type GrpcTestClient } from "@orch/testing";

/**
 * Runs of every built-in definition and of a project's own, through the real services, driven by
 * an external gRPC client: creation, actions and their refusals, approvals with revisions, history,
 * watching, listing, definitions from files.
 */

let stack: Stack;
let grpc: GrpcTestClient;
let client: OrchestratorServiceClient;
const projectDir = mkdtempSync(join(tmpdir(), "orch-project-"));

beforeAll(async () => {
  stack = await Stack.start({ serviceEnv: { orchestrator: { ORCH_IMPORT_ROOTS: tmpdir() } } });
  grpc = grpcClient(stack.grpcPort);
  client = grpc.client;
});

afterAll(async () => {
  client?.close();
  await stack?.stop();
});

const call = <Res = any>(method: string, req: unknown): Promise<Res> => grpc.call<Res>(method, req);

const signal = (runId: string, s: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
  call("SignalRun", { run_id: runId, signal: jsonToStruct(s), ...extra });
const getRun = (runId: string) => call("GetRun", { run_id: runId });
const stepOf = (run: any, id: string) => run.steps.find((s: any) => s.id === id);

async function until(runId: string, pred: (run: any) => boolean, what: string): Promise<any> {
  return waitFor(
    async () => {
      const r = await getRun(runId);
      return pred(r) ? r : undefined;
    },
    { timeoutMs: 20_000, what },
  );
}

describe("SpecKit workflows (seed 002)", () => {
  it("runs two phases, each behind an approval carrying the output's revision", async () => {
    const created = await call("CreateRun", {
      definition: { id: "speckit.specify" },
      title: "Add user authentication with OAuth2",
      labels: { workflow_type: "specify" },
      input: jsonToStruct({ feature_description: "Add user authentication with OAuth2", context: { priority: "P1" } }),
    });
    const id = created.run_id;
    expect(created).toMatchObject({ definition_id: "speckit.specify", definition_version: 1, view: "speckit", status: "running" });

    let run = await until(id, (r) => stepOf(r, "phase_1").status === "waiting_approval", "phase 1 to await approval");
    const rev1 = stepOf(run, "phase_1").revision;
    expect(rev1).toMatch(/^\d+-[0-9a-f]{12}$/);
    expect(valueToJson(stepOf(run, "phase_1").output)).toMatchObject({
      role: "architect",
      type: "speckit.specify",
      artifact: "specs/add-user-authentication-with-oauth2/spec.md",
    });

    // An approval for another revision is refused and changes nothing.
    await expect(signal(id, { name: "approve", stepId: "phase_1", revision: "9-000000000000" }, { actor: "alice" })).rejects.toMatchObject({
      code: status.ABORTED,
    });
    // An action illegal in this state is refused.
    await expect(signal(id, { name: "resume" })).rejects.toMatchObject({ code: status.FAILED_PRECONDITION });
    // Rework: the same phase runs again with the reviewer's reason.
    await signal(id, { name: "reject", stepId: "phase_1", revision: rev1 }, { actor: "alice", reason: "needs acceptance criteria" });
    run = await until(id, (r) => stepOf(r, "phase_1").status === "waiting_approval" && stepOf(r, "phase_1").reworks === 1, "the rework to finish");
    expect(valueToJson(stepOf(run, "phase_1").output)).toMatchObject({ addressed: "needs acceptance criteria" });
    const rev2 = stepOf(run, "phase_1").revision;
    expect(rev2).not.toBe(rev1);

    run = await signal(id, { name: "approve", stepId: "phase_1", revision: rev2 }, { actor: "alice", reason: "good" });
    run = await until(id, (r) => stepOf(r, "phase_2").status === "waiting_approval", "phase 2 to await approval");
    run = await signal(id, { name: "approve", revision: stepOf(run, "phase_2").revision }, { actor: "bob" });
    run = await until(id, (r) => r.status === "completed", "the workflow to complete");
    expect(run.finished_at).toBeTruthy();

    const history = (await call("GetHistory", { run_id: id })).records;
    const approvals = history.filter((h: any) => h.type === "step.approved").map((h: any) => [h.actor, structToJson(h.data)?.revision]);
    expect(approvals).toEqual([
      ["alice", rev2],
      ["bob", stepOf(run, "phase_2").revision],
    ]);
    const rejection = history.find((h: any) => h.type === "step.rejected");
    expect(rejection).toMatchObject({ actor: "alice", reason: "needs acceptance criteria" });
    // Every change of status, the last one being the run's end (`run.finished`, which says where it came from).
    const statuses = history.filter((h: any) => h.type === "run.status_changed" || h.type === "run.finished").map((h: any) => `${h.from}>${h.to}:${h.trigger}`);
    expect(statuses).toEqual(["pending>running:START", "running>completed:STAGE_DONE"]);
    expect(history.at(-1).type).toBe("run.finished");
    expect(history.map((h: any) => Number(h.run_seq))).toEqual(history.map((_: unknown, i: number) => i + 1));
  });

  it("fails a phase after too many rejections", async () => {
    const { run_id: id } = await call("CreateRun", { definition: { id: "speckit.plan" }, input: jsonToStruct({ feature_description: "A plan to fail" }) });
    for (let i = 0; i <= 3; i++) {
      const run = await until(id, (r) => stepOf(r, "phase_1").status === "waiting_approval" && stepOf(r, "phase_1").reworks === i, `rework ${i}`);
      await signal(id, { name: "reject", revision: stepOf(run, "phase_1").revision }, { reason: `no ${i}` });
    }
    const run = await until(id, (r) => r.status === "failed", "the workflow to fail");
    expect(stepOf(run, "phase_1").status).toBe("failed");
    expect(run.error).toBe("rejected: no 3");
  });
});

describe("protocol runs (seed 004)", () => {
  it("plans on start, runs steps when asked, blocks on a failure and retries it", async () => {
    const { run_id: id } = await call("CreateRun", {
      definition: { id: "protocol" },
      title: "feature-x",
      auto_start: false,
      input: jsonToStruct({ protocol_name: "feature-x" }),
    });
    expect((await getRun(id)).status).toBe("pending");
    await expect(signal(id, { name: "resume" })).rejects.toMatchObject({ code: status.FAILED_PRECONDITION, details: expect.stringContaining("not paused") });
    await signal(id, { name: "start" });
    await until(id, (r) => r.status === "planned", "planning to finish");
    await expect(signal(id, { name: "run_next_step" })).rejects.toMatchObject({ code: status.NOT_FOUND, details: "No pending or failed steps to run" });

    await signal(id, {
      name: "add_steps",
      steps: [
        { id: "build", role: "implementer", type: "agent" },
        { id: "flaky", role: "tester", type: "agent", payload: { mock: { failTimes: 5 } }, retry: { maxAttempts: 1 } },
      ],
    });
    await signal(id, { name: "run_next_step" });
    let run = await until(id, (r) => stepOf(r, "build").status === "completed", "build to complete");
    expect(run.status).toBe("running");
    await signal(id, { name: "run_step", stepId: "flaky" });
    run = await until(id, (r) => r.status === "blocked", "the protocol to block");
    expect(stepOf(run, "flaky").status).toBe("failed");
    await expect(signal(id, { name: "run_step", stepId: "build" })).rejects.toMatchObject({
      code: status.FAILED_PRECONDITION,
      details: "Step already running or completed",
    });

    await signal(id, { name: "retry_latest" });
    run = await until(id, (r) => stepOf(r, "flaky").retries === 1 && stepOf(r, "flaky").status === "failed", "the retry to fail again");
    await signal(id, { name: "approve", stepId: "flaky", force: true }, { actor: "carol", reason: "known flake" });
    run = await until(id, (r) => r.status === "completed", "the protocol to complete");
    expect(stepOf(run, "flaky").status).toBe("completed");

    await signal(id, { name: "cancel" });
    await expect(signal(id, { name: "start" })).rejects.toMatchObject({ code: status.FAILED_PRECONDITION });
  });
});

describe("the ticket pipeline (seed 003)", () => {
  it("moves through the guarded table, driven by steps and by events", async () => {
    // Version 1: its draft PR step writes the description on the branch (version 2 opens a real PR
    // on the project's forge: test/integration/pull-requests.test.ts, libs/engine/test/pull-requests.test.ts).
    const { run_id: id } = await call("CreateRun", {
      definition: { id: "ticket", version: 1 },
      title: "ENG-42",
      labels: { ticket: "ENG-42" },
      input: jsonToStruct({ key: "ENG-42" }),
    });
    expect((await getRun(id)).stage).toBe("New");
    await expect(signal(id, { name: "event", event: "PlanCommitted" })).rejects.toMatchObject({ code: status.FAILED_PRECONDITION });
    await signal(id, { name: "event", event: "TicketAccepted" });
    let run = await until(id, (r) => r.stage === "AwaitingYourReview", "the pipeline to await review");
    expect(["plan", "implement", "test", "draft_pr"].map((s) => stepOf(run, s).status)).toEqual(["completed", "completed", "completed", "completed"]);
    await expect(signal(id, { name: "event", event: "ApprovalGranted" })).rejects.toMatchObject({
      code: status.FAILED_PRECONDITION,
      details: expect.stringContaining("guard failed"),
    });
    await signal(id, { name: "event", event: "ApprovalGranted", facts: { approval: true } }, { actor: "dana" });
    await signal(id, { name: "event", event: "ReviewStarted" });
    await signal(id, { name: "event", event: "ReviewChangesRequested" });
    run = await until(
      id,
      (r) => r.stage === "AwaitingYourReview" && stepOf(r, "implement").iteration === 0 && stepOf(r, "implement").attempt === 2,
      "the rework round",
    );
    await signal(id, { name: "event", event: "ApprovalGranted" });
    await signal(id, { name: "event", event: "ReviewStarted" });
    await signal(id, { name: "event", event: "MergeInitiated" });
    await signal(id, { name: "event", event: "ReviewApprovedAndMerged", facts: { mergeCompleted: true } });
    run = await until(id, (r) => r.status === "completed", "the ticket to be done");
    expect(run.stage).toBe("Done");
    await expect(signal(id, { name: "event", event: "Cancelled" })).rejects.toMatchObject({
      code: status.FAILED_PRECONDITION,
      details: expect.stringContaining("completed"),
    });
  });
});

describe("definitions from a project's repository", () => {
  it("imports .orchestrator/workflows/*.yaml, refuses bad files, and runs a DAG", async () => {
    const wf = join(projectDir, ".orchestrator", "workflows");
    mkdirSync(wf, { recursive: true });
    writeFileSync(
      join(wf, "release.yaml"),
      [
        "id: acme.release",
        "version: 1",
        "title: Release train",
        "steps:",
        "  - { id: build, role: implementer, type: agent }",
        "  - { id: unit, role: tester, type: agent, needs: [build] }",
        "  - { id: lint, role: reviewer, type: agent, needs: [build] }",
        "  - id: ship",
        "    role: maintainer",
        "    type: agent",
        "    needs: [unit, lint]",
        "    inputs: { built: '${steps.build.output.summary}' }",
        "",
      ].join("\n"),
    );
    writeFileSync(join(wf, "broken.yaml"), "id: acme.broken\nversion: 1\nsteps:\n  - { id: a, needs: [nope] }\n");
    const res = await call("ImportDefinitions", { path: projectDir });
    const byFile = Object.fromEntries(res.results.map((r: any) => [r.file, r]));
    expect(byFile[".orchestrator/workflows/release.yaml"].definition).toMatchObject({ id: "acme.release", version: 1, source: "stored", created: true });
    expect(byFile[".orchestrator/workflows/broken.yaml"].error).toMatch(/unknown step 'nope'/);
    // Importing again changes nothing; a changed file under the same version is refused.
    expect((await call("ImportDefinitions", { path: projectDir })).results[1].definition.created).toBe(false);
    await expect(call("PutDefinition", { text: "id: acme.release\nversion: 1\nsteps: [{ id: other }]\n" })).rejects.toMatchObject({
      code: status.ALREADY_EXISTS,
    });
    await expect(call("ImportDefinitions", { path: "/etc" })).rejects.toMatchObject({ code: status.PERMISSION_DENIED });

    const defs = (await call("ListDefinitions", {})).definitions.map((d: any) => `${d.id}@${d.version}:${d.source}`);
    expect(defs).toEqual(
      expect.arrayContaining([
        "acme.release@1:stored",
        "speckit.specify@1:builtin",
        "ticket@2:builtin",
        "job@1:builtin",
        "protocol@1:builtin",
        "task@1:builtin",
      ]),
    );

    const { run_id: id } = await call("CreateRun", { definition: { id: "acme.release" }, project_id: "acme" });
    const run = await until(id, (r) => r.status === "completed", "the release to complete");
    const history = (await call("GetHistory", { run_id: id })).records;
    const started = history.filter((h: any) => h.type === "step.started").map((h: any) => structToJson(h.data)?.stepId);
    expect(started[0]).toBe("build");
    expect(started.slice(1, 3).sort()).toEqual(["lint", "unit"]);
    expect(started[3]).toBe("ship");
    expect(stepOf(run, "ship").status).toBe("completed");

    await expect(call("CreateRun", { definition: { id: "acme.missing" } })).rejects.toMatchObject({ code: status.NOT_FOUND });
  });
});

describe("listing and watching", () => {
  it("lists runs newest first with filters and cursors", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      ids.push(
        (
          await call("CreateRun", {
            definition: { id: "task" },
            project_id: "listing",
            auto_start: false,
            labels: { n: String(i) },
            steps: [jsonToStruct({ id: "task", role: "tester" })],
          })
        ).run_id,
      );
    }
    const page1 = await waitFor(async () => {
      const r = await call("ListRuns", { project_id: "listing", limit: 2 });
      return Number(r.total) === 5 ? r : undefined;
    });
    expect(page1.runs.map((r: any) => r.run_id)).toEqual([ids[4], ids[3]]);
    expect(page1.runs[0]).toMatchObject({ definition_id: "task", view: "task", status: "pending" });
    const page2 = await call("ListRuns", { project_id: "listing", limit: 2, cursor: page1.next_cursor });
    expect(page2.runs.map((r: any) => r.run_id)).toEqual([ids[2], ids[1]]);
    const page3 = await call("ListRuns", { project_id: "listing", limit: 2, cursor: page2.next_cursor });
    expect(page3.runs.map((r: any) => r.run_id)).toEqual([ids[0]]);
    expect(page3.next_cursor).toBe("");
    expect((await call("ListRuns", { project_id: "listing", labels: { n: "3" } })).runs.map((r: any) => r.run_id)).toEqual([ids[3]]);

    await signal(ids[0]!, { name: "start" });
    await waitFor(async () => (await call("ListRuns", { project_id: "listing", status: ["completed"] })).runs.length === 1);
    expect(Number((await call("ListRuns", { project_id: "listing", status: ["pending"] })).total)).toBe(4);
    await expect(call("ListRuns", { cursor: "garbage!" })).rejects.toMatchObject({ code: status.INVALID_ARGUMENT });
  });

  it("watches a run to the end, and resumes after a sequence", async () => {
    const { run_id: id } = await call("CreateRun", {
      definition: { id: "task" },
      steps: [jsonToStruct({ id: "task", role: "implementer", payload: { mock: { delayMs: 300 } } })],
    });
    const watch = (after = 0) =>
      new Promise<any[]>((resolve, reject) => {
        const out: any[] = [];
        const s = client.WatchRun({ run_id: id, after_seq: String(after) });
        s.on("data", (e: any) => out.push(e));
        s.on("end", () => resolve(out));
        s.on("error", reject);
      });
    const all = await watch();
    expect(all.at(-1).type).toBe("run.finished");
    expect(all.map((e) => Number(e.run_seq))).toEqual(all.map((_, i) => i + 1));
    const tail = await watch(Number(all[2].seq));
    expect(tail.map((e) => e.run_seq)).toEqual(all.slice(3).map((e) => e.run_seq));
  });
});
