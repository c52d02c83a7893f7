import { describe, expect, it } from "vitest";
import { PrMergePayload, PrOpenPayload, PrReadyPayload, PrSyncPayload, PrUpdatePayload, RefusalCode } from "@orch/contracts";
import { checkCounts, checksState, mergeQueueRunId, PR_UPDATE_STEP, type DefinitionInput } from "../src/index.js";
import { define, Drive, expectAccepted, expectRefused, FORGE, prOpened, T0 } from "./drive.js";

/**
 * Pull requests in the kernel: a `pr.open` step's output recorded on the run (and announced), what
 * forge steps are given, a run without a forge, reviews and their bounded fix attempts, the CI
 * check filter and the failing check a fix attempt carries, `push` on session steps while the PR is
 * open, the merge once approved and green, the polling fallback's timer, and the built-ins the PR
 * drives (seed 003's ticket to Done and to Abandoned, SpecKit implement on or off by forge).
 */

const PROJECT = { project: { forge: FORGE, baseBranch: "main" } };
const PUBLIC = { prDefaults: { pollIntervalMs: 15_000, publicUrl: "https://orch.example.com/" } };

/** A run that implements, then opens its PR, then (when asked) merges it once approved and green. */
const pipeline = (o: { pr?: Record<string, unknown>; ci?: Record<string, unknown>; merge?: boolean } = {}): DefinitionInput => ({
  id: "acme.pr",
  version: 1,
  workspace: { branch: "${input.branch}" },
  steps: [
    { id: "implement", role: "implementer", type: "agent", title: "Implement it" },
    { id: "open", role: "maintainer", type: "pr.open", needs: ["implement"] },
    ...(o.merge ? [{ id: "merge", role: "maintainer", type: "pr.merge", needs: ["open"] }] : []),
  ],
  ...(o.ci ? { ci: o.ci } : {}),
  pullRequests: { follow: true, onMerged: "complete", onClosed: "cancel", review: { fixAttempts: 2, fixCooldownMs: 60_000 }, ...o.pr },
});

function opened(def: DefinitionInput = pipeline(), extra: Record<string, unknown> = {}): Drive {
  const d = Drive.of(define(def), { autoStart: true, input: { branch: "feature-x", goal: "Greet users by name" }, ...PROJECT, ...PUBLIC, ...extra });
  d.succeed("implement", { summary: "added greet()" }, { usage: { tokensIn: 100, tokensOut: 20 } });
  d.succeed("open", prOpened());
  return d;
}

