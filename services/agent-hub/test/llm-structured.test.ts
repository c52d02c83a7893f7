import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { StepErrorCode } from "@orch/contracts";
import { fakeOllama, fakeOpenAiChat, type FakeModelServer, type ScriptedTurn } from "@orch/testing";
import { LocalLlmExecutor } from "../src/llm/index.js";
import { parseAgentResponse } from "../src/llm/response.js";
import { hubConfig, sessionContext, tempRepo, testLogger } from "./llm-helpers.js";
import type { WorkItem } from "@orch/contracts";

/** `ORCH_LLM_RESPONSE_FORMAT=structured-json`: AgentResponseSchema answers, validated, with one repair request. */

const APIS = [
  { api: "ollama", fake: () => fakeOllama() },
  { api: "openai", fake: () => fakeOpenAiChat({ sideRequests: false }) },
] as const;

const answer = (o: Record<string, unknown>) => JSON.stringify(o);

describe.each(APIS)("structured answers over $api", ({ api, fake }) => {
  let server: FakeModelServer;
  let repo: ReturnType<typeof tempRepo>;
  beforeEach(async () => {
    server = await fake().start();
    repo = tempRepo();
  });
  afterEach(async () => {
    await server.stop();
    repo.cleanup();
  });

  const run = async (turns: ScriptedTurn[], item: Partial<WorkItem> = {}, env: Record<string, string> = {}) => {
    server.script(...turns);
    const exec = new LocalLlmExecutor(
      hubConfig({ LOCAL_LLM_API: api, LOCAL_LLM_URL: server.url, ORCH_LLM_RESPONSE_FORMAT: "structured-json", ...env }),
      testLogger().logger,
    );
    const ctx = sessionContext(repo.path, { item });
    return { result: await exec.run(ctx), ctx };
  };
  const body = (n: number) => server.turnRequests[n]!.body as Record<string, any>;
  const asksForJson = (n: number) => (api === "ollama" ? body(n).format === "json" : body(n).response_format?.type === "json_object");

  it("asks for a JSON object and maps a completed answer: summary, notes, output, files", async () => {
    const { result } = await run([
      {
        text: answer({ status: "completed", summary: "Added hello()", notes: ["kept it small"], files: ["src/hello.ts"], output: { tests: 3 } }),
        usage: { input: 40, output: 20 },
      },
    ]);
    expect(asksForJson(0)).toBe(true);
    expect(body(0).messages[0].content).toContain('"status": "completed" | "failed" | "needs_input"');
    expect(result).toMatchObject({
      ok: true,
      summary: "Added hello()",
      notes: ["kept it small"],
      output: { tests: 3, files: ["src/hello.ts"] },
      usage: { tokensIn: 40, tokensOut: 20 },
    });
    expect(result.error).toBeUndefined();
  });

  it("a plan step's output.steps carries the steps to add", async () => {
    const steps = [
      { id: "s-a", title: "write the parser", role: "implementer" },
      { id: "s-b", title: "review it", role: "reviewer" },
    ];
    const { result } = await run([{ text: answer({ summary: "two steps", output: { steps } }) }], { kind: "plan", role: "architect", type: "protocol.plan" });
    expect(body(0).messages[1].content).toContain('{"steps": [');
    expect(result).toMatchObject({ ok: true, output: { steps } });
  });

  it("failed and needs_input fail the step (AGENT_FAILED, not retryable) with the reason", async () => {
    for (const status of ["failed", "needs_input"] as const) {
      const { result } = await run([{ text: answer({ status, summary: "could not", reason: "the spec is missing" }) }], {}, { LOCAL_LLM_ERROR_MODE: "throw" });
      expect(result.ok).toBe(false);
      expect(result.error).toMatchObject({ code: StepErrorCode.AgentFailed, retryable: false });
      expect(result.error!.message).toContain("the spec is missing");
      expect(result.summary).toBe("could not");
    }
  });

  it("invalid JSON: exactly one repair request carrying the bad answer and the error, then the repaired answer", async () => {
    const bad = "Sure! I added the function and the test.";
    const { result, ctx } = await run([
      { text: bad, usage: { input: 50, output: 9 } },
      { text: answer({ summary: "Added the function", notes: [] }), usage: { input: 70, output: 12 } },
    ]);
    expect(result).toMatchObject({ ok: true, summary: "Added the function", usage: { tokensIn: 120, tokensOut: 21, costUsd: 0 } });
    expect(server.turnRequests).toHaveLength(2);
    const repair = body(1).messages as Array<{ role: string; content: string }>;
    expect(repair.at(-2)).toMatchObject({ role: "assistant", content: bad });
    expect(repair.at(-1)!.role).toBe("user");
    expect(repair.at(-1)!.content).toMatch(/not a valid response object: not a JSON object/);
    expect(repair.at(-1)!.content).toContain("corrected JSON object only");
    expect(asksForJson(1)).toBe(true);
    expect(body(1).tools).toBeUndefined();
    expect(ctx.of("agent.usage")).toHaveLength(2);
  });

  it("a schema mismatch still invalid after the repair fails with INVALID_AGENT_RESPONSE, after exactly two requests", async () => {
    const { result } = await run(
      [{ text: answer({ status: "done", summary: "" }) }, { text: answer({ status: "completed" }) }, { text: answer({ summary: "never asked" }) }],
      {},
      { LOCAL_LLM_ERROR_MODE: "throw" },
    );
    expect(result.ok).toBe(false);
    expect(result.error).toMatchObject({ code: StepErrorCode.InvalidAgentResponse, retryable: false });
    expect(result.error!.message).toContain("summary");
    expect(server.turnRequests).toHaveLength(2);
    expect(server.remaining).toBe(1);
    const repair = body(1).messages as Array<{ content: string }>;
    expect(repair.at(-1)!.content).toMatch(/status: /);
  });

  it("with tools offered, tool rounds are not constrained to JSON, and the final answer is still validated", async () => {
    const { result } = await run(
      [{ toolCalls: [{ name: "ls", arguments: { args: [] } }] }, { text: "```json\n" + answer({ summary: "listed", notes: ["empty repo"] }) + "\n```" }],
      {},
      { ORCH_TOOL_ALLOWLIST: "ls" },
    );
    expect(asksForJson(0)).toBe(false);
    expect(asksForJson(1)).toBe(false);
    expect(result).toMatchObject({ ok: true, summary: "listed", notes: ["empty repo"] });
  });
});

describe("parseAgentResponse", () => {
  it("finds the object in a code fence or prose, applies defaults, and names what is wrong", () => {
    expect(parseAgentResponse('Here:\n{"summary": "x"}\nthanks')).toEqual({ ok: true, value: { status: "completed", summary: "x", notes: [], files: [] } });
    expect(parseAgentResponse('```\n{"summary": "y", "status": "failed"}\n```')).toMatchObject({ ok: true, value: { status: "failed" } });
    const bad = parseAgentResponse('{"summary": 3, "notes": "no"}');
    expect(bad.ok).toBe(false);
    expect(!bad.ok && bad.error).toMatch(/summary: .*; notes: /);
    expect(parseAgentResponse("no json here")).toMatchObject({ ok: false });
    expect(parseAgentResponse("[1, 2]")).toMatchObject({ ok: false });
  });
});
