import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ticketRunId } from "@orch/contracts";
import { FakeGitHub, FakeLinear, FakeShortcut, freePort, http, Stack, waitFor } from "@orch/testing";

/**
 * Ticket intake on a real stack against local trackers speaking Linear's GraphQL and Shortcut's
 * REST (the hub's real clients): assigned tickets become ticket runs exactly once, across a second
 * core replica starting and syncing at once, a core SIGKILL and an agent hub SIGKILL; a run's stages
 * move its ticket's state and comment once per stage, and a ticket cancelled on the tracker abandons
 * its run; the run's pull request is attached once, even when the hub is killed mid-update and its
 * work redelivered; a tracker answering 500s trips the breaker (event, view) and the intake resumes
 * when it heals; writes the tracker fails for longer than the hub's tries wait in the intake and land
 * once when it heals, though their run ended meanwhile. Timings are short through configuration (a
 * sync a second, small backoff, two quick tries in the hub).
 */

const LINEAR_KEY = "lin_api_intake_test_0123456789";
const SHORTCUT_TOKEN = "sc-token-intake-test-0123456789";
const GITHUB_TOKEN = "ghp_intake_test_0123456789";

let linear: FakeLinear;
let stack: Stack;
let api: string;

const intakeEnv = (apiUrl: string): Record<string, string> => ({
  ORCH_TICKET_INTAKE_ENABLED: "true",
  ORCH_LINEAR_SYNC_INTERVAL_SECS: "1",
  ORCH_LINEAR_API_URL: apiUrl,
  // Version 1 of the ticket pipeline needs no forge: its runs wait at AwaitingYourReview.
  ORCH_TICKET_INTAKE_DEFINITION: "ticket@1",
  ORCH_LINEAR_WORKFLOW_COMMENT_SUMMARIES: "true",
  ORCH_TICKET_INTAKE_BACKOFF_MS: "200",
  ORCH_TICKET_INTAKE_BACKOFF_MAX_MS: "400",
  ORCH_TICKET_INTAKE_BREAKER_FAILURES: "3",
  ORCH_TICKET_INTAKE_BREAKER_COOLDOWN_MS: "1500",
});

beforeAll(async () => {
  linear = await new FakeLinear(LINEAR_KEY).start();
  stack = await Stack.start({
    env: intakeEnv(linear.apiUrl),
    serviceEnv: {
      gateway: { ORCH_RATE_LIMIT_ENABLED: "false" },
      "agent-hub": { LINEAR_API_KEY: LINEAR_KEY, ORCH_TICKET_UPDATE_TRIES: "2", ORCH_TICKET_UPDATE_BACKOFF_MS: "100" },
    },
  });
  api = `${stack.baseUrl}/api/v1`;
});

afterAll(async () => {
  await stack?.stop();
  await linear?.stop();
});

const ok = (r: { status: number; text: string; json: () => any }, status = 200) => {
  expect(r.status, r.text).toBe(status);
  return r.json();
};
const run = async (id: string) => {
  const r = await http("GET", `${api}/runs/${id}`);
  return r.status === 200 ? r.json() : undefined;
};
const history = async (id: string): Promise<any[]> => ok(await http("GET", `${api}/runs/${id}/history`)).items;
const ticketRuns = async (provider: string): Promise<any[]> => ok(await http("GET", `${api}/runs?label=tracker:${provider}&limit=500`)).items;
const INTAKE = "intake-linear";

