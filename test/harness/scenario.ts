import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "vitest";
import type { SessionEventInput } from "@orch/contracts";
import { waitFor, type FakeModelServer, type ScriptedTurn } from "@orch/testing";
import { SessionAbortedError, type ExecutorResult, type Worktree } from "../../services/agent-hub/src/executors/types.js";
import { HarnessExecutor, type HarnessName } from "../../services/agent-hub/src/harness/index.js";
import { commitAll, context, hubConfig, liveInGroup, makeRepo, type Collected, type Repo } from "./support.js";

/**
 * One real run of a CLI through its provider: a scripted model turn calls a tool that writes a file
 * in the worktree, the next runs `env` (to see what the CLI's tools can see), the last answers.
 * A canary secret sits in this process's environment, which the executor is given as the hub's:
 * it must reach neither the CLI nor any event.
 *
 * With ORCH_HARNESS_FIXTURES_UPDATE=1 the CLI's output is written to the unit tests' fixtures
 * (services/agent-hub/test/fixtures/harness/<cli>-<fixture>.jsonl), worktree and HOME paths replaced by
 * stable ones: the normalizers are tested against what the real CLIs print.
 */

export const CANARY = "leak-canary-5b1f0c2e9d";
export const FIXTURE_CWD = "/work/tree";
const FIXTURES = join(import.meta.dirname, "..", "..", "services", "agent-hub", "test", "fixtures", "harness");

export interface ScenarioOptions {
  name: HarnessName;
  /** The fixture the run's output is recorded to (`<cli>-<fixture>.jsonl`). */
  fixture?: string;
  server: FakeModelServer;
  /** Configuration variables (binary, base URL, model, key variable). */
  env: Record<string, string>;
  /** The API key variable and its value, in the hub's environment. */
  key: { name: string; value: string };
  turns(worktree: Worktree): ScriptedTurn[];
}

export interface ScenarioRun {
  repo: Repo;
  c: Collected;
  result: ExecutorResult;
  executor: HarnessExecutor;
}

export async function runScenario(o: ScenarioOptions): Promise<ScenarioRun> {
  process.env.ORCH_TEST_CANARY = CANARY;
  const repo = makeRepo(`${o.name}-${o.fixture ?? "run"}`);
  const c = context(repo.worktree);
  o.server.script(...o.turns(repo.worktree));
  const config = hubConfig({
    ORCH_HARNESS_LOG_RAW_EVENTS: "true",
    ORCH_HARNESS_LOG_NORMALIZED_EVENTS: "true",
    ORCH_HARNESS_STARTUP_TIMEOUT_MS: "30000",
    ORCH_HARNESS_TIMEOUT_MS: "120000",
    ORCH_SESSION_KILL_GRACE_MS: "2000",
    ...o.env,
  });
  const executor = new HarnessExecutor(config, c.ctx.logger, o.name, { env: { ...process.env, [o.key.name]: o.key.value } });
  const result = await executor.run(c.ctx);
  if (process.env.ORCH_HARNESS_FIXTURES_UPDATE === "1") record(o.name, o.fixture ?? "run", c.events, repo.worktree.path, o.key.value);
  return { repo, c, result, executor };
}

function record(name: string, fixture: string, events: SessionEventInput[], cwd: string, key: string): void {
  const homes = new RegExp(`${tmpdir().replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}/orch-${name}-[A-Za-z0-9]+`, "g");
  const lines = events
    .filter((e) => e.type === "agent.raw")
    .map((e) => JSON.stringify(e.data.event).split(cwd).join(FIXTURE_CWD).replace(homes, `/tmp/orch-${name}-home`).split(key).join("[redacted]"));
  mkdirSync(FIXTURES, { recursive: true });
  writeFileSync(join(FIXTURES, `${name}-${fixture}.jsonl`), `${lines.join("\n")}\n`);
}

