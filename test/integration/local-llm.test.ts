import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { status } from "@grpc/grpc-js";
import { jsonToStruct, valueToJson, type OrchestratorServiceClient } from "@orch/proto";
import { fakeOllama, fakeOpenAiChat, http, Stack, waitFor, type FakeModelServer, grpcClient, type GrpcTestClient } from "@orch/testing";

/**
 * The local LLM executor through the real services: the agent hub calls a model server (a local
 * fake speaking the OpenAI-compatible and the Ollama wire formats, scripted), runs the tools the
 * model asks for in the session's worktree, streams what it says as session events, and the core
 * books the tokens. Readiness includes the model server with ORCH_CHECK_LLM.
 */

let stack: Stack;
let grpc: GrpcTestClient;
let client: OrchestratorServiceClient;
let openai: FakeModelServer;
let ollama: FakeModelServer;

beforeAll(async () => {
  openai = await fakeOpenAiChat().start();
  ollama = await fakeOllama().start();
  stack = await Stack.start({
    env: { ORCH_CHECK_LLM: "true" },
    serviceEnv: {
      "agent-hub": {
        ORCH_AGENT_EXECUTOR: "local",
        ORCH_AGENT_EXECUTOR_REVIEWER: "stub",
        LOCAL_LLM_API: "openai",
        LOCAL_LLM_URL: openai.url,
        LOCAL_LLM_MODEL: "qwen2.5-coder:7b",
        LOCAL_LLM_MODEL_TESTER: "tester-model",
        LOCAL_LLM_API_KEY: "sk-local-test-secret-123",
        ORCH_TOOL_ALLOWLIST: "ls,write_file,read_file",
        LOCAL_LLM_ERROR_MODE: "throw",
      },
    },
  });
  grpc = grpcClient(stack.grpcPort);
  client = grpc.client;
});

afterAll(async () => {
  client?.close();
  await stack?.stop();
  await openai?.stop();
  await ollama?.stop();
});

const call = <Res = any>(method: string, req: unknown): Promise<Res> => grpc.call<Res>(method, req);

const events = (sessionId: string): Promise<any[]> => grpc.watchSessions({ session_id: sessionId });

const until = (runId: string, pred: (run: any) => boolean, what: string) =>
  waitFor(
    async () => {
      const r = await call("GetRun", { run_id: runId });
      return pred(r) ? r : undefined;
    },
    { timeoutMs: 30_000, what },
  );