describe("pr.open: what it is given, what it records", () => {
  it("is given the forge, the base, draft, and a title and body made from the run (with a link back)", () => {
    const d = Drive.of(define(pipeline({ pr: { draft: true } })), {
      autoStart: true,
      input: { branch: "feature-x", goal: "Greet users by name" },
      ...PROJECT,
      ...PUBLIC,
    });
    d.succeed("implement", { summary: "added greet()" }, { usage: { tokensIn: 100, tokensOut: 20 } });
    const w = d.work.get("open")!;
    expect(w.type).toBe("pr.open");
    const p = PrOpenPayload.parse(w.payload);
    expect(p).toMatchObject({ forge: FORGE, base: "main", draft: true, title: "Greet users by name" });
    expect(p.body).toContain("**Implement it** (implementer): completed — added greet()");
    expect(p.body).toContain("Usage: 120 tokens");
    expect(p.body).toContain("Run: https://orch.example.com/api/v1/runs/r1");
    expect(p.body).toContain("<!-- orchestrator:run=r1 -->");
    expect(w.workspace).toEqual({ branch: "feature-x" });
  });

  it("its output is recorded as the run's pull request, announced by pr.opened, with the step's completion", () => {
    const d = opened();
    expect(d.step("open")).toBe("completed");
    expect(d.eventsOf("pr.opened", d.last.effects)[0]!.data).toEqual({
      provider: "github",
      repository: "acme/app",
      number: 7,
      url: "https://github.com/acme/app/pull/7",
      head: "feature-x",
      base: "main",
      headSha: "a1b2c3d4e5f6",
      state: "open",
      created: true,
      stepId: "open",
    });
    expect(d.state.pr?.record).toMatchObject({ number: 7, state: "open", headSha: "a1b2c3d4e5f6" });
    expect(d.state.facts.pullRequest).toMatchObject({ number: 7, action: "opened", merged: false });
    // Every step done, the PR open: the run follows it (waits) instead of completing.
    expect(d.status).toBe("waiting");
  });

  it("an output that is not a PrOpenOutput fails the step, not retried", () => {
    const d = Drive.of(define(pipeline()), { autoStart: true, input: { branch: "b" }, ...PROJECT });
    d.succeed("implement");
    d.succeed("open", { url: "https://example.test/pr/1" });
    expect(d.step("open")).toBe("failed");
    expect(d.stepCtx("open").error).toMatchObject({ code: "INVALID_OUTPUT", retryable: false });
    expect(d.state.pr).toBeUndefined();
    expect(d.status).toBe("failed");
  });

  it("without a forge it fails at once, saying so; or is skipped where the definition says whenNoForge: skip", () => {
    const d = Drive.of(define(pipeline()), { autoStart: true, input: { branch: "b" } });
    d.succeed("implement");
    expect(d.step("open")).toBe("failed");
    expect(d.stepCtx("open").error).toMatchObject({ code: "NO_FORGE", retryable: false, message: expect.stringMatching(/forge/) });
    expect(d.dispatched.map((w) => w.stepId)).toEqual(["implement"]);
    expect(d.status).toBe("failed");
    // run_step of the failed step is refused with the reason.
    const skip = pipeline();
    (skip.steps as Record<string, unknown>[])[1]!.whenNoForge = "skip";
    const e = Drive.of(define(skip), { autoStart: true, input: { branch: "b" } });
    e.succeed("implement");
    expect(e.step("open")).toBe("skipped");
    expect(e.status).toBe("completed");
  });

  it("pr_opened records a PR too (announced), and pr_closed / pr_merged update its state", () => {
    const d = Drive.of(define(pipeline()), { autoStart: true, input: { branch: "feature-x" }, ...PROJECT });
    expectAccepted(d.signal({ name: "pr_opened", number: 9, url: "https://github.com/acme/app/pull/9", provider: "github" }, { actor: "webhook:github" }));
    expect(d.eventsOf("pr.opened", d.last.effects)[0]!.data).toMatchObject({ number: 9, provider: "github", state: "open", actor: "webhook:github" });
    expect(d.state.pr?.record).toMatchObject({ number: 9, state: "open", repository: "acme/app", head: "feature-x" });
    d.signal({ name: "pr_closed", number: 9 });
    expect(d.state.pr?.record.state).toBe("closed");
    expect(d.state.pr?.closedAt).toBe(T0);
    expect(d.status).toBe("cancelled");
  });
});

describe("reviews (review_report)", () => {
  it("are recorded as the PR's review state", () => {
    const d = opened();
    expectAccepted(d.signal({ name: "review_report", state: "approved", reviewer: "dana", sha: "a1b2c3d4e5f6" }));
    expect(d.state.pr?.review).toEqual({ state: "approved", reviewer: "dana", sha: "a1b2c3d4e5f6", comments: 0, at: T0 });
    expect(d.eventsOf("pr.reviewed", d.last.effects)[0]!.data).toMatchObject({ state: "approved", reviewer: "dana", number: 7 });
    expect(d.status).toBe("waiting");
  });

  it("changes requested: the implementing step runs again with the review's comments (push on), bounded by attempts and a cooldown", () => {
    const d = opened();
    const review = {
      name: "review_report" as const,
      state: "changes_requested" as const,
      reviewer: "dana",
      body: "Please handle empty names.",
      comments: [{ path: "src/greet.ts", line: 3, body: "what if name is empty?" }],
    };
    d.signal(review);
    expect(d.status).toBe("running");
    const w = d.newWork()[0]!;
    expect(w).toMatchObject({ stepId: "implement", attempt: 2, payload: { push: true } });
    expect(w.feedback).toContain("Changes were requested in the review of the pull request #7 by dana.");
    expect(w.feedback).toContain("- src/greet.ts:3: what if name is empty?");
    expect(w.feedback).toContain("fix attempt 1 of 2");
    expect(d.eventsOf("review.fix_attempt", d.last.effects)[0]!.data).toMatchObject({ stepId: "implement", attempt: 1, max: 2 });
    d.succeed("implement");
    expect(d.status).toBe("waiting");

    // Within the cooldown: refused, recorded.
    d.tick(30_000);
    d.signal(review);
    expect(d.newWork()).toEqual([]);
    expect(d.eventsOf("review.fix_refused", d.last.effects)[0]!.data).toMatchObject({ reason: expect.stringMatching(/cooldown/), attempts: 1, max: 2 });
    // After it: attempt 2; then the cap.
    d.tick(30_000);
    d.signal(review);
    expect(d.newWork()[0]).toMatchObject({ stepId: "implement", attempt: 3 });
    d.succeed("implement");
    d.tick(120_000);
    d.signal(review);
    expect(d.newWork()).toEqual([]);
    expect(d.eventsOf("review.fix_refused", d.last.effects)[0]!.data).toMatchObject({ reason: "review fix attempts used up (2 of 2)" });
    expect(d.state.pr?.reviewFix).toEqual({ attempts: 2, lastAt: T0 + 60_000 });
  });

  it("a finished run takes no review", () => {
    const d = opened();
    d.signal({ name: "pr_merged", number: 7 });
    expect(d.status).toBe("completed");
    expectRefused(d.signal({ name: "review_report", state: "approved" }), RefusalCode.TerminalState);
  });
});

