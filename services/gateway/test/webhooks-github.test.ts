import { describe, expect, it } from "vitest";
import { normalizeGitHub, normalizeWebhook } from "../src/surfaces/webhooks/index.js";
import { at, githubExample, githubExamples } from "./webhooks-support.js";

const DELIVERY = "72d3162e-cc78-11e3-81ab-4c9367dc0958";
const deliver = (event: string, body: unknown) => normalizeGitHub({ "x-github-event": event, "x-github-delivery": DELIVERY }, body);
const example = (event: string, index: number) => deliver(event, githubExample(event, index));

const SHA_HELLO = "6113728f27ae82c7b1a177c8d03f9e96e0adf246";
const SHA_CHANGES = "ec26c3e57ca3a959ca5aad62de7213c562f8c821";

describe("GitHub push", () => {
  it("a branch push: branch without refs/heads/, the new head", () => {
    expect(example("push", 4)).toEqual({
      provider: "github",
      deliveryId: DELIVERY,
      repository: "Codertocat/Hello-World",
      event: "push",
      kind: "push",
      branch: "master",
      sha: SHA_HELLO,
    });
  });

  it("a tag push: the tag, and no branch", () => {
    expect(example("push", 0)).toEqual({
      provider: "github",
      deliveryId: DELIVERY,
      repository: "Codertocat/Hello-World",
      event: "push",
      kind: "push",
      tag: "simple-tag",
      sha: SHA_HELLO,
    });
  });

  it("a deleted ref: no sha", () => {
    const e = example("push", 1);
    expect(e).toMatchObject({ kind: "push", tag: "simple-tag", deleted: true });
    expect(e.sha).toBeUndefined();
    const b = githubExample("push", 4);
    Object.assign(b, { ref: "refs/heads/orch/run/r-9", after: "0".repeat(40), deleted: true, head_commit: null });
    expect(deliver("push", b)).toEqual({
      provider: "github",
      deliveryId: DELIVERY,
      repository: "Codertocat/Hello-World",
      event: "push",
      kind: "push",
      branch: "orch/run/r-9",
      runId: "r-9",
      runIdSource: "branch",
      deleted: true,
    });
  });

  it("names the run of an orch/run/<id> branch, or of an orch-run: line in the head commit", () => {
    const b = githubExample("push", 4);
    b.ref = "refs/heads/orch/run/run-3f9c";
    expect(deliver("push", b)).toMatchObject({ branch: "orch/run/run-3f9c", runId: "run-3f9c", runIdSource: "branch" });
    const c = githubExample("push", 4);
    at(c, "head_commit").message = "Fix the parser\n\nOrch-Run: run-77\n";
    expect(deliver("push", c)).toMatchObject({ branch: "master", runId: "run-77", runIdSource: "marker" });
  });
});

describe("GitHub pull_request", () => {
  it("opened", () => {
    expect(example("pull_request", 0)).toEqual({
      provider: "github",
      deliveryId: DELIVERY,
      repository: "Codertocat/Hello-World",
      event: "pull_request",
      kind: "pull_request",
      branch: "changes",
      sha: SHA_CHANGES,
      pr: {
        number: 2,
        merged: false,
        action: "opened",
        url: "https://github.com/Codertocat/Hello-World/pull/2",
        headBranch: "changes",
        baseBranch: "master",
        headSha: SHA_CHANGES,
        draft: false,
      },
    });
  });

  it("closed without merging", () => {
    expect(example("pull_request", 3).pr).toMatchObject({ number: 2, action: "closed", merged: false });
  });

  it("closed and merged", () => {
    // The examples hold no merged pull request: this is the closed one, as GitHub sends it once merged.
    const b = githubExample("pull_request", 3);
    Object.assign(at(b, "pull_request"), { merged: true, merged_at: "2019-05-15T15:20:40Z", state: "closed" });
    expect(deliver("pull_request", b).pr).toEqual({
      number: 2,
      merged: true,
      action: "closed",
      url: "https://github.com/Codertocat/Hello-World/pull/2",
      headBranch: "changes",
      baseBranch: "master",
      headSha: SHA_CHANGES,
      draft: false,
    });
    // Without `merged` (a trimmed payload), `merged_at` decides.
    delete at(b, "pull_request").merged;
    expect(deliver("pull_request", b).pr?.merged).toBe(true);
  });

  it("synchronize: the new head commit", () => {
    expect(example("pull_request", 22)).toMatchObject({
      kind: "pull_request",
      branch: "changes",
      sha: SHA_CHANGES,
      pr: { action: "synchronize", merged: false },
    });
  });

  it("names the run from its head branch first, else from an orch-run: line in its description", () => {
    const b = githubExample("pull_request", 0);
    at(b, "pull_request", "head").ref = "orch/run/abc_123";
    at(b, "pull_request").body = "orch-run: other";
    expect(deliver("pull_request", b)).toMatchObject({
      branch: "orch/run/abc_123",
      runId: "abc_123",
      runIdSource: "branch",
      pr: { headBranch: "orch/run/abc_123" },
    });
    const c = githubExample("pull_request", 0);
    at(c, "pull_request").body = "Implements the plan.\r\n\r\n  ORCH-RUN:  run-42  \r\n";
    expect(deliver("pull_request", c)).toMatchObject({ branch: "changes", runId: "run-42", runIdSource: "marker" });
  });

  it("a pull request without a number is not one", () => {
    const b = githubExample("pull_request", 0);
    delete b.number;
    delete at(b, "pull_request").number;
    expect(deliver("pull_request", b).kind).toBe("unknown");
  });
});