describe("the local LLM executor", () => {
  it("runs a model with tools in the session's worktree: the file it writes is committed, its words stream as events, its tokens are booked", async () => {
    openai.script(
      {
        toolCalls: [{ name: "write_file", arguments: { path: "src/hello.mjs", content: "export const hello = () => 'hello';\n" } }],
        usage: { input: 120, output: 30 },
      },
      { toolCalls: [{ name: "ls", arguments: { args: ["src"] } }], usage: { input: 150, output: 10 } },
      { text: "I added src/hello.mjs with a hello function.", usage: { input: 180, output: 20 } },
    );
    const { run_id: id } = await call("CreateRun", {
      definition: { id: "task" },
      steps: [jsonToStruct({ id: "code", role: "implementer", title: "Add a hello function" })],
    });
    const run = await until(id, (r) => r.status === "completed", "the task to complete");
    const step = run.steps.find((s: any) => s.id === "code");
    expect(step.usage).toMatchObject({ tokens_in: "450", tokens_out: "60" });
    expect(valueToJson(step.output)).toMatchObject({ text: "I added src/hello.mjs with a hello function." });
    expect(run.usage_by_model["qwen2.5-coder:7b"]).toMatchObject({ tokens_in: "450", tokens_out: "60" });

    // What the model was sent: its role's brief, the task, the tools; the key as a bearer token.
    const first = openai.turnRequests[0]!;
    expect(first.headers.authorization).toBe("Bearer sk-local-test-secret-123");
    const body = first.body as any;
    expect(body.model).toBe("qwen2.5-coder:7b");
    expect(body.messages[0].content).toContain("implementer");
    expect(body.messages[1].content).toContain("Add a hello function");
    expect(body.tools.map((t: any) => t.function.name).sort()).toEqual(["ls", "read_file", "write_file"]);
    // The `ls` ran for real, in the worktree, and the model saw its output.
    const third = openai.turnRequests[2]!.body as any;
    expect(JSON.stringify(third.messages)).toContain("hello.mjs");

    const { sessions } = await call("ListSessions", { run_id: id });
    expect(sessions).toHaveLength(1);
    expect(sessions[0]).toMatchObject({ executor: "local", model: "qwen2.5-coder:7b", status: "completed", usage: { tokens_in: "450", tokens_out: "60" } });
    const scratch = `${stack.workspace}/repos/_default`;
    expect(execFileSync("git", ["show", `orch/run/${id}:src/hello.mjs`], { cwd: scratch, encoding: "utf8" })).toContain("hello");

    const evs = await events(sessions[0].session_id);
    const types = evs.map((e) => e.type);
    expect(types).toEqual(
      expect.arrayContaining([
        "session.starting",
        "session.running",
        "agent.tool_call",
        "agent.tool_result",
        "agent.file_edit",
        "agent.delta",
        "agent.message",
        "agent.usage",
        "agent.commit",
        "session.completed",
      ]),
    );
    expect(
      evs
        .filter((e) => e.type === "agent.delta")
        .map((e) => e.data.text)
        .join(""),
    ).toContain("I added src/hello.mjs");
    // The key never reaches an event.
    expect(JSON.stringify(evs)).not.toContain("sk-local-test-secret-123");
  });

  it("routes per role with per-role models, and retries a model server's 500 in throw mode", async () => {
    openai.script({ status: 500, errorBody: { error: { message: "model overloaded" } } }, { text: "tests written", usage: { input: 5, output: 5 } });
    const { run_id: id } = await call("CreateRun", {
      definition: { id: "task" },
      steps: [
        jsonToStruct({ id: "t", role: "tester", retry: { maxAttempts: 2, initialMs: 100, jitterMs: 0 } }),
        jsonToStruct({ id: "r", role: "reviewer", needs: ["t"] }),
      ],
    });
    const run = await until(id, (r) => r.status === "completed", "the task to complete");
    expect(run.steps.find((s: any) => s.id === "t")).toMatchObject({ attempt: 2 });
    const { sessions } = await call("ListSessions", { run_id: id });
    expect(sessions.map((s: any) => [s.step_id, s.executor, s.model, s.status, s.error_code])).toEqual([
      ["t", "local", "tester-model", "failed", "LLM_ERROR"],
      ["t", "local", "tester-model", "completed", ""],
      ["r", "stub", "", "completed", ""],
    ]);
  });

  it("is ready only while the model server answers", async () => {
    const ok = await http("GET", `${stack.baseUrl}/ready`);
    expect(ok.status).toBe(200);
    expect(ok.json()).toMatchObject({ checks: { llm: "ok" } });
    await openai.stop();
    const down = await waitFor(
      async () => {
        const r = await http("GET", `${stack.baseUrl}/ready`);
        return r.status === 503 ? r : undefined;
      },
      { timeoutMs: 15_000, what: "readiness to fail" },
    );
    expect(down.json()).toMatchObject({ status: "degraded", checks: { llm: expect.stringContaining("failing: local") } });
  });
});

describe("the local LLM executor on the Ollama API", () => {
  it("runs a step against the native Ollama API", async () => {
    const hub = await stack.spawn("agent-hub", {
      ORCH_INSTANCE_ID: "ollama-hub",
      ORCH_AGENT_EXECUTOR: "local",
      LOCAL_LLM_API: "ollama",
      LOCAL_LLM_URL: ollama.url,
      LOCAL_LLM_MODEL: "llama3.1:8b",
    });
    // The first hub's model server is gone: stop it so the Ollama hub takes the work.
    await stack.service("agent-hub").stop();
    ollama.script({ text: "Design written.", usage: { input: 11, output: 7 } });
    const { run_id: id } = await call("CreateRun", { definition: { id: "task" }, steps: [jsonToStruct({ id: "d", role: "architect" })] });
    const run = await until(id, (r) => r.status === "completed", "the task to complete");
    expect(run.steps[0].usage).toMatchObject({ tokens_in: "11", tokens_out: "7" });
    expect(ollama.turnRequests[0]!.path).toBe("/api/chat");
    expect((ollama.turnRequests[0]!.body as any).model).toBe("llama3.1:8b");
    await hub.stop();
  });
});
