import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { SessionEventInput } from "@orch/contracts";
import { ClaudeNormalizer, CodexNormalizer, OpenCodeNormalizer, type Normalizer } from "../src/harness/index.js";

/**
 * The normalizers against what the real CLIs printed (fixtures recorded by the harness tier with
 * ORCH_HARNESS_FIXTURES_UPDATE=1: a run that writes hello.txt, runs `env` and answers, with usage
 * 120/30 + 140/10 + 160/12; and a run whose model server answers 400), plus a few events built by
 * hand for the cases a recorded run does not show.
 */

const CWD = "/work/tree";
const FIXTURES = join(import.meta.dirname, "fixtures", "harness");

function replay(n: Normalizer, fixture: string): SessionEventInput[] {
  const out: SessionEventInput[] = [];
  for (const line of readFileSync(join(FIXTURES, fixture), "utf8").split("\n").filter(Boolean))
    out.push(...n.push(JSON.parse(line) as Record<string, unknown>));
  return out;
}

const of = (events: SessionEventInput[], type: string) => events.filter((e) => e.type === type).map((e) => e.data);
const sum = (events: SessionEventInput[], k: "tokensIn" | "tokensOut") => of(events, "agent.usage").reduce((n, u) => n + (u[k] as number), 0);

/** What all three recorded runs amount to. */
function expectRun(events: SessionEventInput[], n: Normalizer, toolNames: string[]): void {
  const calls = of(events, "agent.tool_call");
  const results = of(events, "agent.tool_result");
  expect(calls.map((c) => c.name)).toEqual(toolNames);
  expect(results.map((r) => [r.callId, r.ok])).toEqual(calls.map((c) => [c.callId, true]));
  expect(results[1]!.output).toContain("PATH=");
  expect(of(events, "agent.file_edit")).toEqual([{ path: "hello.txt", change: "add" }]);
  expect(of(events, "agent.message").at(-1)).toEqual({ role: "assistant", text: "Created hello.txt." });
  expect(sum(events, "tokensIn")).toBe(420);
  expect(sum(events, "tokensOut")).toBe(52);
  const o = n.outcome();
  expect(o).toMatchObject({ ok: true, finalText: "Created hello.txt.", files: ["hello.txt"], usage: { tokensIn: 420, tokensOut: 52 } });
  expect(o.error).toBeUndefined();
}

describe("codex normalizer", () => {
  it("reads a recorded run: patch, command, answer, usage from turn.completed", () => {
    const n = new CodexNormalizer(CWD);
    const events = replay(n, "codex-run.jsonl");
    expectRun(events, n, ["apply_patch", "shell"]);
    expect(of(events, "agent.usage")).toEqual([{ tokensIn: 420, tokensOut: 52 }]);
    // Codex's own warning about the unknown model is kept as a note, not a failure.
    expect(n.outcome().notes[0]).toContain("Model metadata");
  });

  it("reads a recorded failure: turn.failed is the error", () => {
    const n = new CodexNormalizer(CWD);
    replay(n, "codex-failure.jsonl");
    const o = n.outcome();
    expect(o.ok).toBe(false);
    expect(o.error).toContain("scripted 400");
  });

  it("reports a failed command and a deleted file, and ends unfinished without turn.completed", () => {
    const n = new CodexNormalizer(CWD);
    const events = [
      ...n.push({
        type: "item.completed",
        item: { id: "c1", type: "command_execution", command: "false", aggregated_output: "", exit_code: 1, status: "failed" },
      }),
      ...n.push({
        type: "item.completed",
        item: {
          id: "p1",
          type: "file_change",
          changes: [
            { path: "/work/tree/src/old.ts", kind: "delete" },
            { path: "/elsewhere/x", kind: "update" },
          ],
          status: "completed",
        },
      }),
    ];
    expect(of(events, "agent.tool_call").map((c) => c.callId)).toEqual(["c1", "p1"]);
    expect(of(events, "agent.tool_result")[0]).toMatchObject({ callId: "c1", ok: false, error: "exit code 1" });
    expect(of(events, "agent.file_edit")).toEqual([
      { path: "src/old.ts", change: "delete" },
      { path: "/elsewhere/x", change: "modify" },
    ]);
    expect(n.outcome()).toMatchObject({ ok: false, error: "codex ended without finishing its turn" });
  });
});