describe("GitHub check_run", () => {
  it("completed with failure", () => {
    expect(example("check_run", 1)).toEqual({
      provider: "github",
      deliveryId: DELIVERY,
      repository: "Codertocat/Hello-World",
      event: "check_run",
      kind: "ci",
      branch: "changes",
      sha: SHA_CHANGES,
      ci: {
        status: "failure",
        conclusion: "failure",
        name: "Octocoders-linter",
        url: "https://github.com/Codertocat/Hello-World/runs/128620228",
        jobId: 128620228,
      },
    });
  });

  it("completed with success", () => {
    expect(example("check_run", 2).ci).toMatchObject({ status: "success", conclusion: "success" });
  });

  it("created (queued) and in progress are pending", () => {
    expect(example("check_run", 0).ci).toMatchObject({ status: "pending", conclusion: "queued" });
    expect(example("check_run", 6)).toMatchObject({
      branch: "miniak/event-process-id",
      ci: { status: "pending", conclusion: "in_progress", name: "API Review" },
    });
  });

  it("rerequested is pending: a new run is coming, whatever the old one concluded", () => {
    // The payload still carries the old run, completed as neutral.
    expect(at(githubExample("check_run", 7), "check_run").conclusion).toBe("neutral");
    expect(example("check_run", 7)).toMatchObject({ branch: "master", ci: { status: "pending", conclusion: "rerequested", name: "randscape" } });
  });

  it("neutral is success", () => {
    const b = githubExample("check_run", 7);
    b.action = "completed";
    expect(deliver("check_run", b).ci).toMatchObject({ status: "success", conclusion: "neutral" });
  });

  it("timed_out, cancelled, action_required and stale are failures; skipped is success", () => {
    for (const [conclusion, status] of [
      ["timed_out", "failure"],
      ["cancelled", "failure"],
      ["action_required", "failure"],
      ["stale", "failure"],
      ["skipped", "success"],
    ] as const) {
      const b = githubExample("check_run", 1);
      at(b, "check_run").conclusion = conclusion;
      expect(deliver("check_run", b).ci, conclusion).toMatchObject({ status, conclusion });
    }
  });

  it("an unmapped conclusion is not guessed at", () => {
    const b = githubExample("check_run", 1);
    at(b, "check_run").conclusion = "something_new";
    expect(deliver("check_run", b)).toMatchObject({ kind: "unknown", event: "check_run" });
  });
});

