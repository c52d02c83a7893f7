import { describe, expect, it } from "vitest";
import type { PullRequestView, RunView, WorkItem } from "@orch/contracts";
import { createLogger } from "@orch/logging";
import { runPrSync, syncCommands, syncIsCurrent, type Observed, type PullRequest, type Review } from "../src/forge/index.js";

/** The polling fallback's decisions, without a host or a bus: what the host says against what the run's view holds. */

const SHA = "a".repeat(40);
const NEW_SHA = "b".repeat(40);
const T0 = Date.parse("2026-12-01T10:00:00Z");

const pr = (extra: Partial<PullRequest> = {}): PullRequest => ({
  provider: "github",
  repository: "acme/app",
  number: 7,
  url: "https://github.com/acme/app/pull/7",
  head: "eng-1",
  base: "main",
  headSha: SHA,
  state: "open",
  mergeable: true,
  merged: false,
  ...extra,
});

const view = (extra: Partial<PullRequestView> = {}): PullRequestView => ({ state: "open", number: 7, sync: { attemptId: "r1.pr.sync.3", at: T0 }, ...extra });

const review = (id: string, state: Review["state"], author: string, at?: number, extra: Partial<Review> = {}): Review => ({
  id,
  state,
  author,
  body: "",
  comments: [],
  ...(at !== undefined ? { submittedAt: new Date(at).toISOString() } : {}),
  ...extra,
});

const seen = (extra: Partial<Observed> = {}): Observed => ({ pr: pr(), checks: [], reviews: [], ...extra });

describe("syncIsCurrent", () => {
  const run = (pullRequest: PullRequestView | undefined, status: RunView["status"] = "running") => ({ status, ...(pullRequest ? { pullRequest } : {}) });
  it("only the sync the view names, while the PR is open and the run goes on", () => {
    expect(syncIsCurrent({ attemptId: "r1.pr.sync.3" }, run(view()))).toBe(true);
    expect(syncIsCurrent({ attemptId: "r1.pr.sync.2" }, run(view()))).toBe(false);
    expect(syncIsCurrent({ attemptId: "r1.pr.sync.3" }, run(view({ state: "merged" })))).toBe(false);
    expect(syncIsCurrent({ attemptId: "r1.pr.sync.3" }, run(view(), "cancelled"))).toBe(false);
    expect(syncIsCurrent({ attemptId: "r1.pr.sync.3" }, run(undefined))).toBe(false);
    expect(syncIsCurrent({ attemptId: "r1.pr.sync.3" }, null)).toBe(false);
  });
});

