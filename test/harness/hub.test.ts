import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { status } from "@grpc/grpc-js";
import { jsonToStruct, type OrchestratorServiceClient } from "@orch/proto";
import { fakeResponses, Stack, waitFor, type FakeModelServer, grpcClient, type GrpcTestClient } from "@orch/testing";
import { ensureHarness } from "../../scripts/lib/harnesses.mjs";

/**
 * A real coding-agent CLI through the whole system: the core dispatches an implementer's step, the
 * agent hub routes it to Codex (the real binary) in a worktree of the project, the CLI edits a file
 * on a fake Responses API's instructions, the hub commits and integrates it; and a session stuck on
 * a slow model is cancelled over gRPC, the CLI's whole process group with it.
 */

const KEY = { name: "ORCH_TEST_HUB_CODEX_KEY", value: "sk-hub-codex-4d2e71aa" };
const PATCH = ["apply_patch <<'EOF'", "*** Begin Patch", "*** Add File: notes/hello.txt", "+hello through the hub", "*** End Patch", "EOF", ""].join("\n");

let stack: Stack;
let grpc: GrpcTestClient;
let client: OrchestratorServiceClient;
let server: FakeModelServer;
const repo = mkdtempSync(join(tmpdir(), "orch-hub-harness-"));
const git = (...args: string[]) => execFileSync("git", ["-c", "user.name=T", "-c", "user.email=t@localhost", ...args], { cwd: repo, encoding: "utf8" }).trim();

beforeAll(async () => {
  const bin = ensureHarness("codex").bin;
  server = await fakeResponses().start();
  git("init", "-q", "-b", "main");
  writeFileSync(join(repo, "README.md"), "# project\n");
  git("add", "-A");
  git("commit", "-q", "-m", "initial");
  stack = await Stack.start({
    serviceEnv: {
      "agent-hub": {
        ORCH_AGENT_EXECUTOR_IMPLEMENTER: "codex",
        ORCH_CODEX_BINARY: bin,
        ORCH_CODEX_BASE_URL: `${server.url}/v1`,
        ORCH_CODEX_MODEL: "fake-codex-model",
        ORCH_CODEX_API_KEY_ENV: KEY.name,
        [KEY.name]: KEY.value,
        ORCH_HARNESS_STARTUP_TIMEOUT_MS: "30000",
        ORCH_SESSION_KILL_GRACE_MS: "2000",
      },
    },
  });
  grpc = grpcClient(stack.grpcPort);
  client = grpc.client;
  await call("PutProject", { id: "proj", local_path: repo, base_branch: "main" });
});

afterAll(async () => {
  client?.close();
  await stack?.stop();
  await server?.stop();
});

const call = <Res = any>(method: string, req: unknown): Promise<Res> => grpc.call<Res>(method, req);

const sessionEvents = (sessionId: string): Promise<any[]> => grpc.watchSessions({ session_id: sessionId });

/** Processes whose working directory is inside `dir`. */
function processesIn(dir: string): number[] {
  const out: number[] = [];
  for (const p of readdirSync("/proc").filter((x) => /^\d+$/.test(x))) {
    try {
      if (readlinkSync(`/proc/${p}/cwd`).startsWith(dir)) out.push(Number(p));
    } catch {
      /* gone, or not ours to read */
    }
  }
  return out;
}

const until = (runId: string, pred: (run: any) => boolean, what: string) =>
  waitFor(
    async () => {
      const r = await call("GetRun", { run_id: runId });
      return pred(r) ? r : undefined;
    },
    { timeoutMs: 90_000, what },
  );

describe("a coding-agent CLI through the agent hub", () => {
  it("runs an implementer's step in Codex: the file it writes is committed on the run's branch, its events and tokens recorded", async () => {
    server.script(
      { toolCalls: [{ name: "exec_command", arguments: { cmd: PATCH } }], usage: { input: 100, output: 20 } },
      { text: "Wrote notes/hello.txt.", usage: { input: 130, output: 8 } },
    );
    const { run_id: id } = await call("CreateRun", {
      project_id: "proj",
      definition: { id: "task" },
      steps: [jsonToStruct({ id: "impl", role: "implementer", title: "Add a note" })],
    });
    const run = await until(id, (r) => r.status === "completed" || r.status === "failed", "the task to finish");
    expect(run.status).toBe("completed");
    const step = run.steps.find((s: any) => s.id === "impl");
    expect(step.usage).toMatchObject({ tokens_in: "230", tokens_out: "28" });
    expect(git("show", `orch/run/${id}:notes/hello.txt`)).toBe("hello through the hub");
    const [session] = (await call("ListSessions", { run_id: id })).sessions;
    expect(session).toMatchObject({ executor: "codex", model: "fake-codex-model", status: "completed", commit: expect.stringMatching(/^[0-9a-f]{40}$/) });
    const events = await sessionEvents(session.session_id);
    const types = events.map((e) => e.type);
    expect(types).toEqual(
      expect.arrayContaining(["session.running", "agent.tool_call", "agent.file_edit", "agent.message", "agent.usage", "agent.commit", "session.completed"]),
    );
    expect(JSON.stringify(events)).not.toContain(KEY.value);
  });

  it("cancels a session whose CLI waits on a slow model: the CLI's whole process group is gone", async () => {
    server.script({ delayMs: 60_000, text: "too late" });
    const { run_id: id } = await call("CreateRun", {
      project_id: "proj",
      definition: { id: "task" },
      steps: [jsonToStruct({ id: "slow", role: "implementer", title: "Think slowly" })],
    });
    const session = await waitFor(
      async () => (await call("ListSessions", { run_id: id })).sessions.find((s: any) => s.status === "running" && s.worktree_path),
      { timeoutMs: 30_000, what: "a running session" },
    );
    // The CLI is running in the session's worktree.
    await waitFor(() => processesIn(session.worktree_path).length > 0, { timeoutMs: 30_000, what: "the CLI to start" });
    const cancelled = await call("CancelSession", { session_id: session.session_id, actor: "test", reason: "taking too long" });
    expect(cancelled).toMatchObject({ status: "cancelled", error_code: "SESSION_CANCELLED" });
    expect(processesIn(session.worktree_path)).toEqual([]);
    const run = await until(id, (r) => r.status === "failed", "the run to fail");
    expect(run.steps[0]).toMatchObject({ error_code: "SESSION_CANCELLED" });
  });
});