describe("GitHub check_suite", () => {
  it("completed with success", () => {
    expect(example("check_suite", 0)).toEqual({
      provider: "github",
      deliveryId: DELIVERY,
      repository: "Codertocat/Hello-World",
      event: "check_suite",
      kind: "ci",
      branch: "changes",
      sha: SHA_CHANGES,
      ci: { status: "success", conclusion: "success", name: "octocoders-linter" },
    });
  });

  it("requested is pending", () => {
    expect(example("check_suite", 4)).toMatchObject({
      kind: "ci",
      branch: "master",
      sha: "f95f852bd8fca8fcc58a9a2d6c842781e32a215e",
      ci: { status: "pending", conclusion: "queued" },
    });
  });

  it("rerequested is pending", () => {
    expect(example("check_suite", 7).ci).toMatchObject({ status: "pending", conclusion: "rerequested" });
  });

  it("names the run from an orch-run: line in the head commit", () => {
    const b = githubExample("check_suite", 0);
    at(b, "check_suite", "head_commit").message = "Step 2\n\norch-run: r2";
    expect(deliver("check_suite", b)).toMatchObject({ runId: "r2", runIdSource: "marker" });
  });
});

describe("GitHub status", () => {
  it("success on the only branch at that commit", () => {
    expect(example("status", 2)).toEqual({
      provider: "github",
      deliveryId: DELIVERY,
      repository: "Codertocat/Hello-World",
      event: "status",
      kind: "ci",
      branch: "master",
      sha: SHA_HELLO,
      ci: { status: "success", conclusion: "success", name: "default" },
    });
  });

  it("several branches at that commit: no branch, unless one is a run's", () => {
    const e = example("status", 0);
    expect(e).toMatchObject({ kind: "ci", sha: SHA_HELLO, ci: { status: "success" } });
    expect(e.branch).toBeUndefined();
    const b = githubExample("status", 0);
    (b.branches as { name: string }[]).push({ ...(b.branches as { name: string }[])[0]!, name: "orch/run/r1" });
    expect(deliver("status", b)).toMatchObject({ branch: "orch/run/r1", runId: "r1", runIdSource: "branch" });
  });

  it("error and failure are failures, pending is pending", () => {
    for (const [state, status] of [
      ["error", "failure"],
      ["failure", "failure"],
      ["pending", "pending"],
    ] as const) {
      const b = githubExample("status", 2);
      b.state = state;
      b.target_url = "https://ci.example.com/builds/1";
      expect(deliver("status", b).ci).toEqual({ status, conclusion: state, name: "default", url: "https://ci.example.com/builds/1" });
    }
  });
});

describe("GitHub reviews", () => {
  it("a review submitted: its state, reviewer, where, the head it reviewed", () => {
    expect(example("pull_request_review", 0)).toEqual({
      provider: "github",
      deliveryId: DELIVERY,
      repository: "Codertocat/Hello-World",
      event: "pull_request_review",
      kind: "review",
      branch: "changes",
      sha: SHA_CHANGES,
      review: {
        number: 2,
        state: "commented",
        action: "submitted",
        reviewer: "Codertocat",
        url: "https://github.com/Codertocat/Hello-World/pull/2#pullrequestreview-237895671",
        headBranch: "changes",
      },
    });
  });

  it("approved, changes requested (any case), dismissed", () => {
    const b = githubExample("pull_request_review", 0);
    Object.assign(at(b, "review"), { state: "approved", body: "Ship it" });
    expect(deliver("pull_request_review", b).review).toMatchObject({ state: "approved", body: "Ship it" });
    Object.assign(at(b, "review"), { state: "CHANGES_REQUESTED", body: "Please add a test" });
    expect(deliver("pull_request_review", b).review).toMatchObject({ state: "changes_requested", body: "Please add a test" });
    expect(example("pull_request_review", 1).review).toMatchObject({ state: "dismissed", action: "dismissed" });
    Object.assign(at(b, "review"), { state: "pending" });
    expect(deliver("pull_request_review", b).kind).toBe("unknown");
  });

  it("a line comment: a comment with its path and line; a deleted one says nothing", () => {
    const e = example("pull_request_review_comment", 0);
    expect(e).toMatchObject({ kind: "review", branch: "changes", sha: SHA_CHANGES });
    expect(e.review).toEqual({
      number: 2,
      state: "commented",
      action: "created",
      reviewer: "Codertocat",
      body: "Maybe you should use more emoji on this line.",
      comments: [{ body: "Maybe you should use more emoji on this line.", path: "README.md" }],
      url: "https://github.com/Codertocat/Hello-World/pull/2#discussion_r284312630",
      headBranch: "changes",
    });
    expect(example("pull_request_review_comment", 3).kind).toBe("unknown");
  });

  it("names the run of its head branch", () => {
    const b = githubExample("pull_request_review", 0);
    at(b, "pull_request", "head").ref = "orch/run/r-42";
    expect(deliver("pull_request_review", b)).toMatchObject({ runId: "r-42", runIdSource: "branch", review: { headBranch: "orch/run/r-42" } });
  });
});

