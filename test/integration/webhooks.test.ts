import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHmac, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { connectBus, type Bus } from "@orch/bus";
import { createLogger } from "@orch/logging";
import { DefinitionStore, RunsApi, type RunView } from "@orch/runs";
import { REPO_ROOT } from "@orch/nats-server";
import { Stack, freePort, http, waitFor, type HttpResponse, type ServiceProcess } from "@orch/testing";

/**
 * Seed 004's webhooks end to end: GitHub's and GitLab's own example payloads, pointed at a run's
 * branch, signed (or not), posted over HTTP to the gateway, and what they do to real runs (the
 * core, the agent hub with the offline executor). Runs are made through the shared runs API on a
 * bus connection of the test's own, as any surface would make them.
 *
 * Gateways: the stack's own (GITHUB_WEBHOOK_SECRET, GITLAB_WEBHOOK_TOKEN, GITHUB_APP_ID), one with
 * seed 004's single TASKSGODZILLA_WEBHOOK_TOKEN, one with no secret at all (unsigned deliveries
 * accepted), and one with the API token and no webhook secret (deliveries refused unless they carry
 * the API bearer). Gateways only translate: what CI does to a run is the core's decision, by the
 * run's CI policy, which takes the orchestrator's settings at the run's creation (no auto-QA, no fix
 * attempts, until the last tests replace the orchestrator with one that has both).
 */

const GH = "gh-secret-5a1f0c";
const GL = "gl-token-9d3e77";
const TG = "tg-token-c0ffee";
const API = "api-token-77aa";
const APP_ID = "314159";
const COOLDOWN_MS = 3_000;

const examples = createRequire(import.meta.url)("@octokit/webhooks-examples") as { name: string; examples: unknown[] }[];
function githubExample(event: string, index: number): any {
  const ex = examples.find((d) => d.name === event)?.examples[index];
  if (!ex) throw new Error(`no example ${event}[${index}]`);
  return structuredClone(ex);
}
const gitlabFixture = (name: string): any =>
  JSON.parse(readFileSync(join(REPO_ROOT, "services", "gateway", "test", "fixtures", "gitlab", `${name}.json`), "utf8"));

let stack: Stack;
let bus: Bus;
let runs: RunsApi;
let base: string;
let qaGw: { base: string; p: ServiceProcess };
let openGw: { base: string; p: ServiceProcess };
let lockedGw: { base: string; p: ServiceProcess };
/** Every signature sent, to check none of them (nor a secret) is ever logged. */
const signatures = new Set<string>();

async function gateway(env: Record<string, string>): Promise<{ base: string; p: ServiceProcess }> {
  const port = await freePort();
  const p = await stack.spawn("gateway", { PORT: String(port), ...env });
  return { base: `http://127.0.0.1:${port}`, p };
}

beforeAll(async () => {
  stack = await Stack.start({ serviceEnv: { gateway: { GITHUB_WEBHOOK_SECRET: GH, GITLAB_WEBHOOK_TOKEN: GL, GITHUB_APP_ID: APP_ID } } });
  base = stack.baseUrl;
  bus = await connectBus({ url: stack.nats.url, name: "webhooks-test", logger: createLogger({ service: "test", level: "silent" }) });
  runs = new RunsApi(bus, { definitions: new DefinitionStore(bus), mode: "mock", timeoutMs: 15_000 });
  [qaGw, openGw, lockedGw] = await Promise.all([gateway({ TASKSGODZILLA_WEBHOOK_TOKEN: TG }), gateway({}), gateway({ ORCH_API_TOKEN: API })]);
}, 60_000);

afterAll(async () => {
  await bus?.close();
  await stack?.stop();
});

// ── deliveries ──────────────────────────────────────────────────────────────────────────────────

