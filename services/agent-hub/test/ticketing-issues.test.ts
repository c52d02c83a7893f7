import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ticketRunId, type TicketRef } from "@orch/contracts";
import { FakeGitHub, FakeGitLab } from "@orch/testing";
import { createTicketingProvider, TrackerApiError, TrackerRequestError, TrackerTokenMissingError, type TicketingProvider } from "../src/ticketing/index.js";

/**
 * GitHub's and GitLab's issues as trackers, through the forge clients (Octokit, gitbeaker) against
 * local servers speaking their REST wire format (pagination headers included): the issues a label
 * or an assignee selects, pull requests left out, the state label moved (and the issue closed for a
 * closing state), comments and links written once under retried writes, failures typed.
 */

describe("ticketing.github_issues (Octokit against a local GitHub)", () => {
  const gh = new FakeGitHub({ token: "ghp_issues", user: "orch-bot" });
  const repo = "acme/widgets";
  let t: TicketingProvider;
  beforeAll(async () => {
    await gh.start();
    gh.createRepository(repo);
    gh.createRepository("acme/other");
    t = createTicketingProvider("ticketing.github_issues", { apiUrl: gh.apiUrl, timeoutMs: 5_000 }, { GH_TOKEN: "ghp_issues" });
  });
  afterAll(() => gh.stop());

  it("lists the open issues a label selects, most recently updated first, across pages, without pull requests", async () => {
    const first = gh.openIssue(repo, { title: "Add OAuth", body: "Users sign in with GitHub", labels: ["orchestrate", "auth"] });
    for (let k = 0; k < 32; k++) gh.openIssue(repo, { title: `Issue ${k}`, labels: ["orchestrate"] });
    gh.openIssue(repo, { title: "Not labelled" });
    gh.openIssue("acme/other", { title: "Other repository", labels: ["orchestrate"] });
    const closed = gh.openIssue(repo, { title: "Closed", labels: ["orchestrate"] });
    gh.setIssueState(repo, closed.number, "completed");
    // A pull request with the label: GitHub lists it among the issues.
    const pr = gh.openPull(repo, { title: "A PR", head: "feature", base: "main" });
    pr.labels = ["orchestrate"];
    gh.commentOnIssue(first, "bump"); // now the most recently updated issue
    pr.updatedAt = new Date(Date.now() + 60_000).toISOString(); // and the pull request more recent still

    const all = await t.list({ repository: repo, label: "orchestrate", assignedToMe: true, limit: 100 });
    expect(all).toHaveLength(33);
    expect(all.some((x) => x.title === "A PR" || x.title === "Closed" || x.title === "Not labelled" || x.title === "Other repository")).toBe(false);
    expect(all[0]).toEqual({
      provider: "ticketing.github_issues",
      id: `${repo}#${first.number}`,
      key: `#${first.number}`,
      url: `${gh.url}/${repo}/issues/${first.number}`,
      repository: repo,
      title: "Add OAuth",
      description: "Users sign in with GitHub",
      labels: ["orchestrate", "auth"],
      state: "open",
      updatedAt: first.updatedAt,
    });
    expect(all[1]!.title).toBe("Issue 31");
    // Pages of min(limit, 100), followed by `link` until the limit; the label filter and state sent as GitHub takes them.
    const before = gh.apiRequests().length;
    expect(await t.list({ repository: repo, label: "orchestrate", limit: 20 })).toHaveLength(20);
    const sent = gh.apiRequests().slice(before);
    expect(sent.map((r) => r.query)).toEqual([
      { state: "open", labels: "orchestrate", sort: "updated", direction: "desc", per_page: "20" },
      // The pull request is skipped, so a second page tops it up.
      expect.objectContaining({ page: "2", per_page: "20" }),
    ]);
    expect(sent.every((r) => r.headers.authorization === "token ghp_issues")).toBe(true);
    // The same ticket names the same run, whatever the sync asked.
    expect(ticketRunId("ticketing.github_issues", all[0]!.id)).toBe(ticketRunId("ticketing.github_issues", `${repo}#${first.number}`));
  });

  it("selects by an assignee, or by the key's own user when nothing else is named; a query selecting everything is refused", async () => {
    const mine = gh.openIssue(repo, { title: "Assigned to the bot", assignees: ["orch-bot"] });
    const hers = gh.openIssue(repo, { title: "Assigned to ada", assignees: ["ada"] });
    expect((await t.list({ repository: repo, assignee: "ada", assignedToMe: false, limit: 50 })).map((x) => x.id)).toEqual([`${repo}#${hers.number}`]);
    const me = await t.list({ repository: repo, assignedToMe: true, limit: 50 });
    expect(me.map((x) => x.id)).toEqual([`${repo}#${mine.number}`]);
    expect(me[0]!.assignee).toBe("orch-bot");
    expect(gh.apiRequests().some((r) => r.path === "/user")).toBe(true);
    await expect(t.list({ repository: repo, assignedToMe: false, limit: 5 })).rejects.toBeInstanceOf(TrackerRequestError);
    await expect(t.list({ label: "x", limit: 5 })).rejects.toThrow(/repository/);
  });

  it("moves the state label (replacing the previous one) and closes the issue for done and cancelled states, each once", async () => {
    const i = gh.openIssue(repo, { title: "Move me", labels: ["orchestrate", "bug"] });
    const ref: TicketRef = { provider: "ticketing.github_issues", id: `${repo}#${i.number}`, key: `#${i.number}`, repository: repo };
    expect(await t.moveTo(ref, "In Progress")).toEqual({ changed: true });
    expect(gh.issue(repo, i.number)!.labels).toEqual(["orchestrate", "bug", "state:In Progress"]);
    expect(await t.moveTo(ref, "in progress")).toEqual({ changed: false });
    expect(await t.moveTo(ref, "In Review")).toEqual({ changed: true });
    expect(gh.issue(repo, i.number)!.labels).toEqual(["orchestrate", "bug", "state:In Review"]);
    const listed = await t.list({ repository: repo, label: "bug", limit: 5 });
    expect(listed[0]).toMatchObject({ state: "In Review" });
    expect((await t.list({ repository: repo, label: "bug", states: ["in review"], limit: 5 })).map((x) => x.id)).toEqual([ref.id]);
    expect(await t.list({ repository: repo, label: "bug", states: ["In Progress"], limit: 5 })).toEqual([]);

    expect(await t.moveTo(ref, "Done")).toEqual({ changed: true });
    expect(gh.issue(repo, i.number)).toMatchObject({ state: "closed", stateReason: "completed", labels: ["orchestrate", "bug", "state:Done"] });
    expect(await t.moveTo(ref, "Done")).toEqual({ changed: false });

    const c = gh.openIssue(repo, { title: "Cancel me", labels: ["orchestrate"] });
    const cref: TicketRef = { provider: "ticketing.github_issues", id: `${repo}#${c.number}`, key: `#${c.number}` };
    expect(await t.moveTo(cref, "Canceled")).toEqual({ changed: true });
    expect(gh.issue(repo, c.number)).toMatchObject({ state: "closed", stateReason: "not_planned" });
    // A sync that asks for closed issues sees it cancelled on the tracker.
    const seen = await t.list({ repository: repo, label: "orchestrate", states: ["closed"], limit: 100 });
    expect(seen.find((x) => x.id === cref.id)).toMatchObject({ state: "Canceled", stateType: "canceled" });
  });

  it("a person closing an issue as not planned shows as cancelled", async () => {
    const i = gh.openIssue(repo, { title: "Won't do", labels: ["wontdo"] });
    gh.setIssueState(repo, i.number, "not_planned");
    const [x] = await t.list({ repository: repo, label: "wontdo", states: ["open", "closed"], limit: 5 });
    expect(x).toMatchObject({ state: "closed", stateType: "canceled" });
  });

  it("comments once per key and links once per URL, also when the first write landed but its answer was lost", async () => {
    const i = gh.openIssue(repo, { title: "Write back", labels: ["orchestrate"] });
    const ref: TicketRef = { provider: "ticketing.github_issues", id: `${repo}#${i.number}`, key: `#${i.number}` };
    expect(await t.comment(ref, "run-1.stage.Implementing", "Implementing: the plan is committed")).toEqual({ changed: true });
    expect(await t.comment(ref, "run-1.stage.Implementing", "Implementing: the plan is committed")).toEqual({ changed: false });
    expect(gh.issue(repo, i.number)!.comments.map((c) => c.body)).toEqual([
      "Implementing: the plan is committed\n\n<!-- orchestrator:run-1.stage.Implementing -->",
    ]);

    // The create lands, its answer never comes (the call times out): the retried write finds it.
    const slow = createTicketingProvider("ticketing.github_issues", { apiUrl: gh.apiUrl, timeoutMs: 1_000 }, { GITHUB_TOKEN: "ghp_issues" });
    const hold = gh.holdAnswer((r) => r.method === "POST" && r.path.endsWith(`/issues/${i.number}/comments`));
    const lost = await slow.comment(ref, "run-1.stage.PRDrafted", "A draft PR is open").catch((e: unknown) => e);
    expect(lost).toBeInstanceOf(TrackerApiError);
    expect((lost as TrackerApiError).retryable).toBe(true);
    await hold.seen;
    hold.release();
    expect(await t.comment(ref, "run-1.stage.PRDrafted", "A draft PR is open")).toEqual({ changed: false });
    expect(gh.issue(repo, i.number)!.comments).toHaveLength(2);

    expect(await t.attachLink(ref, `${gh.url}/${repo}/pull/7`, "PR #7")).toEqual({ changed: true });
    expect(await t.attachLink(ref, `${gh.url}/${repo}/pull/7`, "PR #7")).toEqual({ changed: false });
    expect(gh.issue(repo, i.number)!.comments.at(-1)!.body).toContain(`Pull request: [PR #7](${gh.url}/${repo}/pull/7)`);
    expect(gh.issue(repo, i.number)!.comments).toHaveLength(3);
  });

  it("types failures: 5xx, 429 and a rate-limited 403 retryable; a bad token not, and never echoed; no token before anything is sent", async () => {
    for (const status of [500, 502, 503, 429, 403]) {
      gh.fail(status, 1);
      const e = await t.list({ repository: repo, label: "orchestrate", limit: 5 }).catch((x: unknown) => x);
      expect(e, String(status)).toBeInstanceOf(TrackerApiError);
      expect((e as TrackerApiError).status).toBe(status);
      expect((e as TrackerApiError).retryable, String(status)).toBe(true);
    }
    expect(await t.list({ repository: repo, label: "orchestrate", limit: 5 })).toHaveLength(5);
    const bad = createTicketingProvider("ticketing.github_issues", { apiUrl: gh.apiUrl }, { GITHUB_TOKEN: "ghp_wrong" });
    const e = (await bad.list({ repository: repo, label: "orchestrate", limit: 5 }).catch((x: unknown) => x)) as TrackerApiError;
    expect(e).toBeInstanceOf(TrackerApiError);
    expect(e.status).toBe(401);
    expect(e.retryable).toBe(false);
    expect(e.message).toContain("Bad credentials");
    expect(e.message).not.toContain("ghp_wrong");
    expect(() => createTicketingProvider("ticketing.github_issues", {}, {})).toThrow(TrackerTokenMissingError);
    expect(() => createTicketingProvider("ticketing.github_issues", {}, {})).toThrow(/GITHUB_TOKEN or GH_TOKEN/);
  });
});

