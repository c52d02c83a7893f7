import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ForgeProvider, RunView } from "@orch/contracts";
import { FakeGitHub, FakeGitLab, Stack, http, waitFor, type FakeForge, type HttpResponse, type RecordedForgeRequest } from "@orch/testing";

/**
 * Pull requests end to end, on both forges: the whole system (real nats-server, the five services
 * as processes, the stub executor doing real commits) with a project whose origin is a bare
 * repository served by a fake GitHub or GitLab over smart HTTP, the project's `forge` pointing at
 * the fake's API. No webhooks: the polling fallback (`pr.sync` every second) is all that tells the
 * run what happened on the forge.
 *
 *   a ticket run → stub plan, implementation, tests → `draft_pr` pushes and opens one draft PR →
 *     your approval (AwaitingYourReview → ReadyForReview) → `ready` marks the draft ready for review
 *     on the forge → checks green, a review approves → PendingMerge → `merge` merges on the forge → Done
 *   a failing check with a log → a fix attempt of `implement` told the log's tail → pushed → back
 *     to your review → checks green → merged
 *   two tickets on one base → its merge queue, in order: each brought up to the base, CI on the
 *     updated head, merged; the second changed after its approval (a late push), so the update finds
 *     what will merge is not what was approved: asked again, approved, merged
 *   the PR closed on the forge → Abandoned
 *   the agent hub SIGKILLed after the forge created the PR and before it answered → restarted, the
 *     step redelivered → exactly one PR, recorded on the run
 */

const TOKEN = { github: "ghp_e2eFakeToken0123456789abcdefABCD", gitlab: "glpat-e2eFakeToken0123456789ab" } as const;
const PUBLIC_URL = "https://orch.example.test";
const HERMETIC = { ...process.env, GIT_CONFIG_GLOBAL: "/dev/null", GIT_CONFIG_NOSYSTEM: "1" };

const git = (cwd: string, ...args: string[]) =>
  execFileSync("git", ["-c", "user.name=Test", "-c", "user.email=test@localhost", ...args], { cwd, env: HERMETIC, encoding: "utf8" }).trim();

interface Forge {
  provider: ForgeProvider;
  repository: string;
  fake: FakeForge;
  /** The request that creates a pull request (merge request). */
  isCreate: (r: RecordedForgeRequest) => boolean;
}

const tmp = mkdtempSync(join(tmpdir(), "orch-forge-e2e-"));
const forges: Record<ForgeProvider, Forge> = {
  github: {
    provider: "github",
    repository: "acme/widgets",
    fake: new FakeGitHub({ token: TOKEN.github }),
    isCreate: (r) => r.method === "POST" && /^\/repos\/acme\/widgets\/pulls$/.test(r.path),
  },
  gitlab: {
    provider: "gitlab",
    repository: "acme/platform/widgets",
    fake: new FakeGitLab({ token: TOKEN.gitlab }),
    isCreate: (r) => r.method === "POST" && /^\/api\/v4\/projects\/[^/]+\/merge_requests$/.test(r.path),
  },
};

let stack: Stack;

beforeAll(async () => {
  await Promise.all(Object.values(forges).map((f) => f.fake.start()));
  for (const f of Object.values(forges)) f.fake.createRepository(f.repository);
  stack = await Stack.start({
    serviceEnv: {
      orchestrator: { ORCH_PR_POLL_INTERVAL_SECS: "1", ORCH_PUBLIC_URL: PUBLIC_URL },
      "agent-hub": { GITHUB_TOKEN: TOKEN.github, GITLAB_TOKEN: TOKEN.gitlab },
    },
  });
  for (const f of Object.values(forges)) {
    // The project's checkout: a clone whose origin is the forge's URL (no credentials in it).
    const local = join(tmp, f.provider);
    git(tmp, "clone", "-q", f.fake.barePath(f.repository), local);
    git(local, "remote", "set-url", "origin", f.fake.cloneUrl(f.repository));
    ok(
      await api("POST", "/api/v1/projects", {
        id: `e2e-${f.provider}`,
        name: `E2E on ${f.provider}`,
        localPath: local,
        baseBranch: "main",
        forge: { provider: f.provider, repository: f.repository, apiUrl: f.fake.apiUrl },
      }),
      201,
    );
  }
}, 90_000);

afterAll(async () => {
  await stack?.stop();
  await Promise.all(Object.values(forges).map((f) => f.fake.stop()));
  rmSync(tmp, { recursive: true, force: true });
});

