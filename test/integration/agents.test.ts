import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { status } from "@grpc/grpc-js";
import { jsonToStruct, valueToJson, type OrchestratorServiceClient } from "@orch/proto";
import { Stack, waitFor, grpcClient, type GrpcTestClient } from "@orch/testing";

/**
 * Agents for real: role steps run in worker sessions of the agent hub, each in a git worktree of
 * its own, with the offline stub executor doing real work (files, `node --test`, commits on the
 * run's branch). Driven by an external gRPC client; repositories inspected with git.
 */

let stack: Stack;
let grpc: GrpcTestClient;
let client: OrchestratorServiceClient;
const repo = mkdtempSync(join(tmpdir(), "orch-repo-"));

const git = (cwd: string, ...args: string[]) =>
  execFileSync("git", ["-c", "user.name=Test", "-c", "user.email=test@localhost", ...args], { cwd, encoding: "utf8" }).trim();

beforeAll(async () => {
  git(repo, "init", "-q", "-b", "main");
  writeFileSync(join(repo, "README.md"), "# a project\n");
  git(repo, "add", "-A");
  git(repo, "commit", "-q", "-m", "initial");
  stack = await Stack.start({
    serviceEnv: {
      // Short heartbeats and timeouts to show them; two stub sessions at a time to show the limit.
      "agent-hub": {
        ORCH_SESSION_HEARTBEAT_MS: "300",
        ORCH_SESSION_TIMEOUT_MS: "2000",
        ORCH_SESSION_KILL_GRACE_MS: "500",
        ORCH_EXECUTOR_CONCURRENCY: "stub=2",
      },
    },
  });
  grpc = grpcClient(stack.grpcPort);
  client = grpc.client;
  await call("PutProject", { id: "acme", name: "Acme", local_path: repo, base_branch: "main" });
});

afterAll(async () => {
  client?.close();
  await stack?.stop();
});

const call = <Res = any>(method: string, req: unknown): Promise<Res> => grpc.call<Res>(method, req);

const watch = (req: { session_id?: string; run_id?: string }, until: (e: any) => boolean): Promise<any[]> => grpc.watchSessions(req, until);

