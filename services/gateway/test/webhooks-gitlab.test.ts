import { describe, expect, it } from "vitest";
import { ciStatusOf, normalizeGitLab, normalizeWebhook, parseRef, runIdFromBranch, runIdFromText } from "../src/surfaces/webhooks/index.js";
import { GITLAB_EVENT_HEADER, at, gitlabFixture } from "./webhooks-support.js";

const KEY = "f5e5f430-f57b-4e6e-9fac-d9128cd7232f";
const deliver = (event: string | undefined, body: unknown, extra: Record<string, string> = {}) =>
  normalizeGitLab({ ...(event !== undefined ? { "x-gitlab-event": event } : {}), "idempotency-key": KEY, ...extra }, body);
const fixture = (name: keyof typeof GITLAB_EVENT_HEADER) => deliver(GITLAB_EVENT_HEADER[name], gitlabFixture(name));

describe("GitLab Push Hook", () => {
  it("the documented example", () => {
    expect(fixture("push")).toEqual({
      provider: "gitlab",
      deliveryId: KEY,
      event: "Push Hook",
      repository: "mike/diaspora",
      kind: "push",
      branch: "master",
      sha: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
    });
  });

  it("a deleted branch: no sha", () => {
    const b = gitlabFixture("push");
    Object.assign(b, { after: "0".repeat(40), checkout_sha: null, commits: [], total_commits_count: 0 });
    expect(deliver("Push Hook", b)).toEqual({
      provider: "gitlab",
      deliveryId: KEY,
      event: "Push Hook",
      repository: "mike/diaspora",
      kind: "push",
      branch: "master",
      deleted: true,
    });
  });

  it("a tag push", () => {
    const b = gitlabFixture("push");
    Object.assign(b, { object_kind: "tag_push", event_name: "tag_push", ref: "refs/tags/v1.0.0" });
    expect(deliver("Tag Push Hook", b)).toMatchObject({ kind: "push", tag: "v1.0.0", sha: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7" });
    expect(deliver("Tag Push Hook", b).branch).toBeUndefined();
  });

  it("names the run from an orch/run/<id> branch, or from an orch-run: line in the head commit", () => {
    const b = gitlabFixture("push");
    b.ref = "refs/heads/orch/run/r-1";
    expect(deliver("Push Hook", b)).toMatchObject({ branch: "orch/run/r-1", runId: "r-1", runIdSource: "branch" });
    const c = gitlabFixture("push");
    // The head commit is the one whose id is checkout_sha (here the second), not the first listed.
    (c.commits as Record<string, unknown>[])[0]!.message = "orch-run: wrong";
    (c.commits as Record<string, unknown>[])[1]!.message = "fixed readme\n\norch-run: right";
    expect(deliver("Push Hook", c)).toMatchObject({ branch: "master", runId: "right", runIdSource: "marker" });
  });
});

describe("GitLab Merge Request Hook", () => {
  it("the documented example (opened)", () => {
    expect(fixture("merge_request")).toEqual({
      provider: "gitlab",
      deliveryId: KEY,
      event: "Merge Request Hook",
      repository: "gitlabhq/gitlab-test",
      kind: "pull_request",
      branch: "ms-viewport",
      sha: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
      pr: {
        number: 1,
        merged: false,
        action: "open",
        url: "http://example.com/diaspora/merge_requests/1",
        headBranch: "ms-viewport",
        baseBranch: "master",
        headSha: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
        draft: false,
      },
    });
  });

  it("merged: action merge, state merged", () => {
    const b = gitlabFixture("merge_request");
    Object.assign(at(b, "object_attributes"), { action: "merge", state: "merged", state_id: 3 });
    expect(deliver("Merge Request Hook", b).pr).toMatchObject({ merged: true, action: "merge" });
    // A later update of a merged merge request is still merged.
    Object.assign(at(b, "object_attributes"), { action: "update" });
    expect(deliver("Merge Request Hook", b).pr).toMatchObject({ merged: true, action: "update" });
  });

  it("closed without merging", () => {
    const b = gitlabFixture("merge_request");
    Object.assign(at(b, "object_attributes"), { action: "close", state: "closed" });
    expect(deliver("Merge Request Hook", b).pr).toMatchObject({ merged: false, action: "close" });
  });

  it("names the run from its source branch, else from its description, else from its last commit", () => {
    const b = gitlabFixture("merge_request");
    at(b, "object_attributes").source_branch = "orch/run/mr-run";
    expect(deliver("Merge Request Hook", b)).toMatchObject({
      branch: "orch/run/mr-run",
      runId: "mr-run",
      runIdSource: "branch",
      pr: { headBranch: "orch/run/mr-run" },
    });
    const c = gitlabFixture("merge_request");
    at(c, "object_attributes").description = "What it does.\n\nOrch-Run: desc-run";
    at(c, "object_attributes", "last_commit").message = "orch-run: commit-run";
    expect(deliver("Merge Request Hook", c)).toMatchObject({ runId: "desc-run", runIdSource: "marker" });
    at(c, "object_attributes").description = "";
    expect(deliver("Merge Request Hook", c)).toMatchObject({ runId: "commit-run", runIdSource: "marker" });
  });

  it("a merge request without an iid is not one", () => {
    const b = gitlabFixture("merge_request");
    delete at(b, "object_attributes").iid;
    expect(deliver("Merge Request Hook", b).kind).toBe("unknown");
  });
});

describe("GitLab Pipeline Hook", () => {
  it("the documented example (success)", () => {
    expect(fixture("pipeline")).toEqual({
      provider: "gitlab",
      deliveryId: KEY,
      event: "Pipeline Hook",
      repository: "gitlab-org/gitlab-test",
      kind: "ci",
      branch: "master",
      sha: "bcbb5ec396a2c0f828686f14fac9b80b780504f2",
      ci: { status: "success", conclusion: "success", name: "Pipeline for branch: master", url: "http://example.com/gitlab-org/gitlab-test/-/pipelines/31" },
    });
  });

  it("maps every pipeline status", () => {
    const cases = {
      failed: "failure",
      canceled: "failure",
      running: "pending",
      pending: "pending",
      created: "pending",
      waiting_for_resource: "pending",
      preparing: "pending",
      manual: "pending",
      scheduled: "pending",
      canceling: "pending",
      skipped: "success",
      success: "success",
    } as const;
    for (const [raw, status] of Object.entries(cases)) {
      const b = gitlabFixture("pipeline");
      at(b, "object_attributes").status = raw;
      expect(deliver("Pipeline Hook", b).ci, raw).toMatchObject({ status, conclusion: raw });
    }
    const b = gitlabFixture("pipeline");
    at(b, "object_attributes").status = "not_a_status";
    expect(deliver("Pipeline Hook", b).kind).toBe("unknown");
  });

  it("a merge request pipeline's branch is the merge request's source branch", () => {
    const b = gitlabFixture("pipeline");
    at(b, "object_attributes").ref = "refs/merge-requests/1/head";
    expect(deliver("Pipeline Hook", b)).toMatchObject({ kind: "ci", branch: "test" });
  });

  it("a tag pipeline has no branch", () => {
    const b = gitlabFixture("pipeline");
    Object.assign(at(b, "object_attributes"), { ref: "v1.0.0", tag: true });
    const e = deliver("Pipeline Hook", b);
    expect(e.kind).toBe("ci");
    expect(e.branch).toBeUndefined();
  });

  it("before GitLab 16.1 (no name, no url): the url is built from the project's", () => {
    const b = gitlabFixture("pipeline");
    delete at(b, "object_attributes").name;
    delete at(b, "object_attributes").url;
    expect(deliver("Pipeline Hook", b).ci).toEqual({
      status: "success",
      conclusion: "success",
      url: "http://192.168.64.1:3005/gitlab-org/gitlab-test/-/pipelines/31",
    });
  });

  it("names the run from its ref or its commit message", () => {
    const b = gitlabFixture("pipeline");
    at(b, "object_attributes").ref = "orch/run/p1";
    expect(deliver("Pipeline Hook", b)).toMatchObject({ branch: "orch/run/p1", runId: "p1", runIdSource: "branch" });
    const c = gitlabFixture("pipeline");
    at(c, "commit").message = "test\n\norch-run: p2\n";
    expect(deliver("Pipeline Hook", c)).toMatchObject({ branch: "master", runId: "p2", runIdSource: "marker" });
  });
});

describe("GitLab Job Hook", () => {
  it("the documented example (created)", () => {
    expect(fixture("job")).toEqual({
      provider: "gitlab",
      deliveryId: KEY,
      event: "Job Hook",
      repository: "gitlab-org/gitlab-test",
      kind: "ci",
      branch: "gitlab-script-trigger",
      sha: "2293ada6b400935a1378653304eaf6221e0fdb8f",
      ci: { status: "pending", conclusion: "created", name: "test", url: "http://192.168.64.1:3005/gitlab-org/gitlab-test/-/jobs/1977", jobId: 1977 },
    });
  });

  it("failed and success", () => {
    for (const [raw, status] of [
      ["failed", "failure"],
      ["success", "success"],
      ["running", "pending"],
      ["canceled", "failure"],
    ] as const) {
      const b = gitlabFixture("job");
      b.build_status = raw;
      expect(deliver("Job Hook", b).ci, raw).toMatchObject({ status, conclusion: raw });
    }
  });
});

describe("GitLab reviews", () => {
  it("a comment on a merge request (the documented example): a review comment", () => {
    expect(fixture("note")).toEqual({
      provider: "gitlab",
      deliveryId: KEY,
      event: "Note Hook",
      repository: "gitlab-org/gitlab-test",
      kind: "review",
      branch: "master",
      sha: "562e173be03b8ff2efb05345d12df18815438a4b",
      review: {
        number: 1,
        state: "commented",
        action: "create",
        reviewer: "root",
        body: "This MR needs work.",
        comments: [{ body: "This MR needs work." }],
        url: "http://example.com/gitlab-org/gitlab-test/merge_requests/1#note_1244",
        headBranch: "master",
      },
    });
  });

  it("a line comment carries its path and line; a system note is GitLab's own and says nothing", () => {
    const b = gitlabFixture("note");
    Object.assign(at(b, "object_attributes"), { position: { new_path: "src/app.ts", new_line: 12 } });
    expect(deliver("Note Hook", b).review?.comments).toEqual([{ body: "This MR needs work.", path: "src/app.ts", line: 12 }]);
    Object.assign(at(b, "object_attributes"), { system: true });
    expect(deliver("Note Hook", b).kind).toBe("unknown");
  });

  it("approvals: one person's or all required, and their removal", () => {
    for (const [action, state] of [
      ["approval", "approved"],
      ["approved", "approved"],
      ["unapproval", "dismissed"],
      ["unapproved", "dismissed"],
    ] as const) {
      const b = gitlabFixture("merge_request");
      at(b, "object_attributes").action = action;
      const e = deliver("Merge Request Hook", b);
      expect(e).toMatchObject({ kind: "review", branch: "ms-viewport", review: { number: 1, state, action, reviewer: "root", headBranch: "ms-viewport" } });
    }
  });

  it("a review submitted with Request changes (a reviewer's state becomes requested_changes): changes requested, by that reviewer", () => {
    const b = gitlabFixture("merge_request");
    at(b, "object_attributes").action = "update";
    b.changes = { reviewers: { previous: [{ username: "lee", state: "unreviewed" }], current: [{ username: "lee", state: "requested_changes" }] } };
    expect(deliver("Merge Request Hook", b)).toMatchObject({
      kind: "review",
      review: { number: 1, state: "changes_requested", action: "update", reviewer: "lee" },
    });
    // Already requested before: nothing new (an ordinary update).
    b.changes = { reviewers: { previous: [{ username: "lee", state: "requested_changes" }], current: [{ username: "lee", state: "requested_changes" }] } };
    expect(deliver("Merge Request Hook", b).kind).toBe("pull_request");
  });

  it("names the run of its source branch", () => {
    const b = gitlabFixture("note");
    at(b, "merge_request").source_branch = "orch/run/r-7";
    expect(deliver("Note Hook", b)).toMatchObject({ runId: "r-7", runIdSource: "branch" });
  });
});

describe("GitLab headers and dispatch", () => {
  it("delivery id: Idempotency-Key (stable across retries), else X-Gitlab-Webhook-UUID, else X-Gitlab-Event-UUID", () => {
    const body = gitlabFixture("push");
    const all = { "Idempotency-Key": "idem", "X-Gitlab-Webhook-UUID": "hook", "X-Gitlab-Event-UUID": "event", "X-Gitlab-Event": "Push Hook" };
    expect(normalizeGitLab(all, body).deliveryId).toBe("idem");
    expect(normalizeGitLab({ ...all, "Idempotency-Key": "" }, body).deliveryId).toBe("hook");
    expect(normalizeGitLab({ "X-Gitlab-Event-UUID": "event", "X-Gitlab-Event": "Push Hook" }, body).deliveryId).toBe("event");
    expect(normalizeGitLab({ "X-Gitlab-Event": "Push Hook" }, body).deliveryId).toBeUndefined();
  });

  it("the body's object_kind decides; without an event header the event is the object_kind", () => {
    expect(deliver(undefined, gitlabFixture("pipeline"))).toMatchObject({ event: "pipeline", kind: "ci" });
    expect(deliver("Push Hook", gitlabFixture("pipeline"))).toMatchObject({ event: "Push Hook", kind: "ci" });
  });

  it("without object_kind, the event header decides", () => {
    const b = gitlabFixture("job");
    delete b.object_kind;
    expect(deliver("Job Hook", b)).toMatchObject({ kind: "ci", ci: { conclusion: "created" } });
    expect(deliver(undefined, b)).toEqual({ provider: "gitlab", deliveryId: KEY, event: "", repository: "gitlab-org/gitlab-test", kind: "unknown" });
  });

  it("events we do not act on are unknown, with their name kept", () => {
    const note = { object_kind: "note", event_type: "note", object_attributes: { id: 1243, note: "This is a commit comment.", noteable_type: "Commit" } };
    expect(deliver("Note Hook", note)).toEqual({ provider: "gitlab", deliveryId: KEY, event: "Note Hook", kind: "unknown" });
    const issue = { object_kind: "issue", object_attributes: { iid: 23, action: "open" } };
    expect(deliver("Issue Hook", issue)).toEqual({ provider: "gitlab", deliveryId: KEY, event: "Issue Hook", kind: "unknown" });
  });

  it("normalizeWebhook dispatches on the provider", () => {
    expect(normalizeWebhook("gitlab", { "X-Gitlab-Event": "Pipeline Hook" }, gitlabFixture("pipeline"))).toMatchObject({ provider: "gitlab", kind: "ci" });
  });
});

describe("helpers", () => {
  it("ciStatusOf: seed 004's mapping", () => {
    for (const s of ["success", "neutral", "passed", "SUCCESS"]) expect(ciStatusOf(s), s).toBe("success");
    for (const s of ["in_progress", "queued", "pending", "running", "created", "waiting"]) expect(ciStatusOf(s), s).toBe("pending");
    for (const s of ["failure", "failed", "timed_out", "cancelled", "canceled", "action_required"]) expect(ciStatusOf(s), s).toBe("failure");
    for (const s of [undefined, "", "completed", "unknown", "__proto__", "constructor"]) expect(ciStatusOf(s), String(s)).toBeUndefined();
  });

  it("parseRef", () => {
    expect(parseRef("refs/heads/feature/x")).toEqual({ branch: "feature/x" });
    expect(parseRef("refs/tags/v1")).toEqual({ tag: "v1" });
    expect(parseRef("refs/pull/1/merge")).toEqual({});
    expect(parseRef("refs/heads/")).toEqual({});
    expect(parseRef("main")).toEqual({ branch: "main" });
    expect(parseRef(undefined)).toEqual({});
  });

  it("runIdFromBranch: orch/run/<token> only", () => {
    expect(runIdFromBranch("orch/run/run-1_A")).toBe("run-1_A");
    expect(runIdFromBranch(`orch/run/${"a".repeat(128)}`)).toBe("a".repeat(128));
    for (const b of [
      undefined,
      "",
      "orch/run/",
      "orch/run/a/b",
      "orch/run/a.b",
      "orch/session/s1",
      "x/orch/run/a",
      "orch/run/a b",
      `orch/run/${"a".repeat(129)}`,
    ]) {
      expect(runIdFromBranch(b), String(b)).toBeUndefined();
    }
  });

  it("runIdFromText: a line of its own", () => {
    expect(runIdFromText("orch-run: r1")).toBe("r1");
    expect(runIdFromText("Title\n\nOrch-Run:r2\nSigned-off-by: x")).toBe("r2");
    expect(runIdFromText("a\r\n\torch-run:\tr3\t\r\nb")).toBe("r3");
    expect(runIdFromText("orch-run: r4\norch-run: r5")).toBe("r4");
    for (const t of [undefined, "", "see orch-run: r1 above", "orch-run: r1 and more", "orch-run:", "orch-run: a.b", "> orch-run: r1", "xorch-run: r1"]) {
      expect(runIdFromText(t), String(t)).toBeUndefined();
    }
  });
});
