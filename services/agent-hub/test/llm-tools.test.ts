import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { StepErrorCode } from "@orch/contracts";
import { fakeOllama, fakeOpenAiChat, type FakeModelServer, type ScriptedTurn } from "@orch/testing";
import { SessionAbortedError } from "../src/executors/types.js";
import { LocalLlmExecutor } from "../src/llm/index.js";
import { hubConfig, sessionContext, tempRepo, testLogger } from "./llm-helpers.js";

/**
 * The model ↔ tool loop through the executor: real fake servers over HTTP, real child processes in
 * a real git repository, and a secret file next to (outside) the worktree that must never leak.
 */

const APIS = [
  { api: "ollama", fake: () => fakeOllama() },
  { api: "openai", fake: () => fakeOpenAiChat() },
] as const;

const SECRET = "TOP-SECRET-CONTENT-42";

describe.each(APIS)("tools over $api", ({ api, fake }) => {
  let server: FakeModelServer;
  let repo: ReturnType<typeof tempRepo>;
  let outside: string;

  beforeEach(async () => {
    server = await fake().start();
    repo = tempRepo();
    outside = join(dirname(repo.path), "secret.txt");
    writeFileSync(outside, SECRET);
    writeFileSync(join(repo.path, "README.md"), "# hello\nthe project readme\n");
    mkdirSync(join(repo.path, "src"));
    writeFileSync(join(repo.path, "src", "app.ts"), "export const app = 1;\n");
  });
  afterEach(async () => {
    await server.stop();
    repo.cleanup();
  });

  const run = async (turns: ScriptedTurn[], env: Record<string, string> = {}) => {
    server.script(...turns);
    const exec = new LocalLlmExecutor(
      hubConfig({
        LOCAL_LLM_API: api,
        LOCAL_LLM_URL: server.url,
        LOCAL_LLM_MODEL: "tool-model",
        ORCH_TOOL_ALLOWLIST: "ls,cat,grep,find,read_file,write_file",
        ...env,
      }),
      testLogger().logger,
    );
    const ctx = sessionContext(repo.path);
    const result = await exec.run(ctx);
    return { result, ctx };
  };

  /** The messages of the n-th model request, in the API's own shape. */
  const messages = (n: number) => (server.turnRequests[n]!.body as { messages: Array<Record<string, any>> }).messages;
  const everything = () => JSON.stringify(server.requests.map((r) => r.body));

  it("offers the allowlisted tools as functions, runs a call and sends its result back in the API's format", async () => {
    const { result, ctx } = await run([
      { text: "Let me look.", toolCalls: [{ id: "call_ls", name: "ls", arguments: { args: ["-a", "src"] } }], usage: { input: 100, output: 10 } },
      { text: "There is src/app.ts.", usage: { input: 150, output: 7 } },
    ]);
    expect(result).toMatchObject({ ok: true, summary: "There is src/app.ts.", usage: { tokensIn: 250, tokensOut: 17, costUsd: 0 } });

    const offered = (server.turnRequests[0]!.body as { tools: Array<{ type: string; function: { name: string; parameters: { required: string[] } } }> }).tools;
    expect(offered.map((t) => t.function.name)).toEqual(["ls", "cat", "grep", "find", "read_file", "write_file"]);
    expect(offered.every((t) => t.type === "function")).toBe(true);
    expect(offered[0]!.function.parameters.required).toEqual(["args"]);
    expect(messages(0)[0]!.content).toContain("You may call these tools: ls, cat, grep, find, read_file, write_file");

    expect(ctx.of("agent.tool_call")).toEqual([{ callId: "call_ls", name: "ls", args: { args: ["-a", "src"] } }]);
    const [res] = ctx.of("agent.tool_result");
    expect(res).toMatchObject({ callId: "call_ls", name: "ls", ok: true });
    expect(res!.output).toContain("app.ts");
    expect(ctx.of("agent.usage")).toHaveLength(2);

    const second = messages(1);
    const assistant = second[2]!;
    const tool = second[3]!;
    expect(assistant.role).toBe("assistant");
    if (api === "ollama") {
      expect(assistant.tool_calls).toEqual([{ function: { name: "ls", arguments: { args: ["-a", "src"] } } }]);
      expect(tool).toMatchObject({ role: "tool", tool_name: "ls" });
    } else {
      expect(assistant.tool_calls).toEqual([{ id: "call_ls", type: "function", function: { name: "ls", arguments: JSON.stringify({ args: ["-a", "src"] }) } }]);
      expect(tool).toMatchObject({ role: "tool", tool_call_id: "call_ls" });
    }
    expect(tool.content).toContain("app.ts");
  });

  it("refuses a command that is not on the allowlist: reported to the model and as refused, never run", async () => {
    const { result, ctx } = await run([{ toolCalls: [{ name: "rm", arguments: { args: ["-rf", "src"] } }] }, { text: "I could not delete it." }]);
    expect(result.ok).toBe(true);
    expect(existsSync(join(repo.path, "src", "app.ts"))).toBe(true);
    expect(ctx.of("agent.tool_result")[0]).toMatchObject({ name: "rm", ok: false, refused: true });
    expect(String(ctx.of("agent.tool_result")[0]!.error)).toContain("not an allowed tool");
    expect(messages(1).at(-1)!.content).toMatch(/^refused: rm is not an allowed tool/);
  });

  it("refuses every way out of the worktree: .., absolute paths, symlinks, options embedding paths", async () => {
    symlinkSync(outside, join(repo.path, "link.txt"));
    symlinkSync(dirname(outside), join(repo.path, "up"));
    const attempts = [
      { name: "cat", arguments: { args: ["../secret.txt"] } },
      { name: "cat", arguments: { args: [outside] } },
      { name: "cat", arguments: { args: ["link.txt"] } },
      { name: "cat", arguments: { args: ["up/secret.txt"] } },
      { name: "cat", arguments: { args: ["src/../../secret.txt"] } },
      { name: "grep", arguments: { args: ["--file=../secret.txt", "README.md"] } },
      { name: "grep", arguments: { args: ["-r", "SECRET", "--", ".."] } },
      { name: "read_file", arguments: { path: "../secret.txt" } },
      { name: "read_file", arguments: { path: "link.txt" } },
      { name: "write_file", arguments: { path: "up/planted.txt", content: "x" } },
      { name: "write_file", arguments: { path: "../planted.txt", content: "x" } },
      { name: "find", arguments: { args: [".", "-name", "*.ts", "-exec", "cat", outside, ";"] } },
      { name: "find", arguments: { args: [".", "-exec", "touch", "pwned", ";"] } },
    ];
    const { result, ctx } = await run([{ toolCalls: attempts }, { text: "Nothing to see." }]);
    expect(result.ok).toBe(true);
    const results = ctx.of("agent.tool_result");
    expect(results).toHaveLength(attempts.length);
    for (const r of results) expect(r).toMatchObject({ ok: false, refused: true });
    expect(existsSync(join(dirname(outside), "planted.txt"))).toBe(false);
    expect(existsSync(join(repo.path, "pwned"))).toBe(false);
    expect(everything()).not.toContain(SECRET);
    expect(JSON.stringify(ctx.events)).not.toContain(SECRET);
  });

  it("write_file creates a file (agent.file_edit add), then changes it (modify)", async () => {
    const { result, ctx } = await run([
      { toolCalls: [{ name: "write_file", arguments: { path: "src/greet/hello.ts", content: "export const hello = () => 'hi';\n" } }] },
      { toolCalls: [{ name: "write_file", arguments: { path: "src/greet/hello.ts", content: "export const hello = () => 'hello';\n" } }] },
      { text: "Wrote src/greet/hello.ts." },
    ]);
    expect(result.ok).toBe(true);
    expect(readFileSync(join(repo.path, "src", "greet", "hello.ts"), "utf8")).toBe("export const hello = () => 'hello';\n");
    expect(ctx.of("agent.file_edit")).toEqual([
      { path: "src/greet/hello.ts", change: "add" },
      { path: "src/greet/hello.ts", change: "modify" },
    ]);
  });

  it("write_file refuses .git (the worktree's link to its repository, hooks)", async () => {
    const { ctx } = await run([
      { toolCalls: [{ name: "write_file", arguments: { path: ".git/hooks/pre-commit", content: "#!/bin/sh\ntouch pwned\n" } }] },
      { text: "ok" },
    ]);
    expect(ctx.of("agent.tool_result")[0]).toMatchObject({ ok: false, refused: true });
    expect(existsSync(join(repo.path, ".git", "hooks", "pre-commit"))).toBe(false);
  });

  it("read_file and a failing command come back to the model as results (ok / not ok)", async () => {
    const { ctx } = await run([
      {
        toolCalls: [
          { name: "read_file", arguments: { path: "README.md" } },
          { name: "grep", arguments: { args: ["no-such-text", "README.md"] } },
        ],
      },
      { text: "done" },
    ]);
    const [read, grep] = ctx.of("agent.tool_result");
    expect(read).toMatchObject({ ok: true, output: "# hello\nthe project readme\n" });
    expect(grep).toMatchObject({ ok: false, error: "exited with code 1" });
    expect(grep!.refused).toBeUndefined();
  });

  it("fails clearly past ORCH_TOOL_MAX_ITERATIONS rounds", async () => {
    const call = { toolCalls: [{ name: "ls", arguments: { args: [] } }], usage: { input: 10, output: 2 } };
    const { result } = await run([call, call, call, { text: "never asked for" }], { ORCH_TOOL_MAX_ITERATIONS: "2" });
    expect(result.ok).toBe(false);
    expect(result.error).toMatchObject({ code: StepErrorCode.AgentFailed, retryable: false });
    expect(result.error!.message).toContain("ORCH_TOOL_MAX_ITERATIONS=2");
    expect(server.turnRequests).toHaveLength(3);
    expect(result.usage).toEqual({ tokensIn: 30, tokensOut: 6, costUsd: 0 });
  });

  it("with no allowlist, offers no tools and refuses a call the model makes anyway", async () => {
    // A request without tools is a side request to the default OpenAI fake; here it is the step's turn.
    const bare = await (api === "openai" ? fakeOpenAiChat({ sideRequests: false }) : fakeOllama()).start();
    try {
      bare.script({ toolCalls: [{ name: "cat", arguments: { args: ["README.md"] } }] }, { text: "ok" });
      const exec = new LocalLlmExecutor(hubConfig({ LOCAL_LLM_API: api, LOCAL_LLM_URL: bare.url }), testLogger().logger);
      const ctx = sessionContext(repo.path);
      const r = await exec.run(ctx);
      expect(r.ok).toBe(true);
      expect((bare.turnRequests[0]!.body as { tools?: unknown }).tools).toBeUndefined();
      expect(ctx.of("agent.tool_result")[0]).toMatchObject({ ok: false, refused: true });
      expect(JSON.stringify(bare.turnRequests[1]!.body)).not.toContain("the project readme");
    } finally {
      await bare.stop();
    }
  });

  it("aborting the session kills a running tool and throws SessionAbortedError", async () => {
    server.script({ toolCalls: [{ name: "sleep", arguments: { args: ["30"] } }] }, { text: "never asked" });
    const exec = new LocalLlmExecutor(
      hubConfig({ LOCAL_LLM_API: api, LOCAL_LLM_URL: server.url, ORCH_TOOL_ALLOWLIST: "sleep", ORCH_TOOL_TIMEOUT_MS: "60000" }),
      testLogger().logger,
    );
    const ctx = sessionContext(repo.path, { onEmit: (e) => e.type === "agent.tool_call" && setTimeout(() => ctx.controller.abort(), 100) });
    const started = Date.now();
    await expect(exec.run(ctx)).rejects.toBeInstanceOf(SessionAbortedError);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(server.turnRequests).toHaveLength(1);
  });

  it("runs tools in ORCH_TOOL_CWD and lets them reach ORCH_TOOL_ALLOWED_ROOTS", async () => {
    const shared = join(dirname(repo.path), "shared");
    mkdirSync(shared);
    writeFileSync(join(shared, "notes.txt"), "shared notes\n");
    const { ctx } = await run(
      [
        {
          toolCalls: [
            { name: "cat", arguments: { args: ["app.ts", join(shared, "notes.txt")] } },
            { name: "cat", arguments: { args: ["../../secret.txt"] } },
          ],
        },
        { text: "ok" },
      ],
      { ORCH_TOOL_CWD: join(repo.path, "src"), ORCH_TOOL_ALLOWED_ROOTS: `${repo.path},${shared}` },
    );
    const [both, escape] = ctx.of("agent.tool_result");
    expect(both).toMatchObject({ ok: true, output: "export const app = 1;\nshared notes\n" });
    expect(escape).toMatchObject({ ok: false, refused: true });
  });
});