/** What every CLI's run must show: the file on disk and in a commit, the events, the usage, no leak. */
export function expectScenario(
  run: ScenarioRun,
  o: { file: string; content: string; finalText: string; usage: { tokensIn: number; tokensOut: number }; keyValue: string },
): void {
  const { repo, c, result } = run;
  expect(result.error, JSON.stringify(result.error)).toBeUndefined();
  expect(result.ok).toBe(true);
  expect(result.summary).toBe(o.finalText);
  expect(result.usage).toMatchObject(o.usage);
  expect(result.output?.files).toEqual([o.file]);
  expect(result.commitMessage?.split("\n")[0]).toBe(o.finalText);

  // The edit is on disk, and committing the worktree (as the session runner does) records it.
  const { files } = commitAll(repo.worktree, result.commitMessage!);
  expect(files).toEqual([o.file]);
  expect(readFileSync(join(repo.worktree.path, o.file), "utf8")).toBe(o.content);

  const calls = c.of("agent.tool_call");
  const results = c.of("agent.tool_result");
  expect(calls.length).toBeGreaterThanOrEqual(2);
  expect(results.map((r) => r.callId)).toEqual(calls.map((x) => x.callId));
  expect(c.of("agent.file_edit")).toEqual([{ path: o.file, change: "add" }]);
  expect(c.of("agent.message").at(-1)).toEqual({ role: "assistant", text: o.finalText });
  const usage = c.of("agent.usage");
  expect(usage.length).toBeGreaterThanOrEqual(1);
  expect(usage.reduce((n, u) => n + (u.tokensIn as number), 0)).toBe(o.usage.tokensIn);
  expect(usage.reduce((n, u) => n + (u.tokensOut as number), 0)).toBe(o.usage.tokensOut);
  expect(c.of("agent.raw").length).toBeGreaterThan(0);

  // The `env` the model ran: the CLI's tools saw the key (redacted here), and never the canary.
  const envOutput = results.map((r) => String(r.output ?? "")).find((s) => s.includes("PATH="));
  expect(envOutput, "the env tool call's output").toBeDefined();
  expect(envOutput).toContain("[redacted]");
  expect(envOutput).not.toContain("ORCH_TEST_CANARY");
  const everything = JSON.stringify(c.events) + c.logs.join("");
  expect(everything).not.toContain(CANARY);
  expect(everything).not.toContain(o.keyValue);

  expect(c.pids.length).toBe(1);
  expect(c.beats.n).toBeGreaterThan(0);
}

/** A model server that refuses the first request: the run fails, retryably, saying why, and leaves nothing behind. */
export async function expectModelFailure(o: Omit<ScenarioOptions, "turns" | "fixture"> & { errorBody?: unknown }): Promise<void> {
  // Enough refusals for every CLI's own retries (Claude Code tries again with a smaller request).
  const refusal = { status: 400, ...(o.errorBody ? { errorBody: o.errorBody } : {}) };
  const run = await runScenario({ ...o, fixture: "failure", turns: () => Array.from({ length: 10 }, () => refusal) });
  try {
    expect(run.result.ok).toBe(false);
    expect(run.result.error).toMatchObject({ code: "HARNESS_ERROR", retryable: true });
    expect(run.result.error!.message).toContain("scripted 400");
    expect(run.result.commitMessage).toContain("unfinished");
    expect(JSON.stringify(run.c.events) + run.c.logs.join("")).not.toContain(o.key.value);
  } finally {
    while (o.server.remaining > 0) o.server.nextTurn();
    run.repo.dispose();
  }
}

/**
 * An aborted session stops the real CLI while it waits on the model: the run rejects with
 * SessionAbortedError within the kill grace period (plus a little), and nothing of its process group
 * runs any more.
 */
export async function expectAbortStopsRun(o: Omit<ScenarioOptions, "turns">): Promise<void> {
  const repo = makeRepo(`${o.name}-abort`);
  try {
    const c = context(repo.worktree);
    const before = o.server.turnRequests.length;
    o.server.script({ text: "too late", delayMs: 60_000 });
    const graceMs = 2_000;
    const config = hubConfig({ ORCH_SESSION_KILL_GRACE_MS: String(graceMs), ORCH_HARNESS_STARTUP_TIMEOUT_MS: "30000", ...o.env });
    const executor = new HarnessExecutor(config, c.ctx.logger, o.name, { env: { ...process.env, [o.key.name]: o.key.value } });
    const running = executor.run(c.ctx);
    await waitFor(() => o.server.turnRequests.length > before, { timeoutMs: 30_000, what: `${o.name}'s model request` });
    const t0 = Date.now();
    c.abort.abort(new Error("cancelled by the test"));
    await expect(running).rejects.toBeInstanceOf(SessionAbortedError);
    expect(Date.now() - t0).toBeLessThan(graceMs + 3_000);
    expect(liveInGroup(c.pids[0]!)).toEqual([]);
  } finally {
    repo.dispose();
  }
}