const api = (method: string, path: string, json?: unknown) => http(method, `${stack.baseUrl}${path}`, json !== undefined ? { json } : {});

function ok(r: HttpResponse, status = 200): any {
  expect(r.status, r.text).toBe(status);
  return r.json();
}

const getRun = async (id: string): Promise<RunView> => ok(await api("GET", `/api/v1/runs/${id}`));

const until = (id: string, pred: (r: RunView) => boolean, what: string, timeoutMs = 40_000): Promise<RunView> =>
  waitFor(
    async () => {
      const r = await getRun(id);
      return pred(r) ? r : undefined;
    },
    { timeoutMs, intervalMs: 100, what: `${id}: ${what}` },
  ).catch(async (err: Error) => {
    const r = await getRun(id).catch(() => undefined);
    const recent = (await history(id).catch(() => [])).slice(-25).map((e) => `${e.type} ${JSON.stringify(e.data ?? {}).slice(0, 200)}`);
    throw new Error(
      `${err.message}\nthe run: ${JSON.stringify({ status: r?.status, stage: r?.stage, pullRequest: r?.pullRequest, mergeQueue: r?.mergeQueue, steps: r?.steps.map((s) => [s.id, s.status, s.error]) })}\nits last events:\n${recent.join("\n")}`,
    );
  });

const history = async (id: string): Promise<{ type: string; data: any }[]> => {
  return ok(await api("GET", `/api/v1/runs/${id}/history`)).items as { type: string; data: any }[];
};

const event = (id: string, name: string, facts?: Record<string, unknown>) =>
  api("POST", `/api/v1/runs/${id}/actions/event`, { event: name, ...(facts ? { facts } : {}) });

/** A ticket run, accepted: plan, implement, test and open its draft PR follow by themselves. */
async function startTicket(f: Forge, key: string, branch: string): Promise<string> {
  const run = ok(
    await api("POST", "/api/v1/runs", {
      definition: "ticket",
      projectId: `e2e-${f.provider}`,
      title: key,
      input: { key, title: `Greet users by name (${key})`, description: `As a user I want to be greeted by name (${key}).`, branch },
    }),
    201,
  );
  expect(run.definition).toMatchObject({ id: "ticket", version: 2 });
  ok(await event(run.id, "TicketAccepted"));
  return run.id as string;
}

/** Waits for the run's draft PR to be recorded, and the ticket to await your review. */
const prRecorded = (id: string) =>
  until(id, (r) => r.pullRequest?.number !== undefined && r.stage === "AwaitingYourReview", "its draft PR recorded, awaiting your review", 60_000);

