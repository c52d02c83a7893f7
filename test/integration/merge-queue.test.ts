import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectBus, replayTransitions, sendCommandAndWait, type Bus } from "@orch/bus";
import { PrUpdatePayload, type RunView, type Signal, type WorkItem } from "@orch/contracts";
import { mergeQueueRunId } from "@orch/engine";
import { createLogger } from "@orch/logging";
import { Stack, http, waitFor, type HttpResponse } from "@orch/testing";

/**
 * The merge queue over the real core and scheduler, without an agent hub (the test answers the forge
 * work as a hub would): two runs whose PRs target one base join its queue (a `merge.queue` run the
 * first one creates), one at a time; the first gets its turn (`pr.update` dispatched), is brought up
 * to the base with what was approved unchanged, CI passes on the new head, it merges and leaves; the
 * second then gets its turn, and its update changes what was approved: its approval is asked for
 * again and it leaves the queue. Positions show on `/api/v1/runs/{id}`.
 */

let stack: Stack;
let bus: Bus;

const DEF = {
  id: "acme.queued",
  version: 1,
  workspace: { branch: "${input.branch}" },
  steps: [
    { id: "open", type: "pr.open", role: "maintainer" },
    { id: "merge", type: "pr.merge", role: "maintainer", needs: ["open"] },
  ],
  pullRequests: { onMerged: "complete", onClosed: "cancel", merge: { enabled: true, method: "squash", queue: true } },
};
const PROJECT = "mq-project";
const QUEUE = mergeQueueRunId(PROJECT, "main");

beforeAll(async () => {
  stack = await Stack.start({
    services: ["event-bus", "orchestrator", "scheduler", "gateway"],
    serviceEnv: { orchestrator: { ORCH_PR_POLL_INTERVAL_SECS: "0" } },
  });
  bus = await connectBus({ url: stack.nats.url, name: "probe", logger: createLogger({ service: "test", level: "silent" }) });
}, 60_000);

afterAll(async () => {
  await bus?.close();
  await stack?.stop();
});

const api = (method: string, path: string, json?: unknown) => http(method, `${stack.baseUrl}${path}`, json !== undefined ? { json } : {});

function ok(r: HttpResponse, status = 200): any {
  expect(r.status, r.text).toBe(status);
  return r.json();
}

async function send(runId: string, commandId: string, signal: Signal): Promise<RunView> {
  const out = (await sendCommandAndWait(bus, { type: "run.signal", commandId, runId, issuedAt: Date.now(), actor: "test", signal }))!;
  expect(out.ok, JSON.stringify(out.error)).toBe(true);
  return out.run as RunView;
}

/**
 * The run's latest work item of `type` other than the attempts in `seen`, from any of its
 * transitions (a later transition, a signal the test sends say, need not repeat it).
 */
async function workOf(runId: string, type: string, seen: string[] = []) {
  return waitFor(
    async () => {
      let found: WorkItem | undefined;
      for await (const t of replayTransitions(bus, bus.names.subjects.runOf(runId), { untilCaughtUp: true })) {
        const w = t.transition.head().work?.find((w) => w.type === type && !seen.includes(w.attemptId));
        if (w) found = w;
      }
      return found;
    },
    { timeoutMs: 15_000, what: `${type} work for ${runId}` },
  );
}

async function stepResult(runId: string, stepId: string, attemptId: string, output: unknown): Promise<RunView> {
  const now = Date.now();
  const out = (await sendCommandAndWait(bus, {
    type: "step.result",
    commandId: `result:${attemptId}`,
    runId,
    issuedAt: now,
    actor: "agent-hub",
    stepId,
    attemptId,
    kind: "execute",
    ok: true,
    output,
    startedAt: now - 10,
    finishedAt: now,
  }))!;
  expect(out.ok, JSON.stringify(out.error)).toBe(true);
  return out.run as RunView;
}

/** A run whose PR (`number`, at `sha`) is open, green and approved. */
async function approvedRun(runId: string, number: number, sha: string): Promise<void> {
  const created = (await sendCommandAndWait(bus, {
    type: "run.create",
    commandId: `create:${runId}`,
    runId,
    issuedAt: Date.now(),
    actor: "test",
    projectId: PROJECT,
    definition: { id: DEF.id, version: 1 },
    input: { branch: `feature-${number}`, goal: `Feature ${number}` },
    autoStart: true,
    mode: "mock",
  }))!;
  expect(created.ok, JSON.stringify(created.error)).toBe(true);
  const open = await workOf(runId, "pr.open");
  const pullRequest = {
    provider: "github",
    repository: "acme/app",
    number,
    url: `https://github.com/acme/app/pull/${number}`,
    head: `feature-${number}`,
    base: "main",
    headSha: sha,
    state: "open",
  };
  await stepResult(runId, "open", open.attemptId, { pullRequest, created: true });
  await send(runId, `ci:${runId}:${sha}`, { name: "ci_report", status: "success", check: "test", sha, provider: "github" });
  await send(runId, `review:${runId}:${sha}`, { name: "review_report", state: "approved", reviewer: "lee", sha, provider: "github" });
}

const queueView = async () => ok(await api("GET", `/api/v1/runs/${QUEUE}`));