describe("ticket intake (Linear)", () => {
  it("takes each assigned ticket in once: across a second core replica, a core SIGKILL and an agent hub SIGKILL", async () => {
    const a = linear.addIssue({ title: "Greet users", description: "Say hello", labels: ["backend"] });
    const b = linear.addIssue({ title: "Fix the footer" });
    linear.addIssue({ title: "Someone else's", assignedToMe: false });

    const view = await waitFor(async () => ((await run(INTAKE))?.intake?.counts.taken === 2 ? (await run(INTAKE)).intake : undefined), {
      timeoutMs: 30_000,
      what: "the intake to take two tickets in",
    });
    expect(view).toMatchObject({ provider: "ticketing.linear", state: "active", everyMs: 1_000 });
    const first = await waitFor(async () => run(ticketRunId("ticketing.linear", a.id)), { what: "the first ticket's run" });
    expect(first).toMatchObject({ definition: { id: "ticket", version: 1 }, title: `${a.identifier}: Greet users`, labels: { ticket: a.identifier } });
    expect(first.input).toMatchObject({ key: a.identifier, title: "Greet users", description: "Say hello", labels: ["backend"] });
    // The request carried the key from the hub's environment; nothing the hub says carries it.
    expect(linear.requests.some((r) => r.headers.authorization === LINEAR_KEY)).toBe(true);

    // A second core replica starts (its start-up sets the intake's rules again: the same, nothing changes).
    const second = await stack.spawn("orchestrator", { ORCH_INSTANCE_ID: "replica-b", ORCH_GRPC_PORT: String(await freePort()) });
    const c = linear.addIssue({ title: "Add a dark theme" });
    await waitFor(async () => ((await run(ticketRunId("ticketing.linear", c.id))) ? true : undefined), { timeoutMs: 20_000, what: "the third run" });

    // The core, then the agent hub, killed; a ticket added while each is down.
    await stack.kill("orchestrator");
    const d = linear.addIssue({ title: "Log slow queries" });
    await stack.restart("orchestrator");
    await waitFor(async () => ((await run(ticketRunId("ticketing.linear", d.id))) ? true : undefined), { timeoutMs: 30_000, what: "the fourth run" });
    await stack.kill("agent-hub");
    const e = linear.addIssue({ title: "Cache the avatars" });
    await stack.restart("agent-hub");
    await waitFor(async () => ((await run(ticketRunId("ticketing.linear", e.id))) ? true : undefined), { timeoutMs: 30_000, what: "the fifth run" });
    await second.stop();

    // Some syncs later: one run per ticket, each taken in once.
    const syncs = (await run(INTAKE)).intake.syncs;
    await waitFor(async () => ((await run(INTAKE)).intake.syncs >= syncs + 2 ? true : undefined), { timeoutMs: 20_000, what: "two more syncs" });
    const ids = (await ticketRuns("ticketing.linear")).map((r) => r.id).sort();
    expect(ids).toEqual([a, b, c, d, e].map((i) => ticketRunId("ticketing.linear", i.id)).sort());
    const taken = (await history(INTAKE)).filter((ev) => ev.type === "intake.ticket_taken").map((ev) => ev.data.ticketId);
    expect(taken.sort()).toEqual([a, b, c, d, e].map((i) => i.id).sort());
    for (const i of [a, b, c, d, e]) expect((await history(ticketRunId("ticketing.linear", i.id))).filter((ev) => ev.type === "run.created")).toHaveLength(1);
    expect((await run(INTAKE)).intake.counts).toMatchObject({ taken: 5, quarantined: 0 });
  });

  it("a run's stages move its ticket (once per stage, with a comment each); a ticket cancelled on Linear abandons its run", async () => {
    const t = linear.addIssue({ title: "Rename the config key" });
    const id = ticketRunId("ticketing.linear", t.id);
    await waitFor(async () => ((await run(id))?.stage === "AwaitingYourReview" ? true : undefined), { timeoutMs: 60_000, what: "the run to await review" });
    await waitFor(() => (linear.stateOf(t.id) === "In Review" ? true : undefined), { what: "the ticket In Review" });
    const issue = linear.issues.get(t.id)!;
    const stages = ["Planning", "Implementing", "PRDrafted", "AwaitingYourReview"];
    await waitFor(() => (stages.every((s) => issue.comments.some((c) => c.body.includes(`**${s}**`))) ? true : undefined), {
      what: "a comment for each stage",
    });
    for (const s of stages)
      expect(
        issue.comments.filter((c) => c.body.includes(`**${s}**`)),
        s,
      ).toHaveLength(1);

    // A person cancels the ticket on Linear: the next sync abandons the run.
    linear.move(t.id, "Canceled");
    const ended = await waitFor(
      async () => {
        const r = await run(id);
        return r?.status === "cancelled" ? r : undefined;
      },
      { timeoutMs: 20_000, what: "the run abandoned" },
    );
    expect(ended.stage).toBe("Abandoned");
    expect((await history(INTAKE)).some((ev) => ev.type === "intake.ticket_cancelled" && ev.data.runId === id)).toBe(true);
    expect(linear.stateOf(t.id)).toBe("Canceled");
  });

  it("the run's pull request is attached once, though the agent hub is killed mid-update and its work redelivered", async () => {
    const t = linear.addIssue({ title: "Speed up the build" });
    const id = ticketRunId("ticketing.linear", t.id);
    await waitFor(async () => ((await run(id))?.stage === "AwaitingYourReview" ? true : undefined), { timeoutMs: 60_000, what: "the run to await review" });
    const url = "https://github.com/acme/app/pull/41";
    // Linear fails every call: the hub keeps trying the attachment (backoff) until it is killed.
    linear.fail(500);
    const before = linear.requests.length;
    ok(await http("POST", `${api}/runs/${id}/actions/pr_opened`, { json: { number: 41, url, provider: "github" } }));
    const about = (from: number) => linear.requests.slice(from).some((r) => JSON.stringify(r.body ?? "").includes(t.id));
    await waitFor(() => (about(before) ? true : undefined), { what: "the hub trying to attach the link" });
    await stack.kill("agent-hub");
    linear.heal();
    await stack.restart("agent-hub");
    const issue = linear.issues.get(t.id)!;
    await waitFor(() => (issue.attachments.some((x) => x.url === url) ? true : undefined), { timeoutMs: 30_000, what: "the link attached" });
    // The same report again (a webhook redelivered): the same keyed write, nothing new.
    // (Counted before the report: the hub may look before the API has answered.)
    const n = linear.requests.length;
    ok(await http("POST", `${api}/runs/${id}/actions/pr_opened`, { json: { number: 41, url, provider: "github" } }));
    await waitFor(() => (about(n) ? true : undefined), { what: "the hub looking at the ticket again" });
    await new Promise((r) => setTimeout(r, 1_000));
    expect(issue.attachments.filter((x) => x.url === url)).toHaveLength(1);
    expect(issue.attachments.find((x) => x.url === url)?.title).toBe("Pull request #41");
  });

  it("a tracker failing trips the breaker (event and view), and the intake resumes when it heals", async () => {
    // (The outage above may have paused it: it is active again first.)
    await waitFor(async () => ((await run(INTAKE))?.intake?.state === "active" ? true : undefined), { timeoutMs: 20_000, what: "the intake active" });
    const count = async (type: string) => (await history(INTAKE)).filter((ev) => ev.type === type).length;
    const [pausedBefore, resumedBefore] = [await count("intake.paused"), await count("intake.resumed")];
    linear.fail(500);
    const paused = await waitFor(
      async () => {
        const v = (await run(INTAKE))?.intake;
        return v?.state === "paused" ? v : undefined;
      },
      { timeoutMs: 20_000, what: "the intake paused" },
    );
    expect(paused).toMatchObject({ lastError: { code: expect.any(String) }, paused: { reason: expect.stringMatching(/syncs failed in a row/) } });
    expect(paused.failures).toBeGreaterThanOrEqual(3);
    expect(await count("intake.paused")).toBe(pausedBefore + 1);
    // No retry storm: while paused, at most the cool-down's one probe.
    const calls = linear.requests.length;
    await new Promise((r) => setTimeout(r, 1_000));
    expect(linear.requests.length - calls).toBeLessThanOrEqual(2);

    linear.heal();
    const t = linear.addIssue({ title: "After the outage" });
    await waitFor(async () => ((await run(INTAKE))?.intake?.state === "active" ? true : undefined), { timeoutMs: 20_000, what: "the intake resumed" });
    expect(await count("intake.resumed")).toBe(resumedBefore + 1);
    await waitFor(async () => ((await run(ticketRunId("ticketing.linear", t.id))) ? true : undefined), { timeoutMs: 20_000, what: "the new ticket taken in" });
  });
  it("writes the tracker fails for longer than the hub's tries wait in the intake and land once when it heals, the run ended meanwhile", async () => {
    const t = linear.addIssue({ title: "Outlast the outage" });
    const id = ticketRunId("ticketing.linear", t.id);
    await waitFor(async () => ((await run(id))?.stage === "AwaitingYourReview" ? true : undefined), { timeoutMs: 60_000, what: "the run to await review" });
    await waitFor(() => (linear.stateOf(t.id) === "In Review" ? true : undefined), { what: "the ticket In Review" });
    // Every write of the stages so far has landed (the state first, then each stage's comment).
    const commented = (stage: string) => linear.issues.get(t.id)!.comments.some((c) => c.body.includes(`**${stage}**`));
    await waitFor(() => (commented("PRDrafted") && commented("AwaitingYourReview") ? true : undefined), { what: "the stages' comments" });
    const count = async (type: string) => (await history(INTAKE)).filter((ev) => ev.type === type && ev.data.ticket === t.identifier);
    // Linear down; the run is abandoned (its Abandoned stage writes Canceled and a comment) and ends.
    linear.fail(503);
    ok(await http("POST", `${api}/runs/${id}/actions/event`, { json: { event: "Cancelled" } }));
    await waitFor(async () => ((await run(id))?.status === "cancelled" ? true : undefined), { what: "the run ended" });
    const pending = await waitFor(
      async () => {
        const v = (await run(INTAKE))?.intake;
        return v?.pendingWrites === 1 && (await count("intake.write_failed")).length > 0 ? v : undefined;
      },
      { timeoutMs: 20_000, what: "the writes handed to the intake" },
    );
    expect(pending.writes[0]).toMatchObject({ ticket: t.identifier, keys: [`${id}.state.Abandoned.1`, `${id}.stage.Abandoned.1`] });
    // Down for a while longer than the hub's tries (and the intake's first backoffs): nothing lost.
    await new Promise((r) => setTimeout(r, 3_000));
    expect(linear.stateOf(t.id)).toBe("In Review");
    expect((await run(INTAKE)).intake.pendingWrites).toBe(1);
    expect(await count("intake.write_abandoned")).toEqual([]);

    linear.heal();
    await waitFor(async () => ((await count("intake.write_landed")).length === 1 ? true : undefined), { timeoutMs: 30_000, what: "the writes landed" });
    expect(linear.stateOf(t.id)).toBe("Canceled");
    const abandoned = () => linear.issues.get(t.id)!.comments.filter((c) => c.body.includes("**Abandoned**"));
    expect(abandoned()).toHaveLength(1);
    expect((await run(INTAKE)).intake.pendingWrites).toBe(0);
    // Some syncs later, nothing written twice.
    const syncs = (await run(INTAKE)).intake.syncs;
    await waitFor(async () => ((await run(INTAKE)).intake.syncs >= syncs + 2 ? true : undefined), { timeoutMs: 20_000, what: "two more syncs" });
    expect(abandoned()).toHaveLength(1);
    expect(await count("intake.write_landed")).toHaveLength(1);
  });
});

