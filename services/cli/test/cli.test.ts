import { describe, expect, it } from "vitest";
import type { RunJson, RunSummaryJson } from "../src/api.js";
import { gateStep, pairs } from "../src/commands.js";
import { CliError, ExitCode, exitCodeOf } from "../src/errors.js";
import { duration, stepLine, table, transcriptLines } from "../src/format.js";
import { startEnv } from "../src/start.js";
import { ticketsByPriority, trackerState } from "../src/tickets.js";

/** The command line's pure parts: exit codes, flags, formatting, the ticket picker's order, `orch start`'s overrides. */

const summary = (id: string, over: Partial<RunSummaryJson> = {}): RunSummaryJson => ({
  id,
  projectId: "p",
  definition: { id: "ticket", version: 2 },
  view: "ticket",
  labels: {},
  status: "running",
  createdAt: `2026-01-01T00:00:0${id.length % 10}.000Z`,
  updatedAt: "2026-01-01T00:00:00.000Z",
  ...over,
});

describe("exit codes", () => {
  it("map HTTP statuses as docs/cli.md says", () => {
    expect([400, 401, 403, 404, 409, 422, 429, 500, 502, 503].map((s) => exitCodeOf(s))).toEqual([2, 4, 4, 5, 6, 6, 7, 7, 7, 7]);
    expect(exitCodeOf(403, "FORBIDDEN")).toBe(4);
    expect(exitCodeOf(403, "LLM_POLICY_REFUSED")).toBe(6);
  });
});

describe("flags", () => {
  it("reads key=value pairs, keeping = in values, and refuses anything else as a usage error", () => {
    expect(pairs(["a=1", "b=x=y"], "--input")).toEqual({ a: "1", b: "x=y" });
    expect(() => pairs(["nope"], "--label")).toThrow(CliError);
    try {
      pairs(["=v"], "--label");
    } catch (err) {
      expect((err as CliError).exitCode).toBe(ExitCode.Usage);
    }
  });

  it("turns seed 003's provider overrides into the services' variables, refusing unknown values with the list", () => {
    expect(
      startEnv({
        ticketingProvider: "ticketing.linear",
        harnessProvider: "harness.codex",
        vcsProvider: "vcs.git_cli",
        vcsRepoProvider: "vcs_repos.github_gh_cli",
      }),
    ).toEqual({
      ORCH_TICKETING_PROVIDER: "linear",
      ORCH_AGENT_EXECUTOR: "codex",
      ORCH_VCS_PROVIDER: "git_cli",
      ORCH_VCS_REPO_PROVIDER: "vcs_repos.github_gh_cli",
    });
    expect(startEnv({})).toEqual({});
    expect(() => startEnv({ harnessProvider: "codex" })).toThrow(
      '--harness-provider "codex" is not known: use one of harness.opencode, harness.codex, harness.claude',
    );
  });
});

describe("approvals", () => {
  const run = (statuses: string[]): RunJson =>
    ({
      ...summary("r"),
      steps: statuses.map((status, i) => ({
        id: `s${i}`,
        index: i,
        status,
        role: "architect",
        type: "agent",
        stage: "main",
        attempt: 1,
        retries: 0,
        reworks: 0,
      })),
    }) as RunJson;

  it("picks the one step waiting, or the one named; says why otherwise", () => {
    expect(gateStep(run(["completed", "waiting_approval"]), undefined).id).toBe("s1");
    expect(gateStep(run(["completed", "waiting_approval"]), "s0").id).toBe("s0");
    expect(() => gateStep(run(["completed"]), undefined)).toThrow("no step of run r waits for approval (run running)");
    expect(() => gateStep(run(["waiting_approval", "waiting_approval"]), undefined)).toThrow("say which with --step");
    expect(() => gateStep(run(["completed"]), "zz")).toThrow("run r has no step zz (its steps: s0)");
  });
});

describe("formatting", () => {
  it("durations and tables", () => {
    expect([duration(1234), duration(65_000), duration(7_500_000)]).toEqual(["1.2s", "1m05s", "2h05m"]);
    expect(
      table([
        ["A", "BB", "C"],
        ["aaa", "b", "c"],
      ]),
    ).toBe("A    BB  C\naaa  b   c");
  });

  it("one line per step change, with the time it took and who decided", () => {
    const started = new Map<string, number>();
    const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();
    const ev = (type: string, s: number, data: Record<string, unknown>) => ({ id: s, runId: "r", seq: s, type, at: at(s), data });
    expect(stepLine(ev("step.started", 1, { stepId: "a" }), started)).toEqual({ stepId: "a", status: "started" });
    expect(stepLine(ev("step.approved", 4, { stepId: "a", actor: "ann", reason: "ok" }), started)).toEqual({
      stepId: "a",
      status: "approved",
      elapsed: "3.0s",
      note: "by ann: ok",
    });
    expect(stepLine(ev("run.status_changed", 5, { to: "completed" }), started)).toBeUndefined();
  });

  it("session events as transcript lines", () => {
    expect(transcriptLines({ type: "agent.message", data: { role: "assistant", text: "one\ntwo" } })).toEqual(["assistant: one", "  two"]);
    expect(transcriptLines({ type: "agent.delta", data: { text: "par" } })).toEqual({ delta: "par" });
    expect(transcriptLines({ type: "agent.commit", data: { sha: "0123456789abcdef", message: "x" } })).toEqual(["● commit 0123456789 x"]);
    expect(transcriptLines({ type: "session.failed", data: { error: { message: "boom" } } })).toEqual(["-- session failed: boom --"]);
  });
});

describe("the ticket picker", () => {
  it("orders tickets by the position of their tracker state, unknown states last, newest first within one", () => {
    const runs = [
      summary("a", { labels: { ticket: "A", tracker_state: "Backlog" } }),
      summary("bb", { labels: { ticket: "B", tracker_state: "in progress" } }),
      summary("ccc", { labels: { ticket: "C", tracker_state: "Icebox" } }),
      summary("dddd", { stage: "Implementing", title: "D" }),
      summary("eeeee", { definition: { id: "job", version: 1 }, view: "job" }),
      summary("ffffff", { definition: { id: "task", version: 1 }, labels: { ticket: "F" }, stage: "main" }),
    ];
    const order = ticketsByPriority(runs, ["In Progress", "Todo", "Backlog"]);
    expect(order.map((t) => [t.key, t.state])).toEqual([
      ["D", "In Progress"],
      ["B", "in progress"],
      ["A", "Backlog"],
      ["F", "main"],
      ["C", "Icebox"],
    ]);
    expect(trackerState(summary("x", { stage: "AwaitingYourReview" }))).toBe("In Review");
  });
});
