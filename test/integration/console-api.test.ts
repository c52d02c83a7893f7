import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Stack, http, sse, waitFor, type HttpResponse } from "@orch/testing";

/**
 * The read side the web console needs beside the rest of /api/v1, over the real system with an API
 * token: the live event feed (`/api/v1/events/stream`: from now on, a little history on demand,
 * resumable without gap or duplicate, through a stream token), worker sessions across runs
 * (`/api/v1/sessions`), and opening a run's pull request as the console does (`actions/open_pr`).
 */

const TOKEN = "console-api-test-token-0123456789";
const AUTH = { authorization: `Bearer ${TOKEN}` };
let stack: Stack;
let base: string;
const repo = mkdtempSync(join(tmpdir(), "orch-console-repo-"));
const git = (...args: string[]) => execFileSync("git", ["-c", "user.name=Test", "-c", "user.email=test@localhost", ...args], { cwd: repo, encoding: "utf8" });

beforeAll(async () => {
  git("init", "-q", "-b", "main");
  writeFileSync(join(repo, "README.md"), "# console\n");
  git("add", "-A");
  git("commit", "-q", "-m", "initial");
  stack = await Stack.start({ env: { ORCH_API_TOKEN: TOKEN, ORCH_RATE_LIMIT_MAX: "10000" } });
  base = `${stack.baseUrl}/api/v1`;
  const p = await http("PUT", `${base}/projects/acme`, { headers: AUTH, json: { name: "Acme", localPath: repo, baseBranch: "main" } });
  expect(p.status, p.text).toBe(201);
});

afterAll(async () => {
  await stack?.stop();
  rmSync(repo, { recursive: true, force: true });
});

const get = (path: string) => http("GET", base + path, { headers: AUTH });
const post = (path: string, json?: unknown) => http("POST", base + path, { headers: AUTH, ...(json === undefined ? {} : { json }) });
const ok = (r: HttpResponse, status = 200) => {
  expect(r.status, r.text).toBe(status);
  return r.json();
};
const job = async (goal: string): Promise<string> => ok(await post("/runs", { definition: "job", title: goal, input: { goal } }), 201).id;
const until = (id: string, pred: (run: any) => boolean, what: string) =>
  waitFor(
    async () => {
      const run = ok(await get(`/runs/${id}`));
      return pred(run) ? run : undefined;
    },
    { timeoutMs: 30_000, what },
  );

describe("the live event feed: GET /api/v1/events/stream", () => {
  it("follows every run's events from now on, and resumes after Last-Event-ID with no gap and no duplicate", async () => {
    const before = await job("before the feed");
    await until(before, (r) => r.status === "completed", "the first job");
    const feed = await sse(`${base}/events/stream`, AUTH);
    expect(feed.status).toBe(200);
    const during = await job("during the feed");
    await feed.waitFor((f) => f.event === "run.finished" && f.json?.runId === during);
    expect(feed.frames.some((f) => f.json?.runId === before)).toBe(false);
    const first = feed.frames.find((f) => f.json?.runId === during)!;
    expect(first).toMatchObject({ event: "run.created", json: { runId: during, type: "run.created", seq: 1 } });
    expect(Number(first.id)).toBe(first.json.id);
    const last = feed.frames[feed.frames.length - 1]!.id!;
    feed.close();

    // Missed while away: the next connection gets exactly the events after the last id it had.
    const away = await job("while away");
    await until(away, (r) => r.status === "completed", "the job run while away");
    const again = await sse(`${base}/events/stream`, { ...AUTH, "last-event-id": last });
    await again.waitFor((f) => f.event === "run.finished" && f.json?.runId === away);
    const ids = again.frames.map((f) => Number(f.id));
    expect(ids.every((id) => id > Number(last))).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    expect(again.frames[0]!.json).toMatchObject({ runId: away, type: "run.created" });
    again.close();
  });

  it("starts a few transitions back with ?recent=, one project's with ?projectId=, and opens with a stream token", async () => {
    const feed = await sse(`${base}/events/stream?recent=500`, AUTH);
    await feed.waitFor((f) => f.event === "run.created");
    feed.close();

    const t = ok(await post("/stream-tokens", { path: "/api/v1/events/stream" }), 201);
    const byToken = await sse(`${base}/events/stream?recent=500&projectId=_default&access_token=${encodeURIComponent(t.token)}`);
    expect(byToken.status).toBe(200);
    await byToken.waitFor((f) => f.event === "run.created");
    expect(byToken.frames.every((f) => f.json?.projectId === "_default")).toBe(true);
    byToken.close();

    // Bad input is a 400 naming the field; no token a 401; an unknown project a 404.
    for (const q of ["recent=501", "recent=-1", "recent=x", "projectId=a.b"]) {
      const r = await get(`/events/stream?${q}`);
      expect(r.status, q).toBe(400);
      expect(r.json().error).toMatchObject({ code: "BAD_REQUEST", details: { fields: [{ path: q.split("=")[0] }] } });
    }
    expect((await http("GET", `${base}/events/stream`)).status).toBe(401);
  });
});