describe("CI: the check filter, the failing check in a fix attempt", () => {
  it("ci.checks: names or globs that count; another check is recorded on the PR and does nothing else", () => {
    expect(checkCounts(["build", "test-*"], "test-unit")).toBe(true);
    expect(checkCounts(["build", "test-*"], "lint")).toBe(false);
    expect(checkCounts(undefined, "lint")).toBe(true);
    const d = opened(pipeline({ ci: { checks: ["test-*"], onFailure: "fail", fixAttempts: 1, fixCooldownMs: 0 } }));
    d.signal({ name: "ci_report", status: "failure", check: "lint", provider: "github" });
    expect(d.eventsOf("ci.check_ignored", d.last.effects)[0]!.data).toMatchObject({ check: "lint", status: "failure" });
    expect(d.state.facts.ci).toBeUndefined();
    expect(d.state.pr?.checks?.lint).toMatchObject({ status: "failure", counted: false });
    expect(checksState(d.state.pr?.checks)).toBeUndefined();
    d.signal({ name: "ci_report", status: "success", check: "test-unit" });
    expect(checksState(d.state.pr?.checks)).toBe("success");
  });

  it("a check reported for another commit than the PR's head is stale: pending, never green nor failed", () => {
    const checks = { test: { status: "success" as const, sha: "aaaa1111", counted: true, at: 1 } };
    expect(checksState(checks, "aaaa1111ffff")).toBe("success");
    expect(checksState(checks, "bbbb2222")).toBe("pending");
    expect(checksState({ test: { ...checks.test, status: "failure" as const } }, "bbbb2222")).toBe("pending");
    expect(checksState({ test: { status: "success" as const, counted: true, at: 1 } }, "bbbb2222")).toBe("success");
  });

  it("a CI fix attempt's work carries payload.ciFailure (the forge, the check, its job id) for the hub to fetch the log", () => {
    const def: DefinitionInput = {
      id: "acme.ci",
      version: 1,
      execution: "manual",
      onStepFailure: "block",
      steps: [{ id: "impl", role: "implementer" }],
      ci: { onFailure: "block", fixAttempts: 2, fixCooldownMs: 0 },
    };
    const d = Drive.of(define(def), { autoStart: true, ...PROJECT });
    d.signal({ name: "run_step", stepId: "impl" });
    d.signal({ name: "ci_report", status: "failure", conclusion: "failure", check: "unit", jobId: 4242, sha: "abc1234", url: "https://ci.example/job/4242" });
    const w = d.newWork()[0]!;
    expect(w).toMatchObject({ stepId: "impl", attempt: 2 });
    expect(w.payload?.ciFailure).toEqual({
      provider: "github",
      forge: FORGE,
      check: "unit",
      jobId: 4242,
      sha: "abc1234",
      url: "https://ci.example/job/4242",
      conclusion: "failure",
    });
    // No PR open: no push.
    expect(w.payload?.push).toBeUndefined();
  });
});