describe("the merge queue", () => {
  beforeAll(async () => {
    ok(await api("POST", "/api/v1/definitions", DEF), 201);
    ok(await api("POST", "/api/v1/projects", { id: PROJECT, name: "MQ", gitUrl: "https://github.com/acme/app.git", baseBranch: "main" }), 201);
  });

  it("merges two runs on one base one at a time; the second's update changes what was approved, so its approval is asked again", async () => {
    await approvedRun("mq-a", 1, "a0a0a0a0a0a0");
    await waitFor(async () => (await api("GET", `/api/v1/runs/${QUEUE}`)).status === 200, { timeoutMs: 10_000, what: "the queue run" });
    await approvedRun("mq-b", 2, "b0b0b0b0b0b0");

    // Both in the queue, in order; the first has its turn.
    const q = await waitFor(async () => {
      const v = await queueView();
      return v.mergeQueue?.entries?.length === 2 ? v : undefined;
    });
    expect(q).toMatchObject({ view: "merge_queue", status: "waiting", labels: { base: "main" } });
    expect(q.mergeQueue).toMatchObject({
      base: "main",
      entries: [
        { runId: "mq-a", position: 1 },
        { runId: "mq-b", position: 2 },
      ],
      head: "mq-a",
    });
    expect(ok(await api("GET", "/api/v1/runs/mq-b")).mergeQueue).toMatchObject({ queue: QUEUE, state: "queued", position: 2 });
    const queues = ok(await api("GET", "/api/v1/runs?view=merge_queue"));
    expect(queues.items.map((r: { id: string }) => r.id)).toContain(QUEUE);

    // A's turn: brought up to the base; what was approved unchanged; CI again on the new head; merged.
    const updateA = await workOf("mq-a", "pr.update");
    expect(updateA.kind).toBe("sync");
    expect(PrUpdatePayload.parse(updateA.payload)).toMatchObject({
      number: 1,
      head: "feature-1",
      base: "main",
      approvedSha: "a0a0a0a0a0a0",
      strategy: "rebase",
    });
    let a = await send("mq-a", `updated:${updateA.attemptId}`, {
      name: "mq_updated",
      attemptId: updateA.attemptId,
      headSha: "a1a1a1a1a1a1",
      strategy: "rebase",
      approvedPatchId: "patch-a",
      patchId: "patch-a",
    });
    expect(a.mergeQueue).toMatchObject({ state: "checking", headSha: "a1a1a1a1a1a1" });
    expect(a.steps.find((s) => s.id === "merge")!.status).toBe("pending");
    a = await send("mq-a", "ci:mq-a:a1", { name: "ci_report", status: "success", check: "test", sha: "a1a1a1a1a1a1", provider: "github" });
    expect(a.mergeQueue).toMatchObject({ state: "merging" });
    const merge = await workOf("mq-a", "pr.merge");
    expect(merge.payload).toMatchObject({ number: 1, sha: "a1a1a1a1a1a1", method: "squash" });
    a = await stepResult("mq-a", "merge", merge.attemptId, { merged: true, sha: "fedcba987654" });
    expect(a).toMatchObject({ status: "completed", pullRequest: { state: "merged" } });
    expect(a.mergeQueue).toBeUndefined();

    // B's turn next (A left, merged): its update changes what was approved.
    const updateB = await workOf("mq-b", "pr.update");
    expect((await queueView()).mergeQueue).toMatchObject({ entries: [{ runId: "mq-b", position: 1 }], head: "mq-b" });
    const b = await send("mq-b", `updated:${updateB.attemptId}`, {
      name: "mq_updated",
      attemptId: updateB.attemptId,
      headSha: "b1b1b1b1b1b1",
      strategy: "rebase",
      approvedPatchId: "patch-b",
      patchId: "patch-b2",
    });
    expect(b.mergeQueue).toBeUndefined();
    expect(b.pullRequest).toMatchObject({ headSha: "b1b1b1b1b1b1", review: { state: "dismissed" } });
    expect(b.steps.find((s) => s.id === "merge")!.status).toBe("pending");
    const history = ok(await api("GET", "/api/v1/runs/mq-b/history")).items.map((e: { type: string }) => e.type);
    expect(history).toEqual(expect.arrayContaining(["mq.joined", "mq.turn", "mq.updated", "pr.approval_invalidated", "mq.left"]));
    await waitFor(async () => (await queueView()).mergeQueue?.entries?.length === 0, { timeoutMs: 10_000, what: "an empty queue" });

    // Approved again (on the new head) and green: it joins again and gets its turn at once.
    // Green on b0 says nothing about b1: approved alone, it waits for CI on the new head.
    const approvedOnly = await send("mq-b", "review:mq-b:b1", {
      name: "review_report",
      state: "approved",
      reviewer: "lee",
      sha: "b1b1b1b1b1b1",
      provider: "github",
    });
    expect(approvedOnly.mergeQueue).toBeUndefined();
    expect(approvedOnly.pullRequest?.checks?.state).toBe("pending");
    await send("mq-b", "ci:mq-b:b1", { name: "ci_report", status: "success", check: "test", sha: "b1b1b1b1b1b1", provider: "github" });
    const again = await workOf("mq-b", "pr.update", [updateB.attemptId]);
    expect(PrUpdatePayload.parse(again.payload)).toMatchObject({ approvedSha: "b1b1b1b1b1b1" });
  }, 90_000);
});