describe("ticket intake (Shortcut)", () => {
  let shortcut: FakeShortcut;
  let sc: Stack;

  beforeAll(async () => {
    shortcut = await new FakeShortcut(SHORTCUT_TOKEN).start();
    sc = await Stack.start({
      env: { ...intakeEnv(""), ORCH_LINEAR_API_URL: "http://127.0.0.1:9/graphql", ORCH_TICKETING_PROVIDER: "shortcut", ORCH_SHORTCUT_API_URL: shortcut.apiUrl },
      serviceEnv: { gateway: { ORCH_RATE_LIMIT_ENABLED: "false" }, "agent-hub": { SHORTCUT_API_TOKEN: SHORTCUT_TOKEN } },
    });
  });

  afterAll(async () => {
    await sc?.stop();
    await shortcut?.stop();
  });

  it("takes a story in once and moves it as its run goes", async () => {
    const s = shortcut.addStory({ name: "Export as CSV", description: "From the reports page" });
    const id = ticketRunId("ticketing.shortcut", String(s.id));
    const base = `${sc.baseUrl}/api/v1`;
    const got = await waitFor(
      async () => {
        const r = await http("GET", `${base}/runs/${id}`);
        return r.status === 200 && r.json().stage === "AwaitingYourReview" ? r.json() : undefined;
      },
      { timeoutMs: 60_000, what: "the story's run to await review" },
    );
    expect(got.input).toMatchObject({ title: "Export as CSV", description: "From the reports page" });
    await waitFor(() => (shortcut.stateOf(s.id) === "In Review" ? true : undefined), { what: "the story In Review" });
    const runs = ok(await http("GET", `${base}/runs?label=tracker:ticketing.shortcut&limit=500`)).items;
    expect(runs.map((r: any) => r.id)).toEqual([id]);
  });
});

