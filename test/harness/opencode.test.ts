import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fakeOpenAiChat, type FakeModelServer } from "@orch/testing";
import { ensureHarness } from "../../scripts/lib/harnesses.mjs";
import { expectAbortStopsRun, expectModelFailure, expectScenario, runScenario, type ScenarioRun } from "./scenario.js";

/**
 * OpenCode, the real binary, against a fake OpenAI Chat Completions server on 127.0.0.1, through
 * the `orch` provider its configuration declares. Its write tool takes `{filePath, content}`; usage
 * is the sum over its steps (one per model request).
 */

const KEY = { name: "ORCH_TEST_OPENCODE_KEY", value: "sk-oc-test-7d1e3f5a" };

describe("opencode harness (real CLI)", () => {
  let server: FakeModelServer;
  let bin: string;
  let run: ScenarioRun;
  const env = () => ({
    ORCH_OPENCODE_BINARY: bin,
    ORCH_OPENCODE_BASE_URL: `${server.url}/v1`,
    ORCH_OPENCODE_MODEL: "fake-opencode-model",
    ORCH_OPENCODE_API_KEY_ENV: KEY.name,
  });

  beforeAll(async () => {
    bin = ensureHarness("opencode").bin;
    server = await fakeOpenAiChat().start();
    run = await runScenario({
      name: "opencode",
      server,
      env: env(),
      key: KEY,
      turns: (wt) => [
        {
          toolCalls: [{ name: "write", arguments: { filePath: join(wt.path, "hello.txt"), content: "hello from opencode\n" } }],
          usage: { input: 120, output: 30 },
        },
        { toolCalls: [{ name: "bash", arguments: { command: "env", description: "Show the environment" } }], usage: { input: 140, output: 10 } },
        { text: "Created hello.txt.", usage: { input: 160, output: 12 } },
      ],
    });
  });
  afterAll(async () => {
    run?.repo.dispose();
    await server?.stop();
  });

  it("writes the file, and reports events and usage summed over its steps", () => {
    expectScenario(run, {
      file: "hello.txt",
      content: "hello from opencode\n",
      finalText: "Created hello.txt.",
      usage: { tokensIn: 420, tokensOut: 52 },
      keyValue: KEY.value,
    });
    expect(run.c.of("agent.tool_call").map((c) => c.name)).toEqual(["write", "bash"]);
    expect(run.c.of("agent.usage")).toHaveLength(3);
  });

  it("sent the model requests to the configured server, with the key, and no side requests", () => {
    expect(server.requests.filter((r) => !r.turn)).toEqual([]);
    const turns = server.turnRequests;
    expect(turns).toHaveLength(3);
    // The step's prompt (prompts.ts) arrived whole: the role's brief and the task.
    expect(JSON.stringify(turns[0]!.body)).toContain("You are the implementer");
    expect(JSON.stringify(turns[0]!.body)).toContain("# Add hello.txt");
    expect(turns[0]!.path).toBe("/v1/chat/completions");
    expect(turns[0]!.headers.authorization).toBe(`Bearer ${KEY.value}`);
    expect((turns[0]!.body as { model: string }).model).toBe("fake-opencode-model");
    const tools = (turns[0]!.body as { tools: Array<{ function: { name: string } }> }).tools.map((t) => t.function.name);
    expect(tools).toContain("write");
    expect(tools).not.toContain("webfetch");
  });

  it("fails retryably, saying why, when the model server refuses the request", async () => {
    // A bad request as OpenAI words it: OpenCode retries (five times, backing off from 2 s) any error
    // whose body mentions a server error, which the fake's generic error body does.
    const errorBody = { error: { message: "scripted 400: the request is invalid", type: "invalid_request_error", param: null, code: "invalid_request_error" } };
    await expectModelFailure({ name: "opencode", server, env: env(), key: KEY, errorBody });
  });

  it("answers the readiness check with its version", async () => {
    const r = await run.executor.check();
    expect(r.ok).toBe(true);
    expect(r.detail).toContain("1.18.33");
  });

  it("is stopped, process group and all, when the session is aborted", async () => {
    await expectAbortStopsRun({ name: "opencode", server, env: env(), key: KEY });
  });
});