const hmac = (secret: string, body: string) => `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;

interface Delivery {
  secret?: string | null;
  delivery?: string;
  headers?: Record<string, string>;
  url?: string;
  raw?: string;
  contentType?: string;
}

async function github(event: string, body: unknown, o: Delivery = {}): Promise<HttpResponse> {
  const text = o.raw ?? JSON.stringify(body);
  const headers: Record<string, string> = {
    "content-type": o.contentType ?? "application/json",
    "user-agent": "GitHub-Hookshot/5b1e2a0",
    "x-github-event": event,
    "x-github-delivery": o.delivery ?? randomUUID(),
    ...o.headers,
  };
  const secret = o.secret === undefined ? GH : o.secret;
  if (secret !== null && headers["x-hub-signature-256"] === undefined) headers["x-hub-signature-256"] = hmac(secret, text);
  if (headers["x-hub-signature-256"]) signatures.add(headers["x-hub-signature-256"].replace(/^sha256=/, ""));
  return http("POST", `${o.url ?? base}/webhooks/github`, { body: text, headers });
}

async function gitlab(event: string, body: unknown, o: Delivery = {}): Promise<HttpResponse> {
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "x-gitlab-event": event,
    "x-gitlab-webhook-uuid": o.delivery ?? randomUUID(),
    ...o.headers,
  };
  const token = o.secret === undefined ? GL : o.secret;
  if (token !== null) headers["x-gitlab-token"] ??= token;
  return http("POST", `${o.url ?? base}/webhooks/gitlab`, { body: JSON.stringify(body), headers });
}

/** A check suite that finished on `branch` (GitHub's example, pointed at it). */
function checkSuite(branch: string, conclusion: "success" | "failure"): any {
  const b = githubExample("check_suite", 0);
  b.check_suite.head_branch = branch;
  b.check_suite.conclusion = conclusion;
  b.check_suite.pull_requests = [];
  return b;
}

/** A check run that failed on `branch`. */
function failedCheckRun(branch: string): any {
  const b = githubExample("check_run", 1);
  expect(b.check_run.conclusion).toBe("failure");
  b.check_run.check_suite.head_branch = branch;
  return b;
}

function pipeline(branch: string, status: "success" | "failed"): any {
  const b = gitlabFixture("pipeline");
  b.object_attributes.ref = branch;
  b.object_attributes.status = status;
  return b;
}

const RECORDED = { message: "Webhook recorded", job: null };
const IGNORED = { message: "Event ignored", job: null };
const DUPLICATE = { message: "Duplicate delivery ignored", job: null };

// ── runs ────────────────────────────────────────────────────────────────────────────────────────

/** A step that stays running (its agent is silent for two minutes), as a step waiting on CI does. */
const SLOW = { payload: { mock: { delayMs: 120_000 } } };

let names = 0;
const uniqueName = (what: string) => `${what}-${Date.now().toString(36)}-${++names}`;

/** A protocol run (seed 004) named `name` with these steps, planned; `start` runs one of them. */
async function protocol(name: string, steps: Record<string, unknown>[], start?: string): Promise<string> {
  const r = await runs.create({ definition: { id: "protocol" }, input: { protocol_name: name, description: `webhook test ${name}` }, steps, autoStart: true });
  const id = r.runId;
  await waitFor(async () => (await runs.get(id))?.status === "planned", { timeoutMs: 30_000, what: `${name} planned` });
  if (start) await runs.signal(id, { name: "run_step", stepId: start });
  return id;
}

const run = async (id: string): Promise<RunView> => runs.require(id);
const step = async (id: string, stepId: string) => (await run(id)).steps.find((s) => s.id === stepId)!;

async function waitStep(id: string, stepId: string, status: string): Promise<void> {
  await waitFor(async () => (await step(id, stepId)).status === status, { timeoutMs: 60_000, what: `${stepId} ${status}` });
}

// ── tests ───────────────────────────────────────────────────────────────────────────────────────

describe("authentication", () => {
  it("ping is answered 202 Event ignored", async () => {
    const r = await github("ping", githubExample("ping", 0));
    expect(r.status).toBe(202);
    expect(r.json()).toEqual(IGNORED);
    expect(r.headers["x-request-id"]).toBeTruthy();
  });

  it("a bad signature, a missing one, or one made with another secret: 401 Invalid webhook signature", async () => {
    const name = uniqueName("auth");
    const id = await protocol(name, [{ id: "impl", ...SLOW }], "impl");
    const body = checkSuite(name, "success");
    const text = JSON.stringify(body);
    for (const r of [
      await github("check_suite", body, { headers: { "x-hub-signature-256": `sha256=${"0".repeat(64)}` } }),
      await github("check_suite", body, { secret: null }),
      await github("check_suite", body, { secret: "not-the-secret" }),
      // Signed over other bytes than the ones sent.
      await github("check_suite", body, { raw: text, headers: { "x-hub-signature-256": hmac(GH, `${text} `) } }),
    ]) {
      expect(r.status).toBe(401);
      expect(r.json()).toEqual({ detail: "Invalid webhook signature" });
    }
    expect((await step(id, "impl")).status).toBe("running");
    expect((await run(id)).facts.ci).toBeUndefined();
  });

  it("the signature covers the raw bytes: the same JSON with other whitespace, signed, is accepted", async () => {
    const r = await github("ping", undefined, { raw: `{ "zen" : "Keep it logically awesome.",\n  "hook_id": 1 }` });
    expect(r.status).toBe(202);
  });

  it("signed JSON that does not parse: 400 {detail}", async () => {
    const r = await github("push", undefined, { raw: "{not json" });
    expect(r.status).toBe(400);
    expect(r.json()).toEqual({ detail: "Invalid JSON body" });
  });

  it("a body that is neither JSON nor a form: 415 {detail}", async () => {
    const r = await github("ping", undefined, { raw: "zen", contentType: "text/plain" });
    expect(r.status).toBe(415);
    expect(Object.keys(r.json())).toEqual(["detail"]);
  });

  it("GitHub's form encoding (payload=<json>) is verified over the form body", async () => {
    const ping = JSON.stringify(githubExample("ping", 0));
    const r = await github("ping", undefined, { raw: new URLSearchParams({ payload: ping }).toString(), contentType: "application/x-www-form-urlencoded" });
    expect(r.status).toBe(202);
    const bad = await github("ping", undefined, {
      raw: `payload=${encodeURIComponent(ping)}`,
      contentType: "application/x-www-form-urlencoded",
      headers: { "x-hub-signature-256": hmac(GH, "payload=") },
    });
    expect(bad.status).toBe(401);
  });

  it("GitLab: a wrong or missing X-Gitlab-Token is 401 Invalid webhook token; the GitHub secret is not a GitLab token", async () => {
    for (const secret of ["nope", null, GH]) {
      const r = await gitlab("Pipeline Hook", pipeline("main", "success"), { secret });
      expect(r.status).toBe(401);
      expect(r.json()).toEqual({ detail: "Invalid webhook token" });
    }
  });

  it("with no secret configured (and no API token), unsigned deliveries are accepted, and the gateway warned at start", async () => {
    expect(openGw.p.lines.some((l) => l.level === "warn" && /webhooks\/github: .*unsigned deliveries are accepted/.test(String(l.msg)))).toBe(true);
    expect(openGw.p.lines.some((l) => l.level === "warn" && /webhooks\/gitlab: .*unsigned deliveries are accepted/.test(String(l.msg)))).toBe(true);
    const name = uniqueName("open");
    const id = await protocol(name, [{ id: "impl", ...SLOW }], "impl");
    const r = await github("check_suite", checkSuite(name, "success"), { secret: null, url: openGw.base });
    expect(r.status, r.text).toBe(200);
    expect(r.json()).toEqual(RECORDED);
    expect((await step(id, "impl")).status).toBe("completed");
  });

  it("with the API token set and no webhook secret, deliveries are refused unless they carry the API bearer", async () => {
    expect(lockedGw.p.lines.some((l) => l.level === "warn" && /webhooks\/github: .*refused \(401\)/.test(String(l.msg)))).toBe(true);
    const r1 = await github("ping", githubExample("ping", 0), { secret: null, url: lockedGw.base });
    expect(r1.status).toBe(401);
    expect(r1.json()).toEqual({ detail: "Invalid webhook signature" });
    const r2 = await gitlab("Pipeline Hook", pipeline("main", "success"), { secret: null, url: lockedGw.base });
    expect(r2.status).toBe(401);
    expect(r2.json()).toEqual({ detail: "Invalid webhook token" });
    const wrong = await github("ping", githubExample("ping", 0), { secret: null, url: lockedGw.base, headers: { authorization: "Bearer nope" } });
    expect(wrong.status).toBe(401);
    // Seed 004's clients (its CI report script) post with the API bearer: that authenticates them.
    const ok = await github("ping", githubExample("ping", 0), { secret: null, url: lockedGw.base, headers: { authorization: `Bearer ${API}` } });
    expect(ok.status).toBe(202);
  });

  it("with GITHUB_APP_ID, a GitHub App's delivery must be for that app; repository webhooks are unaffected", async () => {
    const target = (type: string, id: string) => ({ "x-github-hook-installation-target-type": type, "x-github-hook-installation-target-id": id });
    expect((await github("ping", githubExample("ping", 0), { headers: target("integration", APP_ID) })).status).toBe(202);
    const other = await github("ping", githubExample("ping", 0), { headers: target("integration", "271828") });
    expect(other.status).toBe(401);
    expect(other.json()).toEqual({ detail: "Delivery is for another GitHub App" });
    // A repository's (or organization's) own webhook names the repository, not an app.
    expect((await github("ping", githubExample("ping", 0), { headers: target("repository", "271828") })).status).toBe(202);
    expect((await github("ping", githubExample("ping", 0), { headers: target("organization", "271828") })).status).toBe(202);
    // The signature is checked first: an unsigned delivery is refused as such, whatever app it names.
    const unsigned = await github("ping", githubExample("ping", 0), { secret: null, headers: target("integration", "271828") });
    expect(unsigned.json()).toEqual({ detail: "Invalid webhook signature" });
    // A gateway without GITHUB_APP_ID takes any app's delivery.
    expect((await github("ping", githubExample("ping", 0), { secret: null, url: openGw.base, headers: target("integration", "271828") })).status).toBe(202);
  });
});

describe("finding the run", () => {
  it("an event on a branch no run has: 404 No protocol run for branch <b>", async () => {
    const r = await github("check_suite", checkSuite("no-such-branch", "success"));
    expect(r.status).toBe(404);
    expect(r.json()).toEqual({ detail: "No protocol run for branch no-such-branch" });
  });

  it("a delivery that found no run gives its id back: redelivered once the run exists, it is applied", async () => {
    const name = uniqueName("later");
    const delivery = randomUUID();
    expect((await github("check_suite", checkSuite(name, "success"), { delivery })).status).toBe(404);
    const id = await protocol(name, [{ id: "impl", ...SLOW }], "impl");
    const r = await github("check_suite", checkSuite(name, "success"), { delivery });
    expect(r.status).toBe(200);
    expect((await step(id, "impl")).status).toBe("completed");
  });

  it("a push to orch/run/<runId> is recorded on that run", async () => {
    const id = await protocol(uniqueName("push"), [{ id: "impl", ...SLOW }]);
    const b = githubExample("push", 4);
    b.ref = `refs/heads/orch/run/${id}`;
    const r = await github("push", b);
    expect(r.status).toBe(200);
    expect(r.json()).toEqual(RECORDED);
    expect((await run(id)).facts.webhook).toMatchObject({ event: "push", provider: "github", branch: `orch/run/${id}`, sha: b.after });
  });

  it("a tag push is ignored", async () => {
    const r = await github("push", githubExample("push", 0));
    expect(r.status).toBe(202);
    expect(r.json()).toEqual(IGNORED);
  });

  it("an orch-run: line names the run on a signed delivery, not on an unsigned one from another branch", async () => {
    const id = await protocol(uniqueName("marker"), [{ id: "impl", ...SLOW }], "impl");
    const b = checkSuite("some-feature-branch", "success");
    b.check_suite.head_commit.message = `Fix the parser\n\nOrch-Run: ${id}\n`;
    const unsigned = await github("check_suite", b, { secret: null, url: openGw.base });
    expect(unsigned.status).toBe(404);
    expect(unsigned.json()).toEqual({ detail: "No protocol run for branch some-feature-branch" });
    expect((await step(id, "impl")).status).toBe("running");
    const signed = await github("check_suite", b);
    expect(signed.status).toBe(200);
    expect((await step(id, "impl")).status).toBe("completed");
  });
});

describe("CI on a protocol run (seed 004)", () => {
  it("check_suite success: the latest step completes, and the event is recorded on the run", async () => {
    const name = uniqueName("green");
    const id = await protocol(
      name,
      [
        { id: "s1", ...SLOW },
        { id: "s2", ...SLOW },
      ],
      "s1",
    );
    const delivery = randomUUID();
    const r = await github("check_suite", checkSuite(name, "success"), { delivery });
    expect(r.status, r.text).toBe(200);
    expect(r.json()).toEqual(RECORDED);
    const v = await run(id);
    expect(v.steps.find((s) => s.id === "s1")!.status).toBe("completed");
    expect(v.steps.find((s) => s.id === "s2")!.status).toBe("pending");
    expect(v.status).not.toBe("completed");
    expect(v.facts.ci).toMatchObject({
      status: "success",
      conclusion: "success",
      provider: "github",
      sha: githubExample("check_suite", 0).check_suite.head_sha,
    });
    expect(v.facts.webhook).toMatchObject({ event: "ci.success", provider: "github", deliveryId: delivery, branch: name });
    const history = await runs.history(id);
    const facts = history.find((e) => e.event.type === "run.facts_changed" && (e.event.data as any)?.facts?.ci);
    expect(facts?.event.data).toMatchObject({ why: "set by webhook:github" });
    expect(history.some((e) => e.event.type === "step.succeeded" && (e.event.data as any).stepId === "s1" && (e.event.data as any).external === true)).toBe(
      true,
    );
  });

  it('check_run failure: the step fails and the protocol is blocked ("CI failed; protocol blocked"); no fix attempt when they are off', async () => {
    const name = uniqueName("red");
    const id = await protocol(name, [{ id: "impl", ...SLOW }], "impl");
    const r = await github("check_run", failedCheckRun(name));
    expect(r.status).toBe(200);
    expect(r.json()).toEqual(RECORDED);
    const v = await run(id);
    expect(v.status).toBe("blocked");
    expect(v.error).toBe("CI failed; protocol blocked");
    expect(v.steps.find((s) => s.id === "impl")).toMatchObject({ status: "failed", error: "CI failed; protocol blocked", retries: 0 });
    expect(v.facts.ci).toMatchObject({ status: "failure", conclusion: "failure" });
    expect(v.facts.ciFixAttempts).toBeUndefined();
  });

  it("a step waiting in needs_qa fails on a CI failure (workflow_run action_required)", async () => {
    const name = uniqueName("needsqa");
    const id = await protocol(name, [{ id: "impl", qa: { auto: false } }], "impl");
    await waitStep(id, "impl", "needs_qa");
    const b = githubExample("workflow_run", 4);
    b.workflow_run.head_branch = name;
    const r = await github("workflow_run", b);
    expect(r.status).toBe(200);
    const v = await run(id);
    expect(v.steps.find((s) => s.id === "impl")!.status).toBe("failed");
    expect(v.status).toBe("blocked");
    expect(v.facts.ci).toMatchObject({ status: "failure", conclusion: "action_required" });
  });

  it("CI success on a step waiting in needs_qa completes it (forced approve)", async () => {
    const name = uniqueName("needsqa-green");
    const id = await protocol(
      name,
      [
        { id: "impl", qa: { auto: false } },
        { id: "next", ...SLOW },
      ],
      "impl",
    );
    await waitStep(id, "impl", "needs_qa");
    expect((await github("check_suite", checkSuite(name, "success"))).status).toBe(200);
    expect((await step(id, "impl")).status).toBe("completed");
  });

  it("CI pending (a check suite just requested) changes nothing but the record", async () => {
    const name = uniqueName("pending");
    const id = await protocol(name, [{ id: "impl", ...SLOW }], "impl");
    const b = githubExample("check_suite", 4);
    b.check_suite.head_branch = name;
    const r = await github("check_suite", b);
    expect(r.status).toBe(200);
    const v = await run(id);
    expect(v.steps.find((s) => s.id === "impl")!.status).toBe("running");
    expect(v.status).toBe("running");
    expect(v.facts.ci).toMatchObject({ status: "pending", conclusion: "queued" });
  });

  it("the same delivery id twice: the second is 200 Duplicate delivery ignored and changes nothing, even after a gateway restart", async () => {
    const name = uniqueName("replay");
    const id = await protocol(name, [{ id: "impl", ...SLOW }], "impl");
    const delivery = randomUUID();
    expect((await github("check_run", failedCheckRun(name), { delivery })).status).toBe(200);
    expect((await run(id)).status).toBe("blocked");
    /** What webhooks did to the run: its facts, its status, its steps, and the events they caused. */
    const effects = async () => {
      const v = await run(id);
      const caused = (await runs.history(id)).filter(
        (e) =>
          e.event.type === "run.facts_changed" ||
          (e.event.type.startsWith("step.") && e.event.type !== "step.result_ignored") ||
          e.event.type === "run.status_changed",
      );
      return { status: v.status, steps: v.steps.map((s) => [s.id, s.status]), facts: v.facts, caused: caused.map((e) => e.streamSeq) };
    };
    const seen = await effects();
    expect(seen.facts.webhook).toMatchObject({ event: "ci.failure", deliveryId: delivery });
    // Same id, another (validly signed) body: GitHub's redelivery after a timeout.
    const again = await github("check_suite", checkSuite(name, "success"), { delivery });
    expect(again.status).toBe(200);
    expect(again.json()).toEqual(DUPLICATE);
    expect(await effects()).toEqual(seen);

    await stack.kill("gateway");
    await stack.restart("gateway");
    const third = await github("check_suite", checkSuite(name, "success"), { delivery });
    expect(third.status).toBe(200);
    expect(third.json()).toEqual(DUPLICATE);
    expect(await effects()).toEqual(seen);
    // Another id is applied as usual.
    expect((await github("check_suite", checkSuite(name, "success"))).json()).toEqual(RECORDED);
    expect((await step(id, "impl")).status).toBe("completed");
  });
});

describe("the documented examples (docs/http-api.md)", () => {
  it("a minimal signed check_suite completes the step; a minimal GitLab pipeline failure blocks the protocol", async () => {
    const name = uniqueName("feature-x");
    const id = await protocol(
      name,
      [
        { id: "s1", ...SLOW },
        { id: "s2", ...SLOW },
      ],
      "s1",
    );
    const body = `{"action":"completed","check_suite":{"head_branch":"${name}","head_sha":"ec26c3e57ca3a959ca5aad62de7213c562f8c821","status":"completed","conclusion":"success"}}`;
    const r = await github("check_suite", undefined, { raw: body });
    expect(r.status, r.text).toBe(200);
    expect(r.json()).toEqual(RECORDED);
    expect((await step(id, "s1")).status).toBe("completed");

    await runs.signal(id, { name: "run_step", stepId: "s2" });
    const gl = await http("POST", `${base}/webhooks/gitlab`, {
      headers: { "content-type": "application/json", "x-gitlab-event": "Pipeline Hook", "x-gitlab-token": GL },
      body: `{"object_kind":"pipeline","object_attributes":{"id":31,"ref":"${name}","tag":false,"sha":"bcbb5ec396a2c0f828686f14fac9b80b780504f2","status":"failed"}}`,
    });
    expect(gl.status, gl.text).toBe(200);
    expect(gl.json()).toEqual(RECORDED);
    const v = await run(id);
    expect(v.steps.find((s) => s.id === "s2")!.status).toBe("failed");
    expect(v.status).toBe("blocked");
  });
});

describe("GitLab (X-Gitlab-Token)", () => {
  it("a pipeline success completes the latest step; a failure fails the next one and blocks the protocol", async () => {
    const name = uniqueName("gl");
    const id = await protocol(
      name,
      [
        { id: "s1", ...SLOW },
        { id: "s2", ...SLOW },
      ],
      "s1",
    );
    const ok = await gitlab("Pipeline Hook", pipeline(name, "success"));
    expect(ok.status, ok.text).toBe(200);
    expect(ok.json()).toEqual(RECORDED);
    expect((await step(id, "s1")).status).toBe("completed");
    expect((await run(id)).facts.webhook).toMatchObject({ event: "ci.success", provider: "gitlab", branch: name });

    await runs.signal(id, { name: "run_step", stepId: "s2" });
    const bad = await gitlab("Pipeline Hook", pipeline(name, "failed"));
    expect(bad.status).toBe(200);
    const v = await run(id);
    expect(v.steps.map((s) => [s.id, s.status])).toEqual([
      ["plan", "completed"],
      ["s1", "completed"],
      ["s2", "failed"],
    ]);
    expect(v.status).toBe("blocked");
  });

  it("a merged merge request completes the protocol", async () => {
    const name = uniqueName("gl-merge");
    const id = await protocol(name, [{ id: "s1", ...SLOW }, { id: "s2" }], "s1");
    const b = gitlabFixture("merge_request");
    Object.assign(b.object_attributes, { source_branch: name, action: "merge", state: "merged" });
    const r = await gitlab("Merge Request Hook", b);
    expect(r.status).toBe(200);
    const v = await run(id);
    expect(v.status).toBe("completed");
    expect(v.steps.every((s) => s.status === "completed")).toBe(true);
  });
});

describe("pull requests", () => {
  it("a merged pull request completes the protocol (its steps not done yet are approved)", async () => {
    const name = uniqueName("merge");
    const id = await protocol(name, [{ id: "s1" }, { id: "s2", ...SLOW }, { id: "s3" }], "s1");
    await waitStep(id, "s1", "completed");
    await runs.signal(id, { name: "run_step", stepId: "s2" });
    const b = githubExample("pull_request", 3);
    Object.assign(b.pull_request, { merged: true, merged_at: "2019-05-15T15:20:40Z" });
    b.pull_request.head.ref = name;
    const r = await github("pull_request", b);
    expect(r.status).toBe(200);
    expect(r.json()).toEqual(RECORDED);
    const v = await run(id);
    expect(v.status).toBe("completed");
    expect(v.steps.map((s) => s.status)).toEqual(["completed", "completed", "completed", "completed"]);
    expect(v.facts.pullRequest).toMatchObject({ number: 2, merged: true, action: "closed" });
    expect(v.facts.webhook).toMatchObject({ event: "pr.merged" });
    // A finished run is not changed any more: later events about its branch are ignored.
    const late = await github("check_suite", checkSuite(name, "failure"));
    expect(late.status).toBe(202);
    expect(late.json()).toEqual(IGNORED);
  });

  it("a ticket (seed 003): an opened pull request sets pr and draftPr; CI sets testsPassed; the merge makes it Done", async () => {
    const branch = uniqueName("ticket");
    const t = await runs.create({
      definition: { id: "ticket" },
      input: { branch, title: "Webhook ticket", description: "a ticket driven by webhooks" },
      autoStart: false,
    });
    const id = t.runId;
    // Webhooks find a run by its branch in the run index, which the event-bus keeps a moment behind the core.
    await waitFor(async () => (await runs.list({ labels: { branch }, limit: 1 })).runs[0]?.runId === id, { timeoutMs: 30_000, what: "the ticket run indexed" });
    const opened = githubExample("pull_request", 0);
    opened.pull_request.head.ref = branch;
    expect((await github("pull_request", opened)).status).toBe(200);
    expect((await run(id)).facts).toMatchObject({ pr: true, draftPr: true, pullRequest: { number: 2, action: "opened", merged: false } });

    expect((await github("check_run", failedCheckRun(branch))).status).toBe(200);
    expect((await run(id)).facts.testsPassed).toBe(false);
    expect((await github("check_suite", checkSuite(branch, "success"))).status).toBe(200);
    expect((await run(id)).facts.testsPassed).toBe(true);

    await runs.signal(id, { name: "start" });
    const merged = githubExample("pull_request", 3);
    Object.assign(merged.pull_request, { merged: true, merged_at: "2019-05-15T15:20:40Z" });
    merged.pull_request.head.ref = branch;
    expect((await github("pull_request", merged)).status).toBe(200);
    const v = await run(id);
    expect(v.facts.mergeCompleted).toBe(true);
    expect(v.stage).toBe("Done");
    expect(v.status).toBe("completed");
  });
});

describe("auto-QA on CI and CI fix attempts (TASKSGODZILLA_WEBHOOK_TOKEN; the orchestrator's ORCH_AUTO_QA_ON_CI, ORCH_CI_FIX_*)", () => {
  /** A protocol created while the orchestrator had neither, with its step running. */
  let before: { name: string; id: string };

  beforeAll(async () => {
    const name = uniqueName("before");
    before = { name, id: await protocol(name, [{ id: "impl", ...SLOW }], "impl") };
    // The CI settings are the core's: the orchestrator is replaced by one that has them.
    await stack.kill("orchestrator", "SIGTERM");
    await stack.spawn("orchestrator", {
      ORCH_GRPC_PORT: String(stack.grpcPort),
      TASKSGODZILLA_AUTO_QA_ON_CI: "true",
      ORCH_CI_FIX_MAX_ATTEMPTS: "2",
      ORCH_CI_FIX_COOLDOWN_MS: String(COOLDOWN_MS),
    });
  }, 60_000);

  it("a run keeps the CI policy it got at its creation: one created before the settings changed still has its step completed", async () => {
    const r = await github("check_suite", checkSuite(before.name, "success"), { secret: TG, url: qaGw.base });
    expect(r.status, r.text).toBe(200);
    expect(r.json()).toEqual(RECORDED);
    expect((await step(before.id, "impl")).status).toBe("completed");
    const created = (await runs.history(before.id)).find((e) => e.event.type === "run.created");
    expect((created!.event.data as any).ci).toEqual({ onSuccess: "complete", onFailure: "block", fixAttempts: 0, fixCooldownMs: 600_000 });
  });

  it("seed 004's one token signs GitHub deliveries and is GitLab's token", async () => {
    expect((await github("ping", githubExample("ping", 0), { secret: TG, url: qaGw.base })).status).toBe(202);
    expect((await github("ping", githubExample("ping", 0), { secret: GH, url: qaGw.base })).status).toBe(401);
    expect((await gitlab("Pipeline Hook", pipeline(uniqueName("none"), "success"), { secret: TG, url: qaGw.base })).status).toBe(404);
  });

  it("a CI success starts the step's QA and answers with the QA job", async () => {
    const name = uniqueName("qa");
    const id = await protocol(name, [{ id: "impl", ...SLOW }], "impl");
    const r = await github("check_suite", checkSuite(name, "success"), { secret: TG, url: qaGw.base });
    expect(r.status, r.text).toBe(200);
    const body = r.json();
    expect(body.message).toBe("Webhook recorded");
    expect(body.job).toMatchObject({
      job_id: `${id}.impl.2`,
      job_type: "run_quality_job",
      status: "queued",
      queue: "role.qa",
      payload: { run_id: id, step_id: "impl" },
    });
    expect((await step(id, "impl")).status).toBe("qa");
    const history = await runs.history(id);
    expect(history.some((e) => e.event.type === "step.qa_started")).toBe(true);
    expect((history.find((e) => e.event.type === "run.created")!.event.data as any).ci).toEqual({
      onSuccess: "qa",
      onFailure: "block",
      fixAttempts: 2,
      fixCooldownMs: COOLDOWN_MS,
    });
  });

  it("CI failures: the step fails, the protocol blocks, and it is run again at most twice, a cooldown apart", async () => {
    const name = uniqueName("fix");
    const id = await protocol(name, [{ id: "impl", ...SLOW }], "impl");
    const fail = () => github("check_run", failedCheckRun(name), { secret: TG, url: qaGw.base });

    // 1: failed, blocked, then fix attempt 1: the step runs again (a manual retry) and the protocol runs.
    expect((await fail()).status).toBe(200);
    let v = await run(id);
    expect(v.steps.find((s) => s.id === "impl")).toMatchObject({ status: "running", retries: 1 });
    expect(v.status).toBe("running");
    expect(v.facts).toMatchObject({ ciFixAttempts: 1, ciFix: { attempt: 1, max: 2, stepId: "impl", failure: { conclusion: "failure" } } });
    const firstAt = v.facts.ciFixLastAt as number;
    expect(typeof firstAt).toBe("number");
    // The agent is told what failed: the attempt's dispatch carries the CI failure as feedback.
    const started = (await runs.history(id)).filter((e) => e.event.type === "step.started" && (e.event.data as any).stepId === "impl").at(-1);
    expect((started!.event.data as any).hint).toMatch(/^CI failed on github.*failure/);

    // 2, at once: failed and blocked again; the cooldown refuses a fix attempt, and says so.
    expect((await fail()).status).toBe(200);
    v = await run(id);
    expect(v.steps.find((s) => s.id === "impl")).toMatchObject({ status: "failed", retries: 1 });
    expect(v.status).toBe("blocked");
    expect(v.facts.ciFixAttempts).toBe(1);
    expect((v.facts.ciFixRefused as any).reason).toMatch(/^CI fix attempt 2 of 2 waits for the cooldown/);

    // 3, after the cooldown: the failed step runs again (attempt 2).
    await new Promise((r) => setTimeout(r, Math.max(0, firstAt + COOLDOWN_MS - Date.now() + 200)));
    expect((await fail()).status).toBe(200);
    v = await run(id);
    expect(v.steps.find((s) => s.id === "impl")).toMatchObject({ status: "running", retries: 2 });
    expect(v.facts.ciFixAttempts).toBe(2);
    const secondAt = v.facts.ciFixLastAt as number;
    expect(secondAt).toBeGreaterThanOrEqual(firstAt + COOLDOWN_MS);

    // 4, after the cooldown again: no attempts left. The step stays failed, the protocol blocked.
    await new Promise((r) => setTimeout(r, Math.max(0, secondAt + COOLDOWN_MS - Date.now() + 200)));
    expect((await fail()).status).toBe(200);
    v = await run(id);
    expect(v.steps.find((s) => s.id === "impl")).toMatchObject({ status: "failed", retries: 2 });
    expect(v.status).toBe("blocked");
    expect(v.facts.ciFixAttempts).toBe(2);
    expect((v.facts.ciFixRefused as any).reason).toBe("CI fix attempts used up (2 of 2)");
    const history = await runs.history(id);
    const refusals = history.filter((e) => e.event.type === "run.facts_changed" && (e.event.data as any).facts?.ciFixRefused);
    expect(refusals).toHaveLength(2);
    expect(history.filter((e) => e.event.type === "ci.fix_refused").map((e) => (e.event.data as any).reason)).toEqual(
      refusals.map((e) => (e.event.data as any).facts.ciFixRefused.reason),
    );
    expect(history.filter((e) => e.event.type === "ci.fix_attempt").map((e) => (e.event.data as any).attempt)).toEqual([1, 2]);
    // Each delivery was one command, one transition: its events share one transition's stream sequence.
    const byDelivery = new Map<number, string[]>();
    for (const e of history) byDelivery.set(e.streamSeq, [...(byDelivery.get(e.streamSeq) ?? []), e.event.type]);
    expect([...byDelivery.values()].filter((types) => types.includes("ci.fix_attempt") || types.includes("ci.fix_refused"))).toEqual([
      // 1: the running step fails, the protocol blocks, and fix attempt 1 runs it again.
      ["run.facts_changed", "step.failed", "run.status_changed", "step.started", "run.status_changed", "ci.fix_attempt", "run.facts_changed"],
      // 2: it fails again, the cooldown refuses an attempt.
      ["run.facts_changed", "step.failed", "run.status_changed", "ci.fix_refused", "run.facts_changed"],
      // 3: the step was failed already: fix attempt 2.
      ["run.facts_changed", "step.started", "run.status_changed", "ci.fix_attempt", "run.facts_changed"],
      // 4: none left.
      ["run.facts_changed", "step.failed", "run.status_changed", "ci.fix_refused", "run.facts_changed"],
    ]);
  }, 60_000);
});

describe("logs", () => {
  it("never show a secret, a token or a signature", () => {
    const gateways = [stack.service("gateway"), qaGw.p, openGw.p, lockedGw.p];
    const text = gateways.flatMap((g) => g.raw).join("\n");
    expect(text).toContain("webhook recorded");
    for (const s of [GH, GL, TG, API, ...signatures]) expect(text.includes(s), s).toBe(false);
  });
});
