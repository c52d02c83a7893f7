import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fakeAnthropic, type FakeModelServer } from "@orch/testing";
import { ensureHarness } from "../../scripts/lib/harnesses.mjs";
import { expectAbortStopsRun, expectModelFailure, expectScenario, runScenario, type ScenarioRun } from "./scenario.js";

/**
 * Claude Code, the real binary (a native build: it runs under any Node, or none), against a fake
 * Anthropic Messages API on 127.0.0.1. Its Write tool takes an absolute path; the key is kept under
 * a name of our own and handed to Claude Code as ANTHROPIC_API_KEY.
 */

const KEY = { name: "ORCH_TEST_CLAUDE_KEY", value: "sk-ant-test-4c2e7b9a" };

describe("claude harness (real CLI)", () => {
  let server: FakeModelServer;
  let bin: string;
  let run: ScenarioRun;
  const env = () => ({ ORCH_CLAUDE_BINARY: bin, ORCH_CLAUDE_BASE_URL: server.url, ORCH_CLAUDE_MODEL: "fake-claude-model", ORCH_CLAUDE_API_KEY_ENV: KEY.name });

  beforeAll(async () => {
    bin = ensureHarness("claude").bin;
    server = await fakeAnthropic().start();
    run = await runScenario({
      name: "claude",
      server,
      env: env(),
      key: KEY,
      turns: (wt) => [
        {
          toolCalls: [{ name: "Write", arguments: { file_path: join(wt.path, "hello.txt"), content: "hello from claude\n" } }],
          usage: { input: 120, output: 30 },
        },
        { toolCalls: [{ name: "Bash", arguments: { command: "env", description: "Show the environment" } }], usage: { input: 140, output: 10 } },
        { text: "Created hello.txt.", usage: { input: 160, output: 12 } },
      ],
    });
  });
  afterAll(async () => {
    run?.repo.dispose();
    await server?.stop();
  });

  it("writes the file, and reports events, streamed text and usage", () => {
    expectScenario(run, {
      file: "hello.txt",
      content: "hello from claude\n",
      finalText: "Created hello.txt.",
      usage: { tokensIn: 420, tokensOut: 52 },
      keyValue: KEY.value,
    });
    expect(run.c.of("agent.tool_call").map((c) => c.name)).toEqual(["Write", "Bash"]);
    expect(
      run.c
        .of("agent.delta")
        .map((d) => d.text)
        .join(""),
    ).toBe("Created hello.txt.");
    expect(run.result.model).toBe("fake-claude-model");
    expect(run.result.usage!.costUsd).toBeGreaterThanOrEqual(0);
  });

  it("sent the model requests to the configured server, with the key", () => {
    const turns = server.turnRequests;
    expect(turns).toHaveLength(3);
    // The step's prompt (prompts.ts) arrived whole: the role's brief and the task.
    expect(JSON.stringify(turns[0]!.body)).toContain("You are the implementer");
    expect(JSON.stringify(turns[0]!.body)).toContain("# Add hello.txt");
    expect(turns[0]!.path).toBe("/v1/messages");
    expect(turns[0]!.headers["x-api-key"]).toBe(KEY.value);
    expect((turns[0]!.body as { model: string }).model).toBe("fake-claude-model");
    const tools = (turns[0]!.body as { tools: Array<{ name: string }> }).tools.map((t) => t.name);
    expect(tools).toContain("Write");
    expect(tools).not.toContain("WebFetch");
  });

  it("fails retryably, saying why, when the model server refuses the request", async () => {
    await expectModelFailure({ name: "claude", server, env: env(), key: KEY });
  });

  it("answers the readiness check with its version", async () => {
    const r = await run.executor.check();
    expect(r.ok).toBe(true);
    expect(r.detail).toContain("2.1.330");
  });

  it("is stopped, process group and all, when the session is aborted", async () => {
    await expectAbortStopsRun({ name: "claude", server, env: env(), key: KEY });
  });
});