describe("syncCommands", () => {
  it("a merged or closed PR: that signal alone", () => {
    const merged = syncCommands("r1", "github", view(), seen({ pr: pr({ state: "merged", merged: true }), checks: [{ name: "build", status: "success" }] }));
    expect(merged).toEqual([
      { commandId: "poll:r1:pr:7:merged", signal: { name: "pr_merged", number: 7, action: "merged", provider: "github", url: pr().url } },
    ]);
    const closed = syncCommands("r1", "gitlab", view(), seen({ pr: pr({ state: "closed" }) }));
    expect(closed.map((c) => [c.commandId, c.signal.name])).toEqual([["poll:r1:pr:7:closed", "pr_closed"]]);
  });

  it("a check the view does not have for the head sha, or has with another status: ci_report with its job, url and conclusion", () => {
    const checks = [
      { name: "build", status: "failure" as const, conclusion: "failure", jobId: "4242", url: "https://ci/4242" },
      { name: "lint", status: "success" as const, conclusion: "success", jobId: "4243" },
      { name: "e2e", status: "pending" as const },
    ];
    const known = view({
      checks: {
        state: "pending",
        at: T0,
        byName: {
          lint: { status: "success", sha: SHA, counted: true, at: T0 },
          e2e: { status: "pending", sha: NEW_SHA, counted: true, at: T0 },
        },
      },
    });
    const out = syncCommands("r1", "github", known, seen({ checks }));
    expect(out).toEqual([
      {
        commandId: `poll:r1:ci:build:${SHA}:failure:4242`,
        signal: {
          name: "ci_report",
          status: "failure",
          check: "build",
          sha: SHA,
          provider: "github",
          conclusion: "failure",
          jobId: "4242",
          url: "https://ci/4242",
        },
      },
      { commandId: `poll:r1:ci:e2e:${SHA}:pending`, signal: { name: "ci_report", status: "pending", check: "e2e", sha: SHA, provider: "github" } },
    ]);
    // The same facts again: the same ids (a redelivered sync, a second hub), so nothing is applied twice.
    expect(syncCommands("r1", "github", known, seen({ checks }))).toEqual(out);
  });

  it("command ids stay within the command schema's 256 characters, and a name's odd characters are escaped", () => {
    const [long] = syncCommands("r1", "github", view(), seen({ checks: [{ name: `ci / ${"x".repeat(400)}`, status: "success" }] }));
    expect(long!.commandId.length).toBeLessThanOrEqual(256);
    const [odd] = syncCommands("r1", "github", view(), seen({ checks: [{ name: "test (node 22): unit", status: "success" }] }));
    expect(odd!.commandId).toBe(`poll:r1:ci:test%20(node%2022)%3A%20unit:${SHA}:success`);
  });

  it("reviews newer than the view's, oldest first, with body, comments and the commit they are of", () => {
    const reviews = [
      review("11", "approved", "lee", T0 + 2_000, { sha: NEW_SHA }),
      review("10", "changes_requested", "kim", T0 + 1_000, { body: "Rename it.", comments: [{ body: "here", path: "src/a.ts", line: 3 }] }),
      review("9", "changes_requested", "kim", T0 - 1_000),
    ];
    const out = syncCommands("r1", "github", view({ review: { state: "commented", reviewer: "kim", comments: 0, at: T0 } }), seen({ reviews }));
    expect(out).toEqual([
      {
        commandId: "poll:r1:review:10:changes_requested",
        signal: {
          name: "review_report",
          state: "changes_requested",
          reviewer: "kim",
          body: "Rename it.",
          comments: [{ body: "here", path: "src/a.ts", line: 3 }],
          sha: SHA,
          number: 7,
          provider: "github",
          url: pr().url,
          at: T0 + 1_000,
        },
      },
      {
        commandId: "poll:r1:review:11:approved",
        signal: { name: "review_report", state: "approved", reviewer: "lee", sha: NEW_SHA, number: 7, provider: "github", url: pr().url, at: T0 + 2_000 },
      },
    ]);
    // Recorded (the view's review is the last one sent, at its time): nothing more.
    const after = view({ review: { state: "approved", reviewer: "lee", comments: 0, at: T0 + 2_000 } });
    expect(syncCommands("r1", "github", after, seen({ reviews }))).toEqual([]);
  });

  it("a plain comment starts a review when there is none, and never stands over an approval", () => {
    const first = syncCommands("r1", "github", view(), seen({ reviews: [review("1", "commented", "ann", T0)] }));
    expect(first.map((c) => c.commandId)).toEqual(["poll:r1:review:1:commented"]);
    const approved = view({ review: { state: "approved", reviewer: "lee", comments: 0, at: T0 } });
    expect(syncCommands("r1", "github", approved, seen({ reviews: [review("2", "commented", "ann", T0 + 5_000)] }))).toEqual([]);
  });

  it("approvals without a time (GitLab's approvers): one is sent unless the view is approved by one of them", () => {
    const approvers = [review("approval:lee", "approved", "lee"), review("approval:kim", "approved", "kim")];
    const out = syncCommands("r1", "gitlab", view(), seen({ reviews: approvers }));
    expect(out.map((c) => c.commandId)).toEqual([`poll:r1:review:approval%3Alee:approved:${SHA}`]);
    expect(out[0]!.signal).toMatchObject({ name: "review_report", state: "approved", reviewer: "lee", sha: SHA });
    expect(out[0]!.signal).not.toHaveProperty("at");
    const byKim = view({ review: { state: "approved", reviewer: "kim", comments: 0, at: T0 } });
    expect(syncCommands("r1", "gitlab", byKim, seen({ reviews: approvers }))).toEqual([]);
    // After changes were requested, a standing approval is the newest word.
    const changes = view({ review: { state: "changes_requested", reviewer: "kim", comments: 0, at: T0 } });
    expect(syncCommands("r1", "gitlab", changes, seen({ reviews: approvers })).map((c) => c.signal)).toEqual([expect.objectContaining({ state: "approved" })]);
  });
});

describe("runPrSync", () => {
  const item = (attemptId = "r1.pr.sync.3") =>
    ({
      runId: "r1",
      projectId: "p",
      definition: { id: "ticket", version: 2 },
      stepId: "pull_request",
      attemptId,
      attempt: 3,
      kind: "sync",
      index: -1,
      role: "maintainer",
      type: "pr.sync",
      phase: "pull_request",
      inputs: {},
      payload: { forge: { provider: "github", repository: "acme/app" }, number: 7, head: "eng-1" },
      iteration: 0,
      rework: 0,
      mode: "live",
      dispatchedAt: T0,
    }) as WorkItem;
  const logger = createLogger({ service: "test", level: "silent" });

  it("stale: reads nothing from the host and sends nothing", async () => {
    const sent: unknown[] = [];
    let looked = 0;
    const out = await runPrSync(item("r1.pr.sync.2"), {
      send: async (c) => void sent.push(c),
      logger,
      view: async () => ({ status: "running", pullRequest: view() }) as RunView,
      observe: async () => (looked++, seen()),
      describe: String,
    });
    expect(out).toEqual([]);
    expect(sent).toEqual([]);
    expect(looked).toBe(0);
  });

  it("current: sends each signal as a run.signal by poll:<provider>, validated; a host error sends nothing and does not throw", async () => {
    const sent: any[] = [];
    const deps = {
      send: async (c: any) => void sent.push(c),
      logger,
      view: async () => ({ status: "running", pullRequest: view() }) as RunView,
      describe: (e: unknown) => (e as Error).message,
    };
    const out = await runPrSync(item(), { ...deps, observe: async () => seen({ checks: [{ name: "build", status: "success", jobId: "5" }] }) });
    expect(out).toEqual([`poll:r1:ci:build:${SHA}:success:5`]);
    expect(sent).toEqual([
      expect.objectContaining({
        type: "run.signal",
        commandId: out[0],
        runId: "r1",
        actor: "poll:github",
        signal: { name: "ci_report", status: "success", check: "build", sha: SHA, provider: "github", jobId: "5" },
      }),
    ]);
    const failed = await runPrSync(item(), {
      ...deps,
      observe: async () => {
        throw new Error("503 from the host");
      },
    });
    expect(failed).toEqual([]);
  });
});