describe("GitHub workflow_job", () => {
  it("a job that failed: its id is what its log is fetched by", () => {
    expect(example("workflow_job", 1)).toMatchObject({
      kind: "ci",
      branch: "main",
      sha: "3484a3fb816e0859fd6e1cea078d76385ff50625",
      ci: { status: "failure", conclusion: "failure", name: "linters", jobId: 289782451, url: "https://github.com/octo-org/octo-repo/runs/1291536064" },
    });
    expect(example("workflow_job", 5).ci).toMatchObject({ status: "pending", jobId: 289782451 });
  });
});

describe("GitHub workflow_run", () => {
  it("completed with success", () => {
    expect(example("workflow_run", 1)).toEqual({
      provider: "github",
      deliveryId: DELIVERY,
      repository: "octo-org/octo-repo",
      event: "workflow_run",
      kind: "ci",
      branch: "master",
      sha: "3484a3fb816e0859fd6e1cea078d76385ff50625",
      // The example's workflow has an empty name: left out.
      ci: { status: "success", conclusion: "success", url: "https://github.com/octo-org/octo-repo/actions/runs/289782451" },
    });
  });

  it("queued is pending, whatever the action says", () => {
    expect(example("workflow_run", 0)).toMatchObject({ branch: "main", ci: { status: "pending", conclusion: "queued", name: "Manually triggered workflow" } });
    expect(example("workflow_run", 3).ci).toMatchObject({ status: "pending", conclusion: "queued" });
  });

  it("action_required is a failure", () => {
    expect(example("workflow_run", 4).ci).toMatchObject({ status: "failure", conclusion: "action_required" });
  });
});

describe("GitHub ping and other events", () => {
  it("ping is recognized by its name and not acted on", () => {
    expect(example("ping", 0)).toEqual({ provider: "github", deliveryId: DELIVERY, repository: "Octocoders/Hello-World", event: "ping", kind: "unknown" });
  });

  it("an event we do not act on is unknown, with its name kept", () => {
    expect(deliver("issues", githubExample("issues", 0))).toEqual({
      provider: "github",
      deliveryId: DELIVERY,
      repository: "Codertocat/Hello-World",
      event: "issues",
      kind: "unknown",
    });
  });

  it("no event header: unknown, whatever the body", () => {
    expect(normalizeGitHub({}, githubExample("push", 4))).toEqual({
      provider: "github",
      deliveryId: undefined,
      repository: "Codertocat/Hello-World",
      event: "",
      kind: "unknown",
    });
  });

  it("headers in any case, as fastify or a raw record gives them", () => {
    expect(normalizeWebhook("github", { "X-GitHub-Event": "push", "X-GitHub-Delivery": DELIVERY }, githubExample("push", 4))).toMatchObject({
      kind: "push",
      deliveryId: DELIVERY,
    });
  });

  const EXPECTED_KIND: Record<string, string> = {
    push: "push",
    pull_request: "pull_request",
    pull_request_review: "review",
    pull_request_review_comment: "review",
    check_run: "ci",
    check_suite: "ci",
    status: "ci",
    workflow_run: "ci",
    workflow_job: "ci",
  };
  /** What says nothing we act on: a deleted comment. */
  const NOTHING = (event: string, body: Record<string, unknown>): boolean => event === "pull_request_review_comment" && body.action === "deleted";
  it("every example of every event gives an event of the expected kind", () => {
    const all = githubExamples();
    expect(all.length).toBeGreaterThan(100);
    for (const { event, index, body } of all) {
      const e = deliver(event, body);
      expect(e.provider).toBe("github");
      expect(e.event).toBe(event);
      expect(e.kind, `${event}[${index}]`).toBe(NOTHING(event, body) ? "unknown" : (EXPECTED_KIND[event] ?? "unknown"));
    }
  });
});