const signal = (runId: string, s: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
  call("SignalRun", { run_id: runId, signal: jsonToStruct(s), ...extra });
const getRun = (runId: string) => call("GetRun", { run_id: runId });
const stepOf = (run: any, id: string) => run.steps.find((s: any) => s.id === id);
const until = (runId: string, pred: (run: any) => boolean, what: string, timeoutMs = 30_000) =>
  waitFor(
    async () => {
      const r = await getRun(runId);
      return pred(r) ? r : undefined;
    },
    { timeoutMs, what },
  );

describe("worker sessions with the stub executor", () => {
  it("runs a SpecKit specify workflow on the feature's branch: a commit per phase, sessions and their events recorded", async () => {
    const feature = "001-add-user-authentication";
    const { run_id: id } = await call("CreateRun", {
      project_id: "acme",
      definition: { id: "speckit.specify" },
      title: "Add user authentication with OAuth2",
      input: jsonToStruct({ feature_description: "Add user authentication with OAuth2", feature_id: feature }),
    });
    let run = await until(id, (r) => stepOf(r, "phase_1").status === "waiting_approval", "phase 1 to await approval");
    const out1 = valueToJson(stepOf(run, "phase_1").output) as any;
    expect(out1).toMatchObject({
      artifact: `specs/${feature}/spec.md`,
      files: [`specs/${feature}/spec.md`],
      session: { branch: expect.stringMatching(/^orch\/session\//), runBranch: feature, commit: expect.stringMatching(/^[0-9a-f]{40}$/) },
    });
    // The spec is on the feature's branch, in the project's own repository.
    expect(git(repo, "show", `${feature}:specs/${feature}/spec.md`)).toContain("Add user authentication with OAuth2");
    expect(git(repo, "rev-parse", feature)).toBe(out1.session.commit);

    await signal(id, { name: "approve", stepId: "phase_1", revision: stepOf(run, "phase_1").revision }, { actor: "alice" });
    run = await until(id, (r) => stepOf(r, "phase_2").status === "waiting_approval", "phase 2 to await approval");
    await signal(id, { name: "approve", stepId: "phase_2", revision: stepOf(run, "phase_2").revision }, { actor: "alice" });
    run = await until(id, (r) => r.status === "completed", "the workflow to complete");

    // Two commits on the feature branch on top of main: the architect's draft, the reviewer's pass.
    const log = git(repo, "log", "--format=%s", `main..${feature}`).split("\n");
    expect(log).toHaveLength(2);
    expect(log[0]).toMatch(/^reviewer: spec\.md/);
    expect(log[1]).toMatch(/^architect: spec\.md/);
    expect(git(repo, "show", `${feature}:specs/${feature}/spec.md`)).toContain("## Builds on");
    // The user's checkout is untouched.
    expect(git(repo, "rev-parse", "--abbrev-ref", "HEAD")).toBe("main");
    expect(existsSync(join(repo, "specs"))).toBe(false);

    const { sessions } = await call("ListSessions", { run_id: id });
    expect(sessions.map((s: any) => [s.step_id, s.role, s.executor, s.status])).toEqual([
      ["phase_1", "architect", "stub", "completed"],
      ["phase_2", "reviewer", "stub", "completed"],
    ]);
    for (const s of sessions) {
      expect(s.commit).toMatch(/^[0-9a-f]{40}$/);
      expect(s.run_branch).toBe(feature);
      // Cleaned up: the worktree removed, the merged session branch deleted.
      expect(existsSync(s.worktree_path)).toBe(false);
      expect(() => git(repo, "rev-parse", "--verify", "--quiet", s.branch)).toThrow();
    }
    const got = await call("GetSession", { session_id: sessions[0].session_id });
    expect(got).toMatchObject({ session_id: sessions[0].session_id, status: "completed", kind: "execute", hub: expect.any(String) });

    const events = await watch({ session_id: sessions[0].session_id }, () => false);
    expect(events.map((e) => e.type)).toEqual([
      "session.starting",
      "session.running",
      "agent.file_edit",
      "agent.message",
      "agent.commit",
      "agent.usage",
      "session.completed",
    ]);
    expect(events.map((e) => Number(e.session_seq))).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(events.find((e) => e.type === "agent.commit").data).toMatchObject({
      sha: sessions[0].commit,
      files: [{ path: `specs/${feature}/spec.md`, change: "add" }],
    });
  });

  it("runs a ticket pipeline: plan, a code change with a test, a real test run, a pull request description", async () => {
    const { run_id: id } = await call("CreateRun", {
      project_id: "acme",
      // Version 1: the agent writes the pull request's description on the branch (version 2 opens a real PR).
      definition: { id: "ticket", version: 1 },
      title: "ENG-7",
      input: jsonToStruct({ key: "ENG-7", title: "Greet users by name", branch: "eng-7-greet" }),
    });
    await signal(id, { name: "event", event: "TicketAccepted" });
    const run = await until(id, (r) => r.stage === "AwaitingYourReview", "the pipeline to await review");
    expect(valueToJson(stepOf(run, "test").output)).toMatchObject({ tests: { passed: true, files: ["test/eng-7.test.mjs"] } });
    const files = git(repo, "ls-tree", "-r", "--name-only", "eng-7-greet").split("\n");
    expect(files).toEqual(
      expect.arrayContaining([
        "README.md",
        "plans/eng-7.md",
        "src/eng-7.mjs",
        "test/eng-7.test.mjs",
        ".orchestrator/test-reports/eng-7.md",
        ".orchestrator/pull-requests/eng-7.md",
      ]),
    );
    expect(git(repo, "show", "eng-7-greet:.orchestrator/test-reports/eng-7.md")).toMatch(/`node --test` passed/);
    // The code the implementer wrote passes its own test, in a clean checkout of the branch.
    const check = mkdtempSync(join(tmpdir(), "orch-check-"));
    git(repo, "worktree", "add", "-q", check, "eng-7-greet");
    expect(() => execFileSync(process.execPath, ["--test", "test/eng-7.test.mjs"], { cwd: check, stdio: "pipe" })).not.toThrow();
    git(repo, "worktree", "remove", "--force", check);
    expect(git(repo, "log", "--format=%s", "main..eng-7-greet").split("\n")).toHaveLength(4);
  });

  it("gives a project without a repository a scratch one in the workspace", async () => {
    const { run_id: id } = await call("CreateRun", {
      definition: { id: "task" },
      steps: [jsonToStruct({ id: "design", role: "architect", title: "Design the cache" })],
    });
    await until(id, (r) => r.status === "completed", "the task to complete");
    const scratch = join(stack.workspace, "repos", "_default");
    expect(git(scratch, "show", `orch/run/${id}:docs/design/design-the-cache.md`)).toContain("Design the cache");
  });
});

describe("concurrency", () => {
  it("runs at most the executor's limit of sessions at once; the rest wait, created, and then run", async () => {
    const ids = await Promise.all(
      Array.from(
        { length: 4 },
        async (_, i) =>
          (
            await call("CreateRun", {
              project_id: "acme",
              definition: { id: "task" },
              steps: [jsonToStruct({ id: `w${i}`, role: "implementer", payload: { mock: { delayMs: 700 } } })],
            })
          ).run_id as string,
      ),
    );
    // While two run, the other two wait in `created`.
    const waiting = await waitFor(
      async () => {
        const all = (await Promise.all(ids.map(async (id) => (await call("ListSessions", { run_id: id })).sessions))).flat();
        const running = all.filter((s: any) => s.status === "running").length;
        const created = all.filter((s: any) => s.status === "created").length;
        return running === 2 && created === 2 ? all : undefined;
      },
      { what: "two running, two waiting" },
    );
    expect(waiting).toHaveLength(4);
    for (const id of ids) await until(id, (r) => r.status === "completed", "every task to complete");
    const sessions = (await Promise.all(ids.map(async (id) => (await call("ListSessions", { run_id: id })).sessions[0]))).map(
      (s: any) => [Date.parse(s.started_at), Date.parse(s.finished_at)] as const,
    );
    // Never more than two at the same moment.
    for (const [start] of sessions) expect(sessions.filter(([a, b]) => a <= start && start < b).length).toBeLessThanOrEqual(2);
  });
});

describe("stopping sessions", () => {
  it("cancels a running session by id: its step fails with SESSION_CANCELLED", async () => {
    const { run_id: id } = await call("CreateRun", {
      project_id: "acme",
      definition: { id: "task" },
      steps: [jsonToStruct({ id: "slow", role: "implementer", payload: { mock: { delayMs: 60_000 } } })],
    });
    const session = await waitFor(async () => (await call("ListSessions", { run_id: id })).sessions.find((s: any) => s.status === "running"), {
      what: "a running session",
    });
    await expect(call("CancelSession", { session_id: "nope" })).rejects.toMatchObject({ code: status.NOT_FOUND });
    const t0 = Date.now();
    const cancelled = await call("CancelSession", { session_id: session.session_id, actor: "alice", reason: "wrong approach" });
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(cancelled).toMatchObject({ status: "cancelled", error_code: "SESSION_CANCELLED", error_message: expect.stringContaining("wrong approach") });
    const run = await until(id, (r) => r.status === "failed", "the run to fail");
    expect(stepOf(run, "slow")).toMatchObject({ error_code: "SESSION_CANCELLED", error: "session cancelled: wrong approach" });
    await expect(call("CancelSession", { session_id: session.session_id })).rejects.toMatchObject({ code: status.FAILED_PRECONDITION });
  });

  it("stops a run's session when the run is cancelled", async () => {
    const { run_id: id } = await call("CreateRun", {
      project_id: "acme",
      definition: { id: "task" },
      steps: [jsonToStruct({ id: "slow", role: "tester", payload: { mock: { delayMs: 60_000 } } })],
    });
    await waitFor(async () => (await call("ListSessions", { run_id: id })).sessions.find((s: any) => s.status === "running"), { what: "a running session" });
    await signal(id, { name: "cancel" }, { actor: "bob" });
    const s = await waitFor(async () => (await call("ListSessions", { run_id: id })).sessions.find((x: any) => x.status === "cancelled"), {
      timeoutMs: 5_000,
      what: "the session to be cancelled",
    });
    expect(s.error_message).toContain("run");
  });

  it("times out a session with no heartbeat past its deadline and retries its step", async () => {
    // A mock delay is a silent agent: no heartbeat. The hub here times sessions out after 2 s.
    const { run_id: id } = await call("CreateRun", {
      project_id: "acme",
      definition: { id: "task" },
      steps: [
        jsonToStruct({ id: "hung", role: "implementer", retry: { maxAttempts: 2, initialMs: 100, jitterMs: 0 }, payload: { mock: { delayMs: 60_000 } } }),
      ],
    });
    const run = await until(id, (r) => r.status === "failed", "both attempts to time out", 30_000);
    expect(stepOf(run, "hung")).toMatchObject({ attempt: 2, error_code: "SESSION_TIMED_OUT" });
    const { sessions } = await call("ListSessions", { run_id: id });
    expect(sessions.map((s: any) => [s.attempt, s.status, s.error_code])).toEqual([
      [1, "timed_out", "SESSION_TIMED_OUT"],
      [2, "timed_out", "SESSION_TIMED_OUT"],
    ]);
  });

  it("after SIGKILL of the agent hub, fails the session it left as lost and retries the step", async () => {
    const { run_id: id } = await call("CreateRun", {
      project_id: "acme",
      definition: { id: "task" },
      steps: [jsonToStruct({ id: "work", role: "implementer", retry: { maxAttempts: 3, initialMs: 100, jitterMs: 0 }, payload: { mock: { delayMs: 1_500 } } })],
    });
    await waitFor(async () => (await call("ListSessions", { run_id: id })).sessions.find((s: any) => s.status === "running"), { what: "a running session" });
    const hub = stack.service("agent-hub");
    await hub.kill("SIGKILL");
    await hub.start();
    const run = await until(id, (r) => r.status === "completed", "the retried step to complete", 30_000);
    expect(stepOf(run, "work").attempt).toBe(2);
    const { sessions } = await call("ListSessions", { run_id: id });
    expect(sessions.map((s: any) => [s.attempt, s.status, s.error_code])).toEqual([
      [1, "failed", "SESSION_LOST"],
      [2, "completed", ""],
    ]);
    // The hub's lines about the lost session (and every other) name it once.
    const lost = hub.lines.filter((l) => String(l.msg).startsWith("session lost"));
    expect(lost).toEqual([expect.objectContaining({ runId: id, sessionId: sessions[0].session_id })]);
    expect(hub.raw.filter((l) => (l.match(/"sessionId":/g) ?? []).length > 1)).toEqual([]);
  });
});