describe.each([forges.github, forges.gitlab])("$provider, end to end through polling", (f) => {
  const { fake, repository } = f;
  const pullsOn = (branch: string) => fake.pullsOf(repository).filter((p) => p.head === branch);

  /**
   * As CI on the forge would: once the merge queue has brought the run's branch up to the base (a new
   * head when the base moved), its checks run there, and pass. Then the run merges.
   */
  const mergedThroughQueue = async (id: string, what: string): Promise<RunView> => {
    const r = await until(
      id,
      (x) => x.status === "completed" || (x.mergeQueue?.state === "checking" && x.mergeQueue.headSha !== undefined),
      `${what}: its turn`,
      60_000,
    );
    if (r.status !== "completed") fake.setCheck(repository, r.mergeQueue!.headSha!, { name: "build", status: "success", log: "ok on the updated head" });
    return until(id, (x) => x.status === "completed", what, 60_000);
  };

  it("a ticket: its draft PR opened once on the forge, your approval, checks green and an approving review → merged by the run → Done", async () => {
    const branch = `eng-1-${f.provider}`;
    const id = await startTicket(f, "ENG-1", branch);
    const opened = await prRecorded(id);

    // Exactly one draft PR, from the run's branch into main, its body linking the run.
    const pulls = pullsOn(branch);
    expect(pulls).toHaveLength(1);
    const pull = pulls[0]!;
    expect(pull).toMatchObject({ base: "main", draft: true, state: "open" });
    expect(pull.title).toContain("ENG-1: Greet users by name");
    expect(pull.body).toContain(`${PUBLIC_URL}/api/v1/runs/${id}`);
    expect(pull.body).toContain(`<!-- orchestrator:run=${id} -->`);
    // The branch on the forge is the run's work: the stub's code, its test, its plan.
    const head = fake.headOf(repository, branch)!;
    expect(opened.pullRequest).toMatchObject({
      provider: f.provider,
      repository,
      number: pull.number,
      head: branch,
      base: "main",
      headSha: head,
      state: "open",
    });
    const files = fake.git(repository, ["ls-tree", "-r", "--name-only", head]).split("\n");
    expect(files).toEqual(expect.arrayContaining(["README.md", "src/eng-1.mjs", "test/eng-1.test.mjs", "plans/eng-1.md"]));
    const ev = await history(id);
    expect(ev.filter((e) => e.type === "pr.opened").map((e) => e.data)).toEqual([
      expect.objectContaining({ number: pull.number, created: true, head: branch, headSha: head, draft: true, stepId: "draft_pr" }),
    ]);
    // The polling fallback is on: a sync is dispatched every second while the PR is open.
    await until(id, (r) => r.pullRequest?.sync !== undefined, "a first pr.sync");

    // Your approval marks the draft ready for review on the forge; then CI passes and a reviewer approves.
    ok(await event(id, "ApprovalGranted", { approval: true }));
    expect((await getRun(id)).stage).toBe("ReadyForReview");
    const ready = await until(id, (r) => r.steps.find((s) => s.id === "ready")?.status === "completed", "the draft marked ready");
    expect(ready.pullRequest).toMatchObject({ number: pull.number, draft: false });
    expect(fake.pull(repository, pull.number)).toMatchObject({ draft: false, state: "open" });
    expect(fake.pull(repository, pull.number)!.title).not.toMatch(/^draft/i);
    expect((await history(id)).filter((e) => e.type === "pr.ready").map((e) => e.data)).toEqual([
      expect.objectContaining({ number: pull.number, stepId: "ready" }),
    ]);
    fake.setCheck(repository, head, { name: "build", status: "success", log: "all good" });
    fake.addReview(repository, pull.number, { state: "approved", author: "lee", body: "Looks good." });

    const done = await mergedThroughQueue(id, "Done, merged by its merge step");
    expect(done.stage).toBe("Done");
    expect(done.steps.find((s) => s.id === "merge")).toMatchObject({ status: "completed" });
    expect(done.pullRequest).toMatchObject({ state: "merged", number: pull.number, review: { state: "approved", reviewer: "lee" } });
    expect(done.pullRequest!.checks).toMatchObject({ state: "success", byName: { build: { status: "success" } } });
    // Merged on the forge (squash: one commit on main with the run's files).
    expect(fake.pull(repository, pull.number)!.state).toBe("merged");
    const main = fake.headOf(repository, "main")!;
    expect(done.pullRequest!.mergeSha).toBe(main);
    expect(fake.git(repository, ["ls-tree", "-r", "--name-only", main]).split("\n")).toContain("src/eng-1.mjs");

    // What polling reported, each once: the check, the review; the stages it moved the ticket through.
    const after = await history(id);
    const reviewed = after.filter((e) => e.type === "pr.reviewed");
    expect(reviewed.map((e) => [e.data.state, e.data.actor])).toEqual([["approved", `poll:${f.provider}`]]);
    const stages = after.filter((e) => e.type === "run.stage_changed").map((e) => e.data.to);
    expect(stages.slice(stages.indexOf("ReadyForReview"))).toEqual(["ReadyForReview", "InReview", "PendingMerge", "Done"]);
    expect(after.filter((e) => e.type === "pr.merged")).toHaveLength(1);
    expect(pullsOn(branch)).toHaveLength(1);
    // The hub sent each fact once, though it looked every second; no look failed.
    const hub = stack.service("agent-hub").lines.filter((l) => l.runId === id);
    const sent = hub.filter((l) => l.msg === "pr.sync: reported what changed").flatMap((l) => l.sent as string[]);
    expect(sent).toEqual(expect.arrayContaining([`poll:${id}:ci:build:${head}:success:${fake.jobsOf(repository, head)[0]!.id}`]));
    expect(new Set(sent).size).toBe(sent.length);
    expect(hub.filter((l) => String(l.msg).startsWith("pr.sync failed"))).toEqual([]);
  }, 90_000);

  // A failing check with a log → a fix attempt that sees the log's tail → a push → checks green.
  // Only when the ticket's definition has a CI fix policy (being added alongside this test).
  it("a failing check with a log: a fix attempt of implement told the log's tail, pushed; then green", async () => {
    const branch = `eng-2-${f.provider}`;
    const id = await startTicket(f, "ENG-2", branch);
    const opened = await prRecorded(id);
    const number = opened.pullRequest!.number!;
    const head = fake.headOf(repository, branch)!;
    ok(await event(id, "ApprovalGranted", { approval: true }));
    const marker = `src/eng-2.mjs(3,7): error TS2322 on ${f.provider}`;
    const log = [...Array.from({ length: 400 }, (_, i) => `step ${i}: ok`), marker, "Error: Process completed with exit code 2."].join("\n");
    fake.setCheck(repository, head, { name: "build", status: "failure", log });

    await until(id, (r) => r.pullRequest?.checks?.byName.build?.status === "failure", "the failure recorded");
    const fixed = await until(
      id,
      (r) => {
        const s = r.steps.find((x) => x.id === "implement");
        return s !== undefined && s.status === "completed" && JSON.stringify(s.output ?? {}).includes("error TS2322");
      },
      "a fix attempt of implement that was told the log",
      60_000,
    );
    expect(JSON.stringify(fixed.steps.find((x) => x.id === "implement")!.output)).toContain(marker.replace(/"/g, '\\"'));
    expect((await history(id)).some((e) => e.type === "ci.fix_attempt")).toBe(true);
    // The fix reached the PR's branch, and the PR came back to you (what you approved changed).
    await until(id, (r) => r.stage === "AwaitingYourReview", "your review again");
    const local = join(tmp, f.provider);
    await waitFor(() => fake.headOf(repository, branch) === git(local, "rev-parse", branch), { timeoutMs: 30_000, what: "the fix pushed" });
    const newHead = fake.headOf(repository, branch)!;
    expect(newHead).not.toBe(head);
    // Its checks run again on the new head: green.
    fake.setCheck(repository, newHead, { name: "build", status: "success", log: "fixed" });
    await until(id, (r) => r.pullRequest?.checks?.state === "success", "checks green again");
    ok(await event(id, "ApprovalGranted", { approval: true }));
    // Marked ready after your first approval, it is no draft any more: this time `ready` has nothing to do.
    const again = await until(id, (r) => ["completed", "skipped"].includes(r.steps.find((s) => s.id === "ready")?.status ?? ""), "ready again");
    expect(again.pullRequest?.draft).toBe(false);
    expect(fake.pull(repository, number)!.draft).toBe(false);
    fake.addReview(repository, number, { state: "approved", author: "lee" });
    expect((await mergedThroughQueue(id, "Done after the fix")).stage).toBe("Done");
  }, 120_000);

  it("two tickets on one base go through its merge queue in order; the second's update changes what was approved, so it is asked again", async () => {
    /** A ticket approved by you and by a reviewer, its checks green on its head: it joins the queue. */
    const approved = async (key: string, branch: string) => {
      const id = await startTicket(f, key, branch);
      const opened = await prRecorded(id);
      const number = opened.pullRequest!.number!;
      ok(await event(id, "ApprovalGranted", { approval: true }));
      await until(id, (r) => r.pullRequest?.draft === false, `${key} marked ready for review`);
      expect(fake.pull(repository, number)!.draft).toBe(false);
      const head = fake.headOf(repository, branch)!;
      fake.setCheck(repository, head, { name: "build", status: "success", log: "ok" });
      fake.addReview(repository, number, { state: "approved", author: "lee" });
      return { id, number, head };
    };
    const a = await approved("ENG-6", `eng-6-${f.provider}`);
    await until(a.id, (r) => r.mergeQueue !== undefined || r.status === "completed", "A in the queue");
    const branchB = `eng-7-${f.provider}`;
    const b = await approved("ENG-7", branchB);
    await until(b.id, (r) => r.stage === "PendingMerge", "B approved and green");
    // After B's approval, a commit lands on its branch (someone pushed to the PR): what will merge is not what was approved.
    const work = join(tmp, `${f.provider}-pusher`);
    git(tmp, "clone", "-q", "--branch", branchB, fake.barePath(repository), work);
    git(work, "commit", "-q", "--allow-empty", "-m", "tweak after the approval");
    writeFileSync(join(work, "src", "eng-7.mjs"), "export const late = 1;\n", { flag: "a" });
    git(work, "commit", "-q", "-am", "a late change after the approval");
    git(work, "push", "-q", "origin", branchB);

    // A merges first, through the queue; then B gets its turn.
    const doneA = await mergedThroughQueue(a.id, "A merged");
    expect(doneA.stage).toBe("Done");
    const histA = (await history(a.id)).map((e) => e.type);
    expect(histA).toEqual(expect.arrayContaining(["mq.joined", "mq.turn", "mq.updated", "mq.merging", "mq.left"]));
    const invalidated = await until(b.id, (r) => r.pullRequest?.review?.state === "dismissed", "B's approval asked for again", 60_000);
    expect(invalidated.stage).toBe("InReview");
    expect(invalidated.mergeQueue).toBeUndefined();
    const evB = await history(b.id);
    const turnB = evB.findIndex((e) => e.type === "mq.turn");
    const mergedA = (await history(a.id)).find((e) => e.type === "mq.left")!;
    expect(turnB).toBeGreaterThanOrEqual(0);
    expect(evB.find((e) => e.type === "pr.approval_invalidated")!.data).toMatchObject({ reason: expect.stringMatching(/changed what was approved/) });
    expect(mergedA.data).toMatchObject({ outcome: "merged" });
    // The queue's own view: empty again; its history says who entered and left, in order.
    const queue = invalidated.pullRequest && (evB.find((e) => e.type === "mq.joined")!.data.queue as string);
    // (B's leaving reaches the queue a moment after B changed.)
    const q = await waitFor(
      async () => {
        const v = ok(await api("GET", `/api/v1/runs/${queue}`));
        return v.mergeQueue?.entries?.length === 0 ? v : undefined;
      },
      { timeoutMs: 10_000, what: "the queue empty" },
    );
    expect(q).toMatchObject({ view: "merge_queue", mergeQueue: { entries: [] } });
    const order = (await history(queue!)).filter((e) => e.type === "mq.turn_given").map((e) => e.data.runId);
    expect(order.filter((r) => r === a.id || r === b.id)).toEqual([a.id, b.id]);

    // Approved again, on its updated head, green: it joins again and merges.
    const headB = fake.headOf(repository, branchB)!;
    expect(headB).not.toBe(b.head);
    fake.setCheck(repository, headB, { name: "build", status: "success", log: "ok" });
    fake.addReview(repository, b.number, { state: "approved", author: "lee", body: "Still good." });
    const doneB = await mergedThroughQueue(b.id, "B merged after its new approval");
    expect(doneB.stage).toBe("Done");
    expect(fake.git(repository, ["show", "main:src/eng-7.mjs"])).toContain("late");
  }, 180_000);

  it("a PR closed on the forge: the run is Abandoned, and polling stops", async () => {
    const branch = `eng-3-${f.provider}`;
    const id = await startTicket(f, "ENG-3", branch);
    const opened = await prRecorded(id);
    fake.closePull(repository, opened.pullRequest!.number!);
    const run = await until(id, (r) => r.status === "cancelled", "Abandoned");
    expect(run.stage).toBe("Abandoned");
    expect(run.pullRequest).toMatchObject({ state: "closed", number: opened.pullRequest!.number });
    expect(run.pullRequest!.nextPollAt).toBeUndefined();
    const ev = await history(id);
    expect(ev.filter((e) => e.type === "pr.closed").map((e) => e.data)).toEqual([
      expect.objectContaining({ outcome: "event", event: "Cancelled", actor: `poll:${f.provider}` }),
    ]);
  }, 90_000);

  it("the agent hub killed after the forge created the PR and before it answered: redelivered, exactly one PR, recorded", async () => {
    const branch = `eng-4-${f.provider}`;
    const hold = fake.holdAnswer((r) => f.isCreate(r) && JSON.stringify(r.body ?? "").includes(branch));
    const id = await startTicket(f, "ENG-4", branch);
    await hold.seen;
    // The forge has the PR; the hub never hears of it.
    expect(pullsOn(branch)).toHaveLength(1);
    await stack.kill("agent-hub");
    hold.release();
    expect((await getRun(id)).pullRequest).toBeUndefined();
    await stack.restart("agent-hub");

    const run = await prRecorded(id);
    expect(pullsOn(branch)).toHaveLength(1);
    expect(run.pullRequest).toMatchObject({ number: pullsOn(branch)[0]!.number, head: branch, state: "open" });
    const ev = await history(id);
    expect(ev.filter((e) => e.type === "pr.opened").map((e) => e.data)).toEqual([expect.objectContaining({ created: false, stepId: "draft_pr" })]);
    expect(fake.apiRequests().filter((r) => f.isCreate(r) && JSON.stringify(r.body ?? "").includes(branch))).toHaveLength(1);
    // Leave nothing polling.
    fake.closePull(repository, run.pullRequest!.number!);
    await until(id, (r) => r.status === "cancelled", "Abandoned");
  }, 90_000);
});