describe("worker sessions across runs: GET /api/v1/sessions", () => {
  it("lists sessions newest first, filtered by status; bad input is a 400", async () => {
    const run = ok(
      await post("/runs", {
        definition: "speckit.specify",
        projectId: "acme",
        input: { feature_description: "Sessions across runs", feature_id: "001-sessions" },
      }),
      201,
    );
    await until(run.id, (r) => r.steps[0].status === "waiting_approval", "phase 1 to wait");
    const all = ok(await get("/sessions"));
    expect(all.total).toBeGreaterThanOrEqual(1);
    const mine = all.items.find((s: any) => s.runId === run.id);
    expect(mine).toMatchObject({ stepId: "phase_1", executor: "stub", status: "completed", role: "architect", projectId: "acme" });
    expect(mine).not.toHaveProperty("snapshot");
    const created = all.items.map((s: any) => s.createdAt);
    expect([...created].sort().reverse()).toEqual(created);

    const done = ok(await get("/sessions?status=completed,failed&limit=1"));
    expect(done.items).toHaveLength(1);
    expect(["completed", "failed"]).toContain(done.items[0].status);
    expect(ok(await get("/sessions?status=waiting_input")).items).toEqual([]);

    for (const q of ["status=bogus", "limit=0", "limit=501"]) {
      const r = await get(`/sessions?${q}`);
      expect(r.status, q).toBe(400);
      expect(r.json().error.code).toBe("BAD_REQUEST");
    }
  });
});

describe("opening a run's pull request as the console does: POST /api/v1/runs/{id}/actions/open_pr", () => {
  it("adds an open_pr step (pr.open, maintainer) and runs it; a finished run refuses with the engine's reason", async () => {
    const run = ok(await post("/runs", { definition: "protocol", projectId: "acme", title: "open a PR", autoStart: false }), 201);
    const after = ok(await post(`/runs/${run.id}/actions/open_pr`));
    const step = after.steps.find((s: any) => s.id === "open_pr");
    expect(step).toMatchObject({ role: "maintainer", type: "pr.open" });
    expect(step.status).not.toBe("pending");
    const again = ok(await post(`/runs/${run.id}/actions/open_pr`));
    expect(again.steps.map((s: any) => s.id)).toContain("open_pr_2");

    const done = await job("finished");
    await until(done, (r) => r.status === "completed", "the job");
    const r = await post(`/runs/${done}/actions/open_pr`);
    expect(r.status).toBe(409);
    expect(r.json().error).toMatchObject({ code: "ILLEGAL_TRANSITION", message: expect.stringContaining("completed"), details: { reason: "TERMINAL_STATE" } });
    expect((await post("/runs/no-such-run/actions/open_pr")).status).toBe(404);
  });
});
