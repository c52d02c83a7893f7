import fc from "fast-check";
import { SignalSchema } from "@orch/contracts";
import { describe, expect, it } from "vitest";
import { normalizeGitHub, normalizeGitLab } from "../src/surfaces/webhooks/index.js";
import { signalOf } from "../src/surfaces/webhooks/apply.js";
import { GITLAB_EVENT_HEADER, at, githubExample, githubExamples, gitlabFixture } from "./webhooks-support.js";

/**
 * A delivery is one signal (webhooks/apply.ts): what each normalized event becomes, and that every
 * one is a signal the core takes (SignalSchema), for the providers' own examples and for garbage.
 */

const AT = 1_700_000_000_000;

function valid(signal: unknown): void {
  const r = SignalSchema.safeParse(signal);
  expect(r.success, JSON.stringify(r.error?.issues)).toBe(true);
}

describe("the signal a delivery sends", () => {
  it("a CI status: ci_report with the check, its conclusion, the commit, and the delivery as the webhook fact", () => {
    const body = githubExample("check_run", 1);
    const e = normalizeGitHub({ "x-github-event": "check_run", "x-github-delivery": "d-7" }, body);
    const s = signalOf(e, AT);
    expect(s).toMatchObject({
      name: "ci_report",
      status: "failure",
      conclusion: "failure",
      check: at(body, "check_run").name,
      sha: at(body, "check_run").head_sha,
      provider: "github",
      at: AT,
      facts: { webhook: { event: "ci.failure", provider: "github", deliveryId: "d-7", at: AT } },
    });
    expect(s).toMatchObject({ jobId: at(body, "check_run").id });
    valid(s);
    const job = signalOf(normalizeGitLab({ "x-gitlab-event": "Job Hook" }, gitlabFixture("job")), AT);
    expect(job).toMatchObject({ name: "ci_report", jobId: 1977 });
    valid(job);
  });

  it("reviews: review_report with the state, the reviewer, the text and line comments", () => {
    const body = githubExample("pull_request_review", 0);
    Object.assign(at(body, "review"), { state: "changes_requested", body: "Please add a test" });
    const r = signalOf(normalizeGitHub({ "x-github-event": "pull_request_review", "x-github-delivery": "d-9" }, body), AT);
    expect(r).toMatchObject({
      name: "review_report",
      state: "changes_requested",
      number: 2,
      reviewer: "Codertocat",
      body: "Please add a test",
      provider: "github",
      facts: { webhook: { event: "review.changes_requested", deliveryId: "d-9" } },
    });
    valid(r);
    const comment = signalOf(normalizeGitHub({ "x-github-event": "pull_request_review_comment" }, githubExample("pull_request_review_comment", 0)), AT);
    expect(comment).toMatchObject({ name: "review_report", state: "commented", comments: [{ path: "README.md" }] });
    valid(comment);
    const approval = gitlabFixture("merge_request");
    at(approval, "object_attributes").action = "approved";
    const a = signalOf(normalizeGitLab({ "x-gitlab-event": "Merge Request Hook" }, approval), AT);
    expect(a).toMatchObject({ name: "review_report", state: "approved", number: 1, reviewer: "root", provider: "gitlab" });
    valid(a);
    const note = signalOf(normalizeGitLab({ "x-gitlab-event": "Note Hook" }, gitlabFixture("note")), AT);
    expect(note).toMatchObject({ name: "review_report", state: "commented", body: "This MR needs work.", comments: [{ body: "This MR needs work." }] });
    valid(note);
  });

  it("pull requests: opened → pr_opened, merged → pr_merged, closed → pr_closed, anything else → set_facts", () => {
    const opened = signalOf(normalizeGitHub({ "x-github-event": "pull_request" }, githubExample("pull_request", 0)), AT);
    expect(opened).toMatchObject({ name: "pr_opened", number: 2, action: "opened", provider: "github" });
    const merged = githubExample("pull_request", 3);
    Object.assign(at(merged, "pull_request"), { merged: true });
    expect(signalOf(normalizeGitHub({ "x-github-event": "pull_request" }, merged), AT)).toMatchObject({ name: "pr_merged", number: 2, action: "closed" });
    const closed = githubExample("pull_request", 3);
    Object.assign(at(closed, "pull_request"), { merged: false, merged_at: null });
    expect(signalOf(normalizeGitHub({ "x-github-event": "pull_request" }, closed), AT)).toMatchObject({ name: "pr_closed" });
    const sync = { ...githubExample("pull_request", 0), action: "synchronize" };
    expect(signalOf(normalizeGitHub({ "x-github-event": "pull_request" }, sync), AT)).toMatchObject({
      name: "set_facts",
      facts: { webhook: { event: "pr.synchronize" }, pullRequest: { number: 2, action: "synchronize", merged: false } },
    });
    const mr = gitlabFixture("merge_request");
    Object.assign(at(mr, "object_attributes"), { action: "merge", state: "merged" });
    expect(signalOf(normalizeGitLab({ "x-gitlab-event": "Merge Request Hook" }, mr), AT)).toMatchObject({
      name: "pr_merged",
      action: "merge",
      provider: "gitlab",
    });
  });

  it("a push: set_facts with the webhook fact only; an unknown event: none", () => {
    const push = signalOf(normalizeGitHub({ "x-github-event": "push" }, githubExample("push", 4)), AT);
    expect(push).toEqual({ name: "set_facts", facts: { webhook: expect.objectContaining({ event: "push", provider: "github" }) } });
    expect(signalOf(normalizeGitHub({ "x-github-event": "ping" }, githubExample("ping", 0)), AT)).toBeNull();
  });

  it("every example GitHub and GitLab publish becomes a signal the core takes (or none)", () => {
    let sent = 0;
    for (const { event, body } of githubExamples()) {
      const s = signalOf(normalizeGitHub({ "x-github-event": event, "x-github-delivery": "d" }, body), AT);
      if (s) {
        valid(s);
        sent++;
      }
    }
    for (const [name, header] of Object.entries(GITLAB_EVENT_HEADER)) {
      const s = signalOf(normalizeGitLab({ "x-gitlab-event": header }, gitlabFixture(name as keyof typeof GITLAB_EVENT_HEADER)), AT);
      expect(s, name).not.toBeNull();
      valid(s);
    }
    expect(sent).toBeGreaterThan(20);
  });

  it("fields past the signal's bounds are cut, not refused: whatever a payload holds, the signal is valid (fast-check)", () => {
    const text = fc.oneof(fc.string(), fc.string({ minLength: 500, maxLength: 3_000 }), fc.constant("  "));
    fc.assert(
      fc.property(text, text, text, fc.integer(), fc.boolean(), (name, url, sha, number, merged) => {
        const run = githubExample("check_run", 1);
        Object.assign(at(run, "check_run"), { name, html_url: url, details_url: url, head_sha: sha });
        const pr = githubExample("pull_request", 3);
        Object.assign(at(pr, "pull_request"), { number, merged, html_url: url, head: { ref: "b", sha } });
        pr.number = number;
        for (const [event, body] of [
          ["check_run", run],
          ["pull_request", pr],
        ] as const) {
          const s = signalOf(normalizeGitHub({ "x-github-event": event }, body), AT);
          expect(s).not.toBeNull();
          valid(s);
        }
      }),
      { numRuns: 300 },
    );
  });
});