describe("merge: once approved and green", () => {
  it("a pr.merge step waits until the PR is approved and its checks are green, then is given the method and the approved sha", () => {
    const d = opened(pipeline({ merge: true, pr: { merge: { enabled: true, method: "rebase" } } }));
    expect(d.step("merge")).toBe("pending");
    d.signal({ name: "review_report", state: "approved", reviewer: "dana", sha: "a1b2c3d4e5f6" });
    expect(d.step("merge")).toBe("pending");
    d.signal({ name: "ci_report", status: "success", check: "test" });
    expect(d.step("merge")).toBe("running");
    expect(PrMergePayload.parse(d.work.get("merge")!.payload)).toEqual({ forge: FORGE, number: 7, method: "rebase", sha: "a1b2c3d4e5f6" });
    d.succeed("merge", { merged: true, sha: "fedcba9876" });
    expect(d.state.pr?.record.state).toBe("merged");
    expect(d.state.pr?.mergeSha).toBe("fedcba9876");
    expect(d.status).toBe("completed");
  });

  it("merging not enabled: the step is skipped; a merge the host refuses fails it, not retried", () => {
    const off = opened(pipeline({ merge: true }));
    expect(off.step("merge")).toBe("skipped");
    const d = opened(pipeline({ merge: true, pr: { merge: { enabled: true } } }));
    d.signal({ name: "review_report", state: "approved" });
    d.signal({ name: "ci_report", status: "success" });
    d.succeed("merge", { merged: false, message: "Head branch was modified" });
    expect(d.stepCtx("merge").error).toMatchObject({ code: "NOT_MERGED", retryable: false, message: expect.stringMatching(/Head branch was modified/) });
  });

  it("the project enables merging too, and its method wins over the definition's", () => {
    const d = opened(pipeline({ merge: true, pr: { merge: { enabled: false, method: "merge" } } }), {
      project: { forge: FORGE, baseBranch: "main", merge: { enabled: true, method: "rebase" } },
    });
    d.signal({ name: "review_report", state: "approved" });
    d.signal({ name: "ci_report", status: "success" });
    expect(PrMergePayload.parse(d.work.get("merge")!.payload)).toMatchObject({ number: 7, method: "rebase" });
  });
});

describe("the polling fallback (pr.sync)", () => {
  it("arms a timer when the PR is recorded open, dispatches pr.sync when it fires, and stops when the PR merges", () => {
    const d = opened();
    const t = d.timer("pr_poll")!;
    expect(t).toMatchObject({ timerId: "r1.pr.poll.1", dueAt: T0 + 15_000 });
    d.fire(t.timerId);
    const sync = d.newWork()[0]!;
    expect(sync).toMatchObject({ kind: "sync", type: "pr.sync", stepId: "pull_request", attemptId: "r1.pr.sync.1", role: "maintainer" });
    expect(PrSyncPayload.parse(sync.payload)).toEqual({ forge: FORGE, number: 7, head: "feature-x" });
    expect(d.state.pr?.sync).toEqual({ attemptId: "r1.pr.sync.1", at: T0 + 15_000 });
    expect(d.timer("pr_poll")).toMatchObject({ timerId: "r1.pr.poll.2", dueAt: T0 + 30_000 });
    // A stale timer changes nothing.
    expect(d.apply({ type: "timer", timerId: "r1.pr.poll.1", kind: "pr_poll" }).changed).toBe(false);
    d.signal({ name: "pr_merged", number: 7 });
    expect(d.timerEffects(d.last.effects)).toContainEqual(expect.objectContaining({ op: "cancel", timerId: "r1.pr.poll.2" }));
    expect(d.timer("pr_poll")).toBeUndefined();
  });

  it("0 disables it", () => {
    const d = opened(pipeline(), { prDefaults: { pollIntervalMs: 0 } });
    expect(d.timer("pr_poll")).toBeUndefined();
  });
});