describe("ticketing.gitlab_issues (gitbeaker against a local GitLab)", () => {
  const gl = new FakeGitLab({ token: "glpat-issues", user: "orch-bot" });
  const project = "acme/platform/widgets";
  let t: TicketingProvider;
  beforeAll(async () => {
    await gl.start();
    gl.createRepository(project);
    t = createTicketingProvider("ticketing.gitlab_issues", { apiUrl: gl.apiUrl, timeoutMs: 5_000 }, { GITLAB_TOKEN: "glpat-issues" });
  });
  afterAll(() => gl.stop());

  it("lists the opened issues a label selects, most recently updated first, with GitLab's offset pages", async () => {
    const first = gl.openIssue(project, { title: "Add OAuth", body: "Sign in with GitLab", labels: ["orchestrate", "auth"] });
    for (let k = 0; k < 24; k++) gl.openIssue(project, { title: `Issue ${k}`, labels: ["orchestrate"] });
    gl.openIssue(project, { title: "Not labelled" });
    const closed = gl.openIssue(project, { title: "Closed", labels: ["orchestrate"] });
    gl.setIssueState(project, closed.number, "completed");
    // A merge request numbered like an issue: GitLab's issues list never has it.
    gl.openPull(project, { title: "An MR", head: "feature", base: "main" }).labels = ["orchestrate"];
    gl.commentOnIssue(first, "bump");

    const all = await t.list({ repository: project, label: "orchestrate", limit: 100 });
    expect(all).toHaveLength(25);
    expect(all[0]).toEqual({
      provider: "ticketing.gitlab_issues",
      id: `${project}#${first.number}`,
      key: `#${first.number}`,
      url: `${gl.url}/${project}/-/issues/${first.number}`,
      repository: project,
      title: "Add OAuth",
      description: "Sign in with GitLab",
      labels: ["orchestrate", "auth"],
      state: "open",
      updatedAt: first.updatedAt,
    });
    const before = gl.apiRequests().length;
    expect((await t.list({ repository: project, label: "orchestrate", states: ["open"], limit: 10 })).map((x) => x.title)).toEqual([
      "Add OAuth",
      ...[23, 22, 21, 20, 19, 18, 17, 16, 15].map((k) => `Issue ${k}`),
    ]);
    const sent = gl.apiRequests().slice(before);
    expect(sent[0]!.path).toBe(`/api/v4/projects/${encodeURIComponent(project)}/issues`);
    expect(sent[0]!.query).toMatchObject({ state: "opened", labels: "orchestrate", order_by: "updated_at", sort: "desc", per_page: "10" });
    expect(sent[0]!.headers["private-token"]).toBe("glpat-issues");
  });

  it("selects by assignee_username, or the key's own user with scope=assigned_to_me", async () => {
    const mine = gl.openIssue(project, { title: "Assigned to the bot", assignees: ["orch-bot"] });
    const hers = gl.openIssue(project, { title: "Assigned to ada", assignees: ["ada"] });
    expect((await t.list({ repository: project, assignee: "ada", limit: 50 })).map((x) => x.id)).toEqual([`${project}#${hers.number}`]);
    expect((await t.list({ repository: project, assignedToMe: true, limit: 50 })).map((x) => x.id)).toEqual([`${project}#${mine.number}`]);
    expect(gl.apiRequests().at(-1)!.query.scope).toBe("assigned_to_me");
    await expect(t.list({ repository: project, assignedToMe: false, limit: 5 })).rejects.toBeInstanceOf(TrackerRequestError);
  });

  it("moves the state label and closes the issue for a closing state, each once", async () => {
    const i = gl.openIssue(project, { title: "Move me", labels: ["orchestrate", "state:Todo"] });
    const ref: TicketRef = { provider: "ticketing.gitlab_issues", id: `${project}#${i.number}`, key: `#${i.number}` };
    expect(await t.moveTo(ref, "In Progress")).toEqual({ changed: true });
    expect(gl.issue(project, i.number)!.labels).toEqual(["orchestrate", "state:In Progress"]);
    expect(await t.moveTo(ref, "In Progress")).toEqual({ changed: false });
    expect(await t.moveTo(ref, "Canceled")).toEqual({ changed: true });
    expect(gl.issue(project, i.number)).toMatchObject({ state: "closed", labels: ["orchestrate", "state:Canceled"] });
    expect(await t.moveTo(ref, "Canceled")).toEqual({ changed: false });
    const seen = await t.list({ repository: project, label: "orchestrate", states: ["Canceled"], limit: 100 });
    expect(seen.map((x) => [x.id, x.state, x.stateType])).toEqual([[ref.id, "Canceled", "canceled"]]);
    const put = gl.apiRequests().filter((r) => r.method === "PUT");
    expect(put.at(-1)!.body).toMatchObject({ labels: "orchestrate,state:Canceled", state_event: "close" });
  });

  it("notes once per key and links once per URL, also when the first write landed but its answer was lost", async () => {
    const i = gl.openIssue(project, { title: "Write back" });
    const ref: TicketRef = { provider: "ticketing.gitlab_issues", id: `${project}#${i.number}`, key: `#${i.number}` };
    expect(await t.comment(ref, "r.stage.InReview", "In review")).toEqual({ changed: true });
    expect(await t.comment(ref, "r.stage.InReview", "In review")).toEqual({ changed: false });
    const slow = createTicketingProvider("ticketing.gitlab_issues", { apiUrl: gl.apiUrl, timeoutMs: 1_000 }, { GITLAB_TOKEN: "glpat-issues" });
    const hold = gl.holdAnswer((r) => r.method === "POST" && r.path.endsWith(`/issues/${i.number}/notes`));
    const lost = await slow.comment(ref, "r.stage.Done", "Done").catch((e: unknown) => e);
    expect((lost as TrackerApiError).retryable).toBe(true);
    await hold.seen;
    hold.release();
    expect(await t.comment(ref, "r.stage.Done", "Done")).toEqual({ changed: false });
    expect(await t.attachLink(ref, `${gl.url}/${project}/-/merge_requests/3`, "!3")).toEqual({ changed: true });
    expect(await t.attachLink(ref, `${gl.url}/${project}/-/merge_requests/3`, "!3")).toEqual({ changed: false });
    expect(gl.issue(project, i.number)!.comments.map((c) => c.body.split("\n")[0])).toEqual([
      "In review",
      "Done",
      `Pull request: [!3](${gl.url}/${project}/-/merge_requests/3)`,
    ]);
  });

  it("types failures: 5xx and persistent 429 retryable, a bad token not, and never echoed", async () => {
    gl.fail(503, 1);
    const e1 = (await t.list({ repository: project, label: "orchestrate", limit: 5 }).catch((x: unknown) => x)) as TrackerApiError;
    expect(e1).toBeInstanceOf(TrackerApiError);
    expect(e1.status).toBe(503);
    expect(e1.retryable).toBe(true);
    // gitbeaker retries 429 itself, briefly; a tracker that keeps limiting is the intake's to back off from.
    gl.fail(429);
    const e2 = (await t.list({ repository: project, label: "orchestrate", limit: 5 }).catch((x: unknown) => x)) as TrackerApiError;
    gl.heal();
    expect(e2).toBeInstanceOf(TrackerApiError);
    expect(e2.retryable).toBe(true);
    expect(e2.message).toMatch(/429/);
    const bad = createTicketingProvider("ticketing.gitlab_issues", { apiUrl: gl.apiUrl }, { GITLAB_TOKEN: "glpat-wrong" });
    const e3 = (await bad.list({ repository: project, label: "orchestrate", limit: 5 }).catch((x: unknown) => x)) as TrackerApiError;
    expect(e3.status).toBe(401);
    expect(e3.retryable).toBe(false);
    expect(e3.message).not.toContain("glpat-wrong");
    expect(() => createTicketingProvider("ticketing.gitlab_issues", {}, {})).toThrow(/GITLAB_TOKEN/);
  });
});
