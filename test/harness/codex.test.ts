import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fakeResponses, type FakeModelServer } from "@orch/testing";
import { ensureHarness } from "../../scripts/lib/harnesses.mjs";
import { expectAbortStopsRun, expectModelFailure, expectScenario, runScenario, type ScenarioRun } from "./scenario.js";

/**
 * Codex CLI, the real binary, against a fake Responses API on 127.0.0.1. Its shell tool is
 * `exec_command {cmd}`; a command that runs `apply_patch` is intercepted by Codex and applied as a
 * patch (a `file_change` item), which is how its models edit files.
 */

const KEY = { name: "ORCH_TEST_CODEX_KEY", value: "sk-codex-test-8f3a9c1d" };
const PATCH = ["apply_patch <<'EOF'", "*** Begin Patch", "*** Add File: hello.txt", "+hello from codex", "*** End Patch", "EOF", ""].join("\n");

describe("codex harness (real CLI)", () => {
  let server: FakeModelServer;
  let bin: string;
  let run: ScenarioRun;
  const env = () => ({
    ORCH_CODEX_BINARY: bin,
    ORCH_CODEX_BASE_URL: `${server.url}/v1`,
    ORCH_CODEX_MODEL: "fake-codex-model",
    ORCH_CODEX_API_KEY_ENV: KEY.name,
  });

  beforeAll(async () => {
    bin = ensureHarness("codex").bin;
    server = await fakeResponses().start();
    run = await runScenario({
      name: "codex",
      server,
      env: env(),
      key: KEY,
      turns: () => [
        { toolCalls: [{ name: "exec_command", arguments: { cmd: PATCH } }], usage: { input: 120, output: 30 } },
        { toolCalls: [{ name: "exec_command", arguments: { cmd: "env" } }], usage: { input: 140, output: 10 } },
        { text: "Created hello.txt.", usage: { input: 160, output: 12 } },
      ],
    });
  });
  afterAll(async () => {
    run?.repo.dispose();
    await server?.stop();
  });

  it("edits the worktree through a patch, and reports events and usage", () => {
    expectScenario(run, {
      file: "hello.txt",
      content: "hello from codex\n",
      finalText: "Created hello.txt.",
      usage: { tokensIn: 420, tokensOut: 52 },
      keyValue: KEY.value,
    });
    const calls = run.c.of("agent.tool_call");
    expect(calls.map((c) => c.name)).toEqual(["apply_patch", "shell"]);
    expect(run.result.model).toBe("fake-codex-model");
  });

  it("sent the model requests to the configured server, with the key from the named variable", () => {
    const turns = server.turnRequests;
    expect(turns).toHaveLength(3);
    // The step's prompt (prompts.ts) arrived whole: the role's brief and the task.
    expect(JSON.stringify(turns[0]!.body)).toContain("You are the implementer");
    expect(JSON.stringify(turns[0]!.body)).toContain("# Add hello.txt");
    expect(turns[0]!.path).toBe("/v1/responses");
    expect(turns[0]!.headers.authorization).toBe(`Bearer ${KEY.value}`);
    expect((turns[0]!.body as { model: string }).model).toBe("fake-codex-model");
    const tools = ((turns[0]!.body as { tools: Array<{ name?: string; type: string }> }).tools ?? []).map((t) => t.name ?? t.type);
    expect(tools).toContain("exec_command");
    expect(tools).not.toContain("web_search");
  });

  it("fails retryably, saying why, when the model server refuses the request", async () => {
    await expectModelFailure({ name: "codex", server, env: env(), key: KEY });
  });

  it("answers the readiness check with its version", async () => {
    const r = await run.executor.check();
    expect(r.ok).toBe(true);
    expect(r.detail).toContain("0.169.0");
  });

  it("is stopped, process group and all, when the session is aborted", async () => {
    await expectAbortStopsRun({ name: "codex", server, env: env(), key: KEY });
  });
});