describe("seed 003's ticket pipeline, driven by its pull request", () => {
  const TICKET = { key: "ENG-42", title: "Fix the login redirect", branch: "eng-42" };

  /** The commands the run sent to other runs in its last transition (its queue's), as the scheduler fires them. */
  function queueCommands(d: Drive): Record<string, unknown>[] {
    return d
      .timerEffects()
      .filter((t) => t.op === "set" && t.timerKind === "command")
      .map((t) => {
        const c = (t as { command: Record<string, unknown> }).command;
        return { type: c.type, runId: c.runId, ...(c.then ? { then: c.then } : {}), ...(c.signal ? { signal: c.signal } : {}) };
      });
  }

  /** Approved and green, in PendingMerge, its turn given: the `pr.update` just dispatched. */
  function inQueue(): Drive {
    const d = awaitingReview();
    d.event("ApprovalGranted", { approval: true });
    d.succeed("ready", { ready: true });
    d.signal({ name: "ci_report", status: "success", check: "test", sha: "a1b2c3d4e5f6" });
    d.signal({ name: "review_report", state: "approved", reviewer: "lee", sha: "a1b2c3d4e5f6" });
    expect(d.stage).toBe("PendingMerge");
    d.signal({ name: "mq_turn", queue: mergeQueueRunId("p1", "main") });
    return d;
  }

  function awaitingReview(): Drive {
    const d = Drive.of("ticket", { autoStart: true, input: TICKET, ...PROJECT });
    d.event("TicketAccepted");
    d.succeed("plan", { plan: "do it" });
    d.succeed("implement");
    d.succeed("test");
    const w = d.work.get("draft_pr")!;
    expect(PrOpenPayload.parse(w.payload)).toMatchObject({ forge: FORGE, draft: true, base: "main", title: "ENG-42: Fix the login redirect" });
    d.succeed("draft_pr", prOpened({ head: "eng-42", draft: true }));
    expect(d.stage).toBe("AwaitingYourReview");
    return d;
  }

  it("to Done: your approval, a review, approved and green → PendingMerge, merged → Done", () => {
    const d = awaitingReview();
    d.event("ApprovalGranted", { approval: true }, { actor: "dana" });
    expect(d.stage).toBe("ReadyForReview");
    // Your approval marks the draft ready for review: reviewers are asked, and the host will merge it.
    expect(d.running()).toEqual(["ready"]);
    expect(PrReadyPayload.parse(d.work.get("ready")!.payload)).toEqual({ forge: FORGE, number: 7 });
    expect(d.view().pullRequest?.draft).toBe(true);
    d.succeed("ready", { ready: true });
    expect(d.view().pullRequest?.draft).toBe(false);
    expect(d.eventsOf("pr.ready", d.last.effects)[0]!.data).toMatchObject({ number: 7, stepId: "ready" });
    expect(d.stage).toBe("ReadyForReview");
    d.signal({ name: "review_report", state: "commented", reviewer: "lee" });
    expect(d.stage).toBe("InReview");
    d.signal({ name: "ci_report", status: "success", check: "test" });
    expect(d.stage).toBe("InReview");
    d.signal({ name: "review_report", state: "approved", reviewer: "lee", sha: "a1b2c3d4e5f6" });
    expect(d.stage).toBe("PendingMerge");
    // Through the merge queue of its base: it joins, gets its turn, is brought up to the base, CI again, merged.
    const queue = mergeQueueRunId("p1", "main");
    expect(d.running()).toEqual([]);
    expect(queueCommands(d)).toEqual([{ type: "run.create", runId: queue, then: { name: "mq_enqueue", runId: "r1", number: 7 } }]);
    d.signal({ name: "mq_turn", queue }, { actor: "merge-queue" });
    const update = d.newWork()[0]!;
    expect(update).toMatchObject({ kind: "sync", type: "pr.update", stepId: PR_UPDATE_STEP });
    expect(PrUpdatePayload.parse(update.payload)).toMatchObject({ number: 7, head: "eng-42", base: "main", approvedSha: "a1b2c3d4e5f6", strategy: "rebase" });
    d.signal({ name: "mq_updated", attemptId: update.attemptId, headSha: "c3d4e5f6a7b8", strategy: "rebase", approvedPatchId: "p1", patchId: "p1" });
    expect(d.view().mergeQueue).toMatchObject({ queue, state: "checking", headSha: "c3d4e5f6a7b8" });
    expect(d.running()).toEqual([]);
    d.signal({ name: "ci_report", status: "success", check: "test", sha: "c3d4e5f6a7b8" });
    expect(d.running()).toEqual(["merge"]);
    expect(PrMergePayload.parse(d.work.get("merge")!.payload)).toMatchObject({ number: 7, method: "squash", sha: "c3d4e5f6a7b8" });
    d.succeed("merge", { merged: true, sha: "0123456789" });
    expect(d.context.stage).toBe("Done");
    expect(d.status).toBe("completed");
    expect(d.state.facts).toMatchObject({ mergeCompleted: true });
    expect(queueCommands(d)).toEqual([{ type: "run.signal", runId: queue, signal: { name: "mq_leave", runId: "r1", outcome: "merged" } }]);
  });

  it("in the queue, an update that changes what was approved asks for approval again; approved again, it joins again", () => {
    const d = inQueue();
    const update = d.newWork()[0]!;
    d.signal({ name: "mq_updated", attemptId: update.attemptId, headSha: "c3d4e5f6a7b8", approvedPatchId: "p1", patchId: "p2" });
    expect(d.eventsOf("pr.approval_invalidated", d.last.effects)[0]!.data).toMatchObject({ before: "p1", after: "p2", headSha: "c3d4e5f6a7b8" });
    expect(d.view().pullRequest?.review?.state).toBe("dismissed");
    expect(d.stage).toBe("InReview");
    expect(d.view().mergeQueue).toBeUndefined();
    expect(queueCommands(d)[0]).toMatchObject({ signal: { name: "mq_leave", outcome: "reapproval" } });
    d.signal({ name: "ci_report", status: "success", check: "test", sha: "c3d4e5f6a7b8" });
    expect(d.stage).toBe("InReview");
    d.signal({ name: "review_report", state: "approved", reviewer: "lee", sha: "c3d4e5f6a7b8" });
    expect(d.stage).toBe("PendingMerge");
    expect(queueCommands(d)).toEqual([{ type: "run.create", runId: mergeQueueRunId("p1", "main"), then: { name: "mq_enqueue", runId: "r1", number: 7 } }]);
    expect(d.view().mergeQueue).toMatchObject({ state: "queued" });
  });

  it("in the queue, a conflict with the base goes back to the implementer with the conflict; a stale or repeated answer changes nothing", () => {
    const d = inQueue();
    const update = d.newWork()[0]!;
    d.signal({ name: "mq_updated", attemptId: "r1.pr.update.99", headSha: "c3d4e5f6a7b8" });
    expect(d.last.changed).toBe(false);
    d.signal({
      name: "mq_updated",
      attemptId: update.attemptId,
      conflict: { files: ["src/app.ts"], message: "CONFLICT (content): Merge conflict in src/app.ts" },
    });
    expect(d.eventsOf("mq.conflict", d.last.effects)[0]!.data).toMatchObject({ files: ["src/app.ts"] });
    expect(queueCommands(d)[0]).toMatchObject({ signal: { name: "mq_leave", outcome: "conflict" } });
    expect(d.stage).toBe("Implementing");
    const w = d.newWork()[0]!;
    expect(w.stepId).toBe("implement");
    expect(w.feedback).toContain("conflicts in: src/app.ts");
    d.signal({ name: "mq_updated", attemptId: update.attemptId, headSha: "c3d4e5f6a7b8" });
    expect(d.last.changed).toBe(false);
  });

  it("ready for review: skipped when the PR is not a draft; a host that refuses fails it (optional: the ticket goes on)", () => {
    const d = Drive.of("ticket", { autoStart: true, input: TICKET, ...PROJECT });
    d.event("TicketAccepted");
    d.succeed("plan", { plan: "do it" });
    d.succeed("implement");
    d.succeed("test");
    d.succeed("draft_pr", prOpened({ head: "eng-42", draft: false }));
    d.event("ApprovalGranted", { approval: true });
    expect(d.step("ready")).toBe("skipped");
    expect(d.dispatched.map((w) => w.stepId)).not.toContain("ready");

    // Marked ready on the host before your approval (a webhook's ready_for_review): nothing left to do.
    const w = awaitingReview();
    w.signal({ name: "pr_opened", number: 7, action: "ready_for_review", provider: "github" }, { actor: "webhook:github" });
    expect(w.view().pullRequest?.draft).toBe(false);
    w.event("ApprovalGranted", { approval: true });
    expect(w.step("ready")).toBe("skipped");

    const e = awaitingReview();
    e.event("ApprovalGranted", { approval: true });
    e.succeed("ready", { ready: false, message: "Pull request is closed" });
    expect(e.step("ready")).toBe("failed");
    expect(e.stepCtx("ready").error).toMatchObject({ code: "NOT_READY", retryable: false, message: expect.stringContaining("Pull request is closed") });
    expect(e.view().pullRequest?.draft).toBe(true);
    expect(e.status).toBe("running");
    e.signal({ name: "review_report", state: "commented", reviewer: "lee" });
    expect(e.stage).toBe("InReview");
  });

  it("a review while the draft is being marked ready: InReview at once; the answer still records it ready", () => {
    const d = awaitingReview();
    d.event("ApprovalGranted", { approval: true });
    expect(d.running()).toEqual(["ready"]);
    d.signal({ name: "review_report", state: "commented", reviewer: "lee" });
    expect(d.stage).toBe("InReview");
    d.succeed("ready", { ready: true });
    expect(d.step("ready")).toBe("completed");
    expect(d.view().pullRequest?.draft).toBe(false);
    expect(d.stage).toBe("InReview");
  });

  it("a turn for a run that left the queue is given back, so the queue does not wait for it", () => {
    const d = awaitingReview();
    d.signal({ name: "mq_turn", queue: "mq-p1-main-0000abcd" });
    expect(queueCommands(d)).toEqual([{ type: "run.signal", runId: "mq-p1-main-0000abcd", signal: { name: "mq_leave", runId: "r1", outcome: "cancelled" } }]);
  });

  it("changes requested in review: back to Implementing, the implementer told the review; the fix pushes", () => {
    const d = awaitingReview();
    d.event("ApprovalGranted", { approval: true });
    d.signal({ name: "review_report", state: "changes_requested", reviewer: "lee", body: "Add a test for the redirect." });
    expect(d.stage).toBe("Implementing");
    const w = d.newWork()[0]!;
    expect(w).toMatchObject({ stepId: "implement", payload: { push: true } });
    expect(w.feedback).toContain("Add a test for the redirect.");
    expect(d.eventsOf("review.fix_attempt", d.last.effects)[0]!.data).toMatchObject({ stepId: "implement", attempt: 1, max: 3 });
  });

  it("a check failing on the PR's head: back to Implementing, the implementer told the failure and given the failing job; once per failure, bounded", () => {
    const d = awaitingReview();
    d.event("ApprovalGranted", { approval: true });
    expect(d.stage).toBe("ReadyForReview");
    const failure = {
      name: "ci_report",
      status: "failure",
      check: "test",
      conclusion: "failure",
      sha: "a1b2c3d4e5f6",
      jobId: 4242,
      provider: "github",
    } as const;
    d.signal(failure, { actor: "webhook:github" });
    expect(d.stage).toBe("Implementing");
    const w = d.newWork()[0]!;
    expect(w).toMatchObject({
      stepId: "implement",
      payload: { push: true, ciFailure: { provider: "github", forge: FORGE, check: "test", jobId: 4242, sha: "a1b2c3d4e5f6", conclusion: "failure" } },
    });
    expect(w.feedback).toContain("CI failed on github (test)");
    expect(d.eventsOf("ci.fix_attempt", d.last.effects)[0]!.data).toMatchObject({ stepId: "implement", attempt: 1, max: 3 });
    expect(d.state.facts).toMatchObject({ testsPassed: false });

    // The same failure again (a poll after the webhook): nothing more.
    d.signal(failure, { actor: "poll:github" });
    expect(d.newWork()).toEqual([]);
    expect(d.eventsOf("ci.fix_attempt", d.last.effects)).toEqual([]);

    // The fix goes round: tests, the PR found open again (pushed), your approval again.
    d.succeed("implement");
    d.succeed("test");
    d.succeed("draft_pr", prOpened({ head: "eng-42", draft: true, headSha: "b2c3d4e5f6a7", created: false }));
    expect(d.stage).toBe("AwaitingYourReview");
    // A failure of the commit before the fix says nothing new; one on the new head is a second attempt, after the cooldown.
    d.signal({ ...failure, sha: "a1b2c3d4e5f6" });
    expect(d.newWork()).toEqual([]);
    d.signal({ ...failure, sha: "b2c3d4e5f6a7", jobId: 4243 });
    expect(d.eventsOf("ci.fix_refused", d.last.effects)[0]!.data.reason).toMatch(/cooldown/);
    d.tick(60_000);
    d.signal({ ...failure, sha: "b2c3d4e5f6a7", jobId: 4244, check: "lint" });
    expect(d.stage).toBe("Implementing");
    expect(d.newWork()[0]!.payload).toMatchObject({ ciFailure: { jobId: 4244, check: "lint" } });
  });

  it("a merge the host refuses: MergeFailed, back to InReview", () => {
    const d = inQueue();
    const update = d.newWork()[0]!;
    d.signal({ name: "mq_updated", attemptId: update.attemptId, headSha: "a1b2c3d4e5f6", approvedPatchId: "p1", patchId: "p1" });
    expect(d.running()).toEqual(["merge"]);
    d.succeed("merge", { merged: false, message: "not mergeable" });
    expect(d.stage).toBe("InReview");
    expect(d.status).toBe("running");
  });

  it("to Abandoned: the PR closed unmerged", () => {
    const d = awaitingReview();
    d.signal({ name: "pr_closed", number: 7 }, { actor: "webhook:github" });
    expect(d.context.stage).toBe("Abandoned");
    expect(d.status).toBe("cancelled");
    expect(d.eventsOf("pr.closed", d.last.effects)[0]!.data).toMatchObject({ outcome: "event", event: "Cancelled", number: 7 });
  });

  it("without a forge its draft PR step fails, saying so", () => {
    const d = Drive.of("ticket", { autoStart: true, input: TICKET });
    d.event("TicketAccepted");
    d.succeed("plan");
    d.succeed("implement");
    d.succeed("test");
    expect(d.stepCtx("draft_pr").error).toMatchObject({ code: "NO_FORGE" });
  });
});

