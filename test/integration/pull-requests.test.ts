import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectBus, lastTransition, sendCommandAndWait, type Bus } from "@orch/bus";
import { PrOpenPayload, type RunView } from "@orch/contracts";
import { createLogger } from "@orch/logging";
import { Stack, http, type HttpResponse } from "@orch/testing";

/**
 * The core's side of pull requests, over the real system without an agent hub (the test answers
 * the forge step the way a hub would): a project's forge on `/api/v1/projects` (set, derived from
 * its git URL, refused when invalid), copied to a run at its creation; a `pr.open` step dispatched
 * with what the core composed, its result recorded as the run's pull request with `pr.opened` and
 * the polling fallback's timer, all in the transition that completes it; a run without a forge.
 */

let stack: Stack;
let bus: Bus;

beforeAll(async () => {
  stack = await Stack.start({
    services: ["event-bus", "orchestrator", "gateway"],
    serviceEnv: { orchestrator: { ORCH_PUBLIC_URL: "https://orch.example.com", ORCH_FORGE_HOSTS: "ghe.example.com=github" } },
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

describe("a project's forge (/api/v1/projects)", () => {
  it("is set on create and returned; derived from the git URL when left out; null derives it again", async () => {
    const set = ok(
      await api("POST", "/api/v1/projects", {
        id: "forge-set",
        name: "Set",
        gitUrl: "https://github.com/acme/app.git",
        forge: { provider: "gitlab", repository: "team/app" },
      }),
      201,
    );
    expect(set).toMatchObject({ forge: { provider: "gitlab", repository: "team/app" }, forgeSource: "set" });
    expect(ok(await api("GET", "/api/v1/projects/forge-set")).forge).toEqual({ provider: "gitlab", repository: "team/app" });

    const derived = ok(await api("POST", "/api/v1/projects", { id: "forge-derived", name: "Derived", gitUrl: "git@ghe.example.com:acme/app.git" }), 201);
    expect(derived).toMatchObject({ forge: { provider: "github", repository: "acme/app" }, forgeSource: "derived" });

    const cleared = ok(await api("PUT", "/api/v1/projects/forge-set", { forge: null }));
    expect(cleared).toMatchObject({ forge: { provider: "github", repository: "acme/app" }, forgeSource: "derived" });
    const none = ok(await api("POST", "/api/v1/projects", { id: "forge-none", name: "None", localPath: "/srv/app" }), 201);
    expect(none.forge).toBeUndefined();
  });

  it("takes merge settings (enabled, method, queue), returns them, and null removes them", async () => {
    const p = ok(
      await api("POST", "/api/v1/projects", {
        id: "merge-set",
        name: "Merge",
        gitUrl: "https://github.com/acme/m.git",
        merge: { enabled: true, method: "rebase", queue: true },
      }),
      201,
    );
    expect(p.merge).toEqual({ enabled: true, method: "rebase", queue: true });
    const bad = await api("PUT", "/api/v1/projects/merge-set", { merge: { method: "octopus" } });
    expect(bad.status, bad.text).toBe(400);
    expect((bad.json() as any).error.details.fields.map((f: { path: string }) => f.path)).toContain("merge.method");
    expect(ok(await api("PUT", "/api/v1/projects/merge-set", { merge: null })).merge).toBeUndefined();
  });

  it("an invalid forge is a 400 naming the field", async () => {
    const r = await api("POST", "/api/v1/projects", { id: "forge-bad", name: "Bad", forge: { provider: "bitbucket", repository: "nope" } });
    expect(r.status, r.text).toBe(400);
    const fields = (r.json() as any).error.details.fields.map((f: { path: string }) => f.path);
    expect(fields).toEqual(expect.arrayContaining(["forge.provider", "forge.repository"]));
    const put = await api("PUT", "/api/v1/projects/forge-derived", { forge: { provider: "github", repository: "acme/app", apiUrl: "ftp://x" } });
    expect(put.status, put.text).toBe(400);
    expect((put.json() as any).error.details.fields.map((f: { path: string }) => f.path)).toContain("forge.apiUrl");
  });
});

describe("a pr.open step through the core", () => {
  /** A run that opens its PR and follows it (waits while it is open). */
  const FOLLOWING = {
    id: "acme.follow-pr",
    version: 1,
    steps: [{ id: "open", type: "pr.open", role: "maintainer" }],
    pullRequests: { follow: true, onMerged: "complete", onClosed: "cancel" },
  };

  beforeAll(async () => {
    ok(await api("POST", "/api/v1/definitions", FOLLOWING), 201);
  });

  const create = async (runId: string, projectId: string) =>
    (await sendCommandAndWait(bus, {
      type: "run.create",
      commandId: `create:${runId}`,
      runId,
      issuedAt: Date.now(),
      actor: "test",
      projectId,
      definition: { id: FOLLOWING.id, version: 1 },
      input: { goal: "Greet users by name" },
      autoStart: true,
      mode: "mock",
    }))!;

  it("is dispatched with what the core composed, and its result is recorded as the run's pull request, atomically", async () => {
    ok(await api("POST", "/api/v1/projects", { id: "pr-project", name: "PR", gitUrl: "https://github.com/acme/app.git", baseBranch: "trunk" }), 201);
    const created = await create("pr-run-1", "pr-project");
    expect(created.ok, JSON.stringify(created.error)).toBe(true);
    const step = created.run!.steps[0]!;
    expect(step).toMatchObject({ id: "open", status: "running", inflight: true });

    // The work item: the project's forge (copied at the creation), its base, a title and body from the run.
    const dispatched = (await lastTransition(bus, "pr-run-1"))!.transition.head();
    const work = dispatched.work!.find((w) => w.stepId === "open")!;
    const payload = PrOpenPayload.parse(work.payload);
    expect(payload).toMatchObject({ forge: { provider: "github", repository: "acme/app" }, base: "trunk", draft: false, title: "Greet users by name" });
    expect(payload.body).toContain("Run: https://orch.example.com/api/v1/runs/pr-run-1");

    // The hub's answer, by hand.
    const now = Date.now();
    const answered = (await sendCommandAndWait(bus, {
      type: "step.result",
      commandId: `result:${work.attemptId}`,
      runId: "pr-run-1",
      issuedAt: now,
      actor: "agent-hub",
      stepId: "open",
      attemptId: work.attemptId,
      kind: "execute",
      ok: true,
      output: {
        pullRequest: {
          provider: "github",
          repository: "acme/app",
          number: 12,
          url: "https://github.com/acme/app/pull/12",
          head: "orch/run/pr-run-1",
          base: "trunk",
          headSha: "0a1b2c3d4e5f",
          state: "open",
        },
        created: true,
      },
      startedAt: now - 50,
      finishedAt: now,
    }))!;
    expect(answered.ok, JSON.stringify(answered.error)).toBe(true);
    const run = answered.run as RunView;
    expect(run.steps[0]!.status).toBe("completed");
    // Its work done, it follows the open PR.
    expect(run.status).toBe("waiting");
    expect(run.pullRequest).toMatchObject({
      provider: "github",
      number: 12,
      state: "open",
      headSha: "0a1b2c3d4e5f",
      url: "https://github.com/acme/app/pull/12",
    });
    expect(run.pullRequest!.nextPollAt).toBeGreaterThan(now);

    // One transition: the step's completion, the PR's record and announcement, the poll timer.
    const t = (await lastTransition(bus, "pr-run-1"))!.transition;
    const types = t.events().map((e) => e.type);
    expect(types).toEqual(expect.arrayContaining(["pr.opened", "step.succeeded"]));
    expect(t.events().find((e) => e.type === "pr.opened")!.data).toMatchObject({
      provider: "github",
      number: 12,
      headSha: "0a1b2c3d4e5f",
      state: "open",
      created: true,
    });
    expect(t.head().timers).toContainEqual(expect.objectContaining({ op: "set", kind: "pr_poll", timerId: "pr-run-1.pr.poll.1" }));

    // The API shows it.
    expect(ok(await api("GET", "/api/v1/runs/pr-run-1")).pullRequest).toMatchObject({ number: 12, state: "open" });

    // Merged: the timer is withdrawn and the run completes.
    const merged = (await sendCommandAndWait(bus, {
      type: "run.signal",
      commandId: "merged:pr-run-1",
      runId: "pr-run-1",
      issuedAt: Date.now(),
      actor: "webhook:github",
      signal: { name: "pr_merged", number: 12, provider: "github" },
    }))!;
    expect(merged.run).toMatchObject({ status: "completed", pullRequest: { state: "merged", number: 12 } });
    expect((await lastTransition(bus, "pr-run-1"))!.transition.head().timers).toContainEqual({ op: "cancel", timerId: "pr-run-1.pr.poll.1" });
  });

  it("a run of a project without a forge: the step fails at once, saying so", async () => {
    const created = await create("pr-run-2", "forge-none");
    const step = created.run!.steps[0]!;
    expect(step).toMatchObject({ status: "failed", errorCode: "NO_FORGE" });
    expect(step.error).toMatch(/forge/);
    expect(created.run!.status).toBe("failed");
  });
});