describe("claude normalizer", () => {
  it("reads a recorded run: streamed text, tool calls and results, usage and cost from result", () => {
    const n = new ClaudeNormalizer(CWD);
    const events = replay(n, "claude-run.jsonl");
    expectRun(events, n, ["Write", "Bash"]);
    expect(
      of(events, "agent.delta")
        .map((d) => d.text)
        .join(""),
    ).toBe("Created hello.txt.");
    const usage = of(events, "agent.usage");
    expect(usage).toHaveLength(1);
    expect(usage[0]).toMatchObject({ tokensIn: 420, tokensOut: 52, model: "fake-claude-model" });
    expect(n.outcome().model).toBe("fake-claude-model");
    expect(n.outcome().usage.costUsd).toBe(usage[0]!.costUsd ?? 0);
  });

  it("reads a recorded failure: an error result is the error", () => {
    const n = new ClaudeNormalizer(CWD);
    replay(n, "claude-failure.jsonl");
    const o = n.outcome();
    expect(o.ok).toBe(false);
    expect(o.error).toContain("scripted 400");
    expect(o.error).toContain("model API status 400");
  });

  it("notes refused tools, marks failed edits as not done, and reads thinking when nothing streamed", () => {
    const n = new ClaudeNormalizer(CWD);
    const events = [
      ...n.push({
        type: "assistant",
        message: {
          content: [
            { type: "thinking", thinking: "let me see" },
            { type: "tool_use", id: "t1", name: "Edit", input: { file_path: "/work/tree/a.ts", old_string: "x", new_string: "y" } },
          ],
        },
      }),
      ...n.push({
        type: "user",
        message: { content: [{ type: "tool_result", tool_use_id: "t1", is_error: true, content: [{ type: "text", text: "String not found" }] }] },
      }),
      ...n.push({
        type: "result",
        subtype: "success",
        is_error: false,
        result: "Could not edit.",
        usage: { input_tokens: 5, cache_read_input_tokens: 3, output_tokens: 2 },
        total_cost_usd: 0.01,
        permission_denials: [{ tool_name: "Bash" }],
      }),
    ];
    expect(of(events, "agent.delta")).toEqual([{ text: "let me see", channel: "reasoning" }]);
    expect(of(events, "agent.tool_result")).toEqual([{ callId: "t1", name: "Edit", ok: false, error: "String not found" }]);
    expect(of(events, "agent.file_edit")).toEqual([]);
    expect(n.outcome()).toMatchObject({
      ok: true,
      finalText: "Could not edit.",
      usage: { tokensIn: 8, tokensOut: 2, costUsd: 0.01 },
      notes: ["claude was not allowed to use Bash"],
    });
  });

  it("fails a run that printed no result", () => {
    expect(new ClaudeNormalizer(CWD).outcome()).toMatchObject({ ok: false, error: "claude ended without a result" });
  });
});

describe("opencode normalizer", () => {
  it("reads a recorded run: tool parts, text, usage summed over step_finish", () => {
    const n = new OpenCodeNormalizer(CWD);
    const events = replay(n, "opencode-run.jsonl");
    expectRun(events, n, ["write", "bash"]);
    expect(of(events, "agent.usage").map((u) => [u.tokensIn, u.tokensOut])).toEqual([
      [120, 30],
      [140, 10],
      [160, 12],
    ]);
  });

  it("reads a recorded failure: the error event is the error", () => {
    const n = new OpenCodeNormalizer(CWD);
    replay(n, "opencode-failure.jsonl");
    expect(n.outcome()).toMatchObject({ ok: false, error: expect.stringContaining("scripted 400") });
  });

  it("reports a failed tool, an edit of an existing file, and cache and reasoning tokens", () => {
    const n = new OpenCodeNormalizer(CWD);
    const events = [
      ...n.push({ type: "tool_use", part: { tool: "bash", callID: "b1", state: { status: "error", input: { command: "false" }, error: "exit 1" } } }),
      ...n.push({
        type: "tool_use",
        part: { tool: "edit", callID: "e1", state: { status: "completed", input: { filePath: "/work/tree/a.ts" }, output: "ok" } },
      }),
      ...n.push({ type: "step_finish", part: { tokens: { input: 10, output: 4, reasoning: 2, cache: { read: 5, write: 1 } }, cost: 0.5 } }),
    ];
    expect(of(events, "agent.tool_result")[0]).toEqual({ callId: "b1", name: "bash", ok: false, error: "exit 1" });
    expect(of(events, "agent.file_edit")).toEqual([{ path: "a.ts", change: "modify" }]);
    expect(n.outcome()).toMatchObject({ ok: true, usage: { tokensIn: 16, tokensOut: 6, costUsd: 0.5 }, files: ["a.ts"] });
  });
});

describe("every normalizer", () => {
  it.each([
    ["codex", () => new CodexNormalizer(CWD)],
    ["claude", () => new ClaudeNormalizer(CWD)],
    ["opencode", () => new OpenCodeNormalizer(CWD)],
  ])("%s ignores events it does not know and fields of the wrong shape", (_name, make) => {
    const n = make();
    for (const e of [
      {},
      { type: "something.new" },
      { type: "item.completed" },
      { type: "assistant", message: "text" },
      { type: "tool_use", part: 3 },
      { type: "step_finish", part: { tokens: { input: "many" } } },
    ]) {
      expect(() => n.push(e)).not.toThrow();
    }
    expect(() => n.outcome()).not.toThrow();
  });
});