describe("SpecKit implement: a pr.open step, on when the project has a forge", () => {
  const INPUT = { feature_description: "Add user authentication", feature_id: "001-add-user-auth" };
  const through = (extra: Record<string, unknown>) => {
    const d = Drive.of("speckit.implement", { autoStart: true, input: INPUT, ...extra });
    d.succeed("phase_1", { summary: "implemented" });
    d.approve("phase_1");
    d.succeed("phase_2", { summary: "tests pass" });
    d.approve("phase_2");
    return d;
  };

  it("with a forge: opens the PR on the feature's branch after the tests are approved; the result is still phase_2's", () => {
    const d = through(PROJECT);
    const w = d.work.get("pull_request")!;
    expect(w.workspace).toEqual({ branch: INPUT.feature_id });
    expect(PrOpenPayload.parse(w.payload)).toMatchObject({ forge: FORGE, title: "Add user authentication" });
    d.succeed("pull_request", prOpened({ head: INPUT.feature_id }));
    expect(d.status).toBe("completed");
    expect(d.context.result).toEqual({ summary: "tests pass" });
    expect(d.state.pr?.record.number).toBe(7);
  });

  it("without: skipped, and the workflow completes as before", () => {
    const d = through({});
    expect(d.step("pull_request")).toBe("skipped");
    expect(d.status).toBe("completed");
  });
});