describe("ticket intake (GitHub issues)", () => {
  let gh: FakeGitHub;
  let st: Stack;

  beforeAll(async () => {
    gh = await new FakeGitHub({ token: GITHUB_TOKEN, user: "orch-bot" }).start();
    gh.createRepository("acme/widgets");
    st = await Stack.start({
      env: {
        ...intakeEnv(""),
        ORCH_LINEAR_API_URL: "http://127.0.0.1:9/graphql",
        ORCH_TICKETING_PROVIDER: "github_issues",
        ORCH_GITHUB_ISSUES_REPOSITORY: "acme/widgets",
        ORCH_GITHUB_ISSUES_LABEL: "orchestrate",
        ORCH_GITHUB_API_URL: gh.apiUrl,
      },
      serviceEnv: { gateway: { ORCH_RATE_LIMIT_ENABLED: "false" }, "agent-hub": { GITHUB_TOKEN } },
    });
  });

  afterAll(async () => {
    await st?.stop();
    await gh?.stop();
  });

  it("takes the labelled issue in once, and shows its run's stage on it as a state label and comments, each once", async () => {
    const picked = gh.openIssue("acme/widgets", { title: "Dark mode", body: "Follow the system setting", labels: ["orchestrate"] });
    gh.openIssue("acme/widgets", { title: "Not for the robot", labels: ["question"] });
    const id = ticketRunId("ticketing.github_issues", `acme/widgets#${picked.number}`);
    const base = `${st.baseUrl}/api/v1`;
    const got = await waitFor(
      async () => {
        const r = await http("GET", `${base}/runs/${id}`);
        return r.status === 200 && r.json().stage === "AwaitingYourReview" ? r.json() : undefined;
      },
      { timeoutMs: 60_000, what: "the issue's run to await review" },
    );
    expect(got.input).toMatchObject({ title: "Dark mode", description: "Follow the system setting" });
    await waitFor(() => (gh.issue("acme/widgets", picked.number)!.labels.includes("state:In Review") ? true : undefined), { what: "the state label" });
    const issue = gh.issue("acme/widgets", picked.number)!;
    expect(issue.labels.filter((l) => l.startsWith("state:"))).toEqual(["state:In Review"]);
    expect(issue.labels).toContain("orchestrate");
    expect(issue.state).toBe("open");
    // A few more syncs: nothing more is taken in, nothing written twice.
    await new Promise((r) => setTimeout(r, 2_500));
    const runs = ok(await http("GET", `${base}/runs?label=tracker:ticketing.github_issues&limit=500`)).items;
    expect(runs.map((r: any) => r.id)).toEqual([id]);
    const markers = gh.issue("acme/widgets", picked.number)!.comments.map((c) => /<!-- orchestrator:(\S+) -->/.exec(c.body)?.[1]);
    expect(markers.length).toBeGreaterThan(0);
    expect(markers.every(Boolean)).toBe(true);
    expect(new Set(markers).size).toBe(markers.length);
  });
});