describe("a merge queue run (merge.queue)", () => {
  const turns = (d: Drive) =>
    d
      .timerEffects()
      .filter((t) => t.op === "set" && t.timerKind === "command")
      .map((t) => (t as { command: { runId: string; signal: { name: string; queue: string } } }).command);

  it("members in order, the first one's turn; a member that leaves gives the next its turn; once each", () => {
    const d = Drive.of("merge.queue", { runId: "mq-p1-main-1", autoStart: true, input: { base: "main" } } as never);
    d.signal({ name: "mq_enqueue", runId: "run-a", number: 1 });
    expect(turns(d)).toEqual([expect.objectContaining({ runId: "run-a", signal: { name: "mq_turn", queue: "mq-p1-main-1" } })]);
    d.signal({ name: "mq_enqueue", runId: "run-b", number: 2 });
    expect(turns(d)).toEqual([]);
    d.signal({ name: "mq_enqueue", runId: "run-a", number: 1 });
    expect(d.last.changed).toBe(false);
    expect(d.view().mergeQueue).toEqual({
      base: "main",
      entries: [
        { runId: "run-a", number: 1, at: T0, position: 1 },
        { runId: "run-b", number: 2, at: T0, position: 2 },
      ],
      head: "run-a",
    });
    d.signal({ name: "mq_leave", runId: "run-b", outcome: "cancelled" });
    expect(turns(d)).toEqual([]);
    d.signal({ name: "mq_enqueue", runId: "run-b", number: 2 });
    d.signal({ name: "mq_leave", runId: "run-a", outcome: "merged" });
    expect(turns(d)).toEqual([expect.objectContaining({ runId: "run-b", signal: { name: "mq_turn", queue: "mq-p1-main-1" } })]);
    expect(d.view().mergeQueue).toMatchObject({ entries: [{ runId: "run-b", position: 1 }], head: "run-b" });
    d.signal({ name: "mq_leave", runId: "run-b", outcome: "merged" });
    expect(d.view().mergeQueue).toEqual({ base: "main", entries: [] });
    expect(d.status).toBe("waiting");
  });

  it("another run takes no queue signals", () => {
    const d = Drive.of("ticket", { autoStart: true, input: { key: "K-1", branch: "k-1" } });
    expectRefused(d.signal({ name: "mq_enqueue", runId: "x" }), RefusalCode.IllegalTransition, /not a merge queue/);
  });
});
