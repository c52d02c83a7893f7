import { afterAll, beforeAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { connectBus, topologyFromConfig, type Bus } from "@orch/bus";
import { GatewayConfig, loadConfig } from "@orch/config";
import { createLogger } from "@orch/logging";
import { Stack, http } from "@orch/testing";
import type { FastifyInstance } from "fastify";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildApp } from "../../services/gateway/src/app.js";

/**
 * Property-based: generated paths, query strings, headers, content types, bodies and sizes thrown
 * at every route the gateway serves (every surface, ours and the seeds'), with the rest of the
 * system running for real behind it. No answer may be a 5xx, and the gateway must still be up
 * after all of it. Routes are discovered from the app, so a new route is fuzzed without a change here.
 */

let stack: Stack;
let bus: Bus;
let app: FastifyInstance;
/** Ids of real resources (a job, a workflow, a project, protocol and step, a task), so generated requests also reach deep paths. */
const known: string[] = [];
const repo = mkdtempSync(join(tmpdir(), "orch-fuzz-repo-"));

async function post(url: string, body: unknown): Promise<Record<string, unknown>> {
  const r = await app.inject({ method: "POST", url, payload: body as object });
  if (r.statusCode >= 300) throw new Error(`${url}: ${r.statusCode} ${r.body}`);
  return r.json();
}

beforeAll(async () => {
  const git = (...a: string[]) => execFileSync("git", ["-c", "user.name=T", "-c", "user.email=t@localhost", ...a], { cwd: repo });
  git("init", "-q", "-b", "main");
  writeFileSync(join(repo, "README.md"), "# fuzz\n");
  git("add", "-A");
  git("commit", "-q", "-m", "initial");
  stack = await Stack.start({ services: ["event-bus", "orchestrator", "agent-hub", "scheduler"] });
  bus = await connectBus({ url: stack.nats.url, name: "fuzz", logger: createLogger({ service: "test", level: "silent" }) });
  const cfg = loadConfig(GatewayConfig, {
    ORCH_CONFIG: "none",
    ORCH_RATE_LIMIT_MAX: "1000000",
    ORCH_RATE_LIMIT_ENABLED: "false",
    ORCH_SSE_HEARTBEAT_MS: "1000",
  });
  app = await buildApp({
    cfg,
    bus,
    topology: topologyFromConfig(bus.names, cfg),
    logger: createLogger({ service: "gateway", level: "silent" }),
    version: "fuzz",
  });
  await app.ready();
  known.push(String((await post("/api/orchestrator/jobs", { goal: "fuzz", limits: { maxSteps: 2 } })).job_id));
  known.push(String((await post("/workflows", { workflow_type: "specify", feature_description: "Fuzz every surface of the gateway" })).id));
  const project = await post("/projects", { name: "fuzz", git_url: "https://example.invalid/fuzz.git", local_path: repo });
  const protocol = await post(`/projects/${project.id}/protocols`, { protocol_name: "fuzz-protocol" });
  const step = await post(`/protocols/${protocol.id}/steps`, { step_index: 0, step_name: "build", step_type: "exec" });
  const task = await post("/tasks", { id: "fuzz-task", role: "implementer", description: "fuzz the surfaces" });
  known.push(
    String(project.id),
    String(protocol.id),
    String(step.id),
    "fuzz-task",
    String(task.runId),
    "default",
    "job",
    "speckit.specify",
    "protocol",
    "phase_1",
    "plan",
  );
});

afterAll(async () => {
  await app?.close();
  await bus?.close();
  await stack?.stop();
  rmSync(repo, { recursive: true, force: true });
});

const segment = fc.oneof(
  fc.nat().map((i) => known[i % Math.max(1, known.length)] ?? "x"),
  fc.constantFrom(
    "1",
    "0",
    "-1",
    "999999999999999999999",
    "abc",
    "run-1",
    "00000000-0000-0000-0000-000000000000",
    "..",
    "%2e%2e",
    "%00",
    "%ZZ",
    "a%2Fb",
    "😀",
    " ",
    "null",
    "true",
  ),
  fc.uuid(),
  fc.integer({ min: -5, max: 100_000 }).map(String),
  fc.string({ minLength: 1, maxLength: 40 }).map((s) => encodeURIComponent(s)),
  fc.string({ minLength: 200, maxLength: 600 }).map((s) => encodeURIComponent(s)),
);

const queryValue = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.integer().map(String),
  fc.constantFrom("", "true", "1", "-1", "queued", "running", "completed", "x".repeat(3000)),
);
const query = fc.dictionary(
  fc.constantFrom(
    "status",
    "limit",
    "offset",
    "cursor",
    "n",
    "job",
    "once",
    "project_id",
    "projectId",
    "version",
    "label",
    "view",
    "last_event_id",
    "access_token",
    "after",
    "x",
  ),
  queryValue,
  { maxKeys: 4 },
);

const jsonBody = fc.oneof(
  fc.jsonValue({ maxDepth: 4 }),
  fc.record(
    {
      goal: fc.oneof(fc.string(), fc.integer()),
      id: fc.oneof(fc.string(), fc.integer()),
      name: fc.string(),
      role: fc.constantFrom("architect", "implementer", "reviewer", "tester", "maintainer", "qa", "wizard"),
      description: fc.string(),
      workflow_type: fc.constantFrom("specify", "plan", "tasks", "implement", "other"),
      feature_description: fc.string({ maxLength: 40 }),
      trigger: fc.constantFrom("agent_complete", "human_approved", "human_rejected", "start", "nope"),
      protocol_name: fc.string({ maxLength: 20 }),
      git_url: fc.string({ maxLength: 30 }),
      step_index: fc.oneof(fc.integer({ min: -3, max: 5 }), fc.string()),
      step_name: fc.string(),
      step_type: fc.string(),
      definition: fc.oneof(fc.record({ id: fc.constantFrom("job", "speckit.specify", "protocol", "nope", "") }), fc.string()),
      limits: fc.dictionary(fc.string({ maxLength: 10 }), fc.jsonValue({ maxDepth: 1 })),
      confirm: fc.oneof(fc.boolean(), fc.string()),
      path: fc.string(),
      text: fc.string(),
      signal: fc.jsonValue({ maxDepth: 2 }),
    },
    { requiredKeys: [] },
  ),
);

const body = fc.oneof(
  jsonBody.map((v) => ({ type: "application/json", payload: JSON.stringify(v) })),
  fc.string({ maxLength: 200 }).map((s) => ({ type: "application/json", payload: s })),
  fc
    .constantFrom("{", "[", '{"__proto__":{"x":1}}', '{"constructor":{"prototype":{"x":1}}}', "null", "\u0000", "")
    .map((s) => ({ type: "application/json", payload: s })),
  fc
    .tuple(
      fc.constantFrom(
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "application/json; charset=latin1",
        "application/vnd.api+json",
        "",
        "garbage/\u00ff",
      ),
      fc.string({ maxLength: 100 }),
    )
    .map(([type, payload]) => ({ type, payload })),
  fc.integer({ min: 30_000, max: 70_000 }).map((n) => ({ type: "application/json", payload: JSON.stringify({ goal: "x".repeat(n) }) })),
  fc.constant(undefined),
);

const headers = fc.record(
  {
    authorization: fc.oneof(
      fc.constant("Bearer "),
      fc.string({ maxLength: 40 }).map((s) => `Bearer ${s}`),
      fc.string({ maxLength: 20 }),
    ),
    "x-project-token": fc.string({ maxLength: 40 }),
    "last-event-id": fc.oneof(fc.integer().map(String), fc.string({ maxLength: 20 })),
    "x-request-id": fc.string({ maxLength: 200 }),
    "idempotency-key": fc.string({ maxLength: 300 }),
    "x-hub-signature-256": fc.string({ maxLength: 80 }),
    "x-github-event": fc.constantFrom("push", "pull_request", "check_run", "ping", "nope"),
    "x-gitlab-token": fc.string({ maxLength: 20 }),
    "x-gitlab-event": fc.constantFrom("Push Hook", "Pipeline Hook", "nope"),
  },
  { requiredKeys: [] },
);

const printable = (h: Record<string, string>) => Object.fromEntries(Object.entries(h).filter(([, v]) => /^[\t\x20-\x7e]*$/.test(v)));

/** One request with a deadline: event streams and long waits are read for a moment, then dropped. */
async function send(method: string, url: string, h: Record<string, string>, b: { type: string; payload: string } | undefined) {
  const res = await Promise.race([
    app.inject({
      method: method as never,
      url,
      headers: { ...printable(h), ...(b && b.type ? { "content-type": b.type } : {}) },
      ...(b ? { payload: b.payload } : {}),
      payloadAsStream: true,
    }),
    new Promise<null>((r) => setTimeout(() => r(null), 15_000)),
  ]);
  if (res === null) return null;
  const stream = res.stream();
  stream.on("error", () => {});
  setTimeout(() => stream.destroy(), 200).unref();
  return res.statusCode;
}

describe("every route, fuzzed", () => {
  it("answers generated requests without a 5xx and stays up", { timeout: 600_000 }, async () => {
    const routes = app.routeTable.filter((r) => r.method !== "HEAD");
    expect(routes.length).toBeGreaterThan(10);
    const failures: string[] = [];
    let sent = 0;
    for (const r of routes) {
      const names = [...r.url.matchAll(/:([A-Za-z0-9_]+)|\*/g)].length;
      await fc
        .assert(
          fc.asyncProperty(fc.array(segment, { minLength: names, maxLength: names }), query, headers, body, async (segs, q, h, b) => {
            let i = 0;
            const path = r.url.replace(/:([A-Za-z0-9_]+)|\*/g, () => segs[i++] ?? "x");
            const qs = new URLSearchParams(q).toString();
            const status = await send(r.method, qs ? `${path}?${qs}` : path, h, r.method === "GET" ? undefined : b);
            sent++;
            if (status !== null && status >= 500) failures.push(`${r.method} ${path}?${qs} → ${status}`);
            return status === null || status < 500;
          }),
          { numRuns: 20, seed: 20261122, endOnFailure: true },
        )
        .catch((err: Error) => failures.push(`${r.method} ${r.url}: ${err.message.split("\n").slice(0, 3).join(" ")}`));
    }
    expect(failures).toEqual([]);
    expect(sent).toBeGreaterThanOrEqual(routes.length * 20);
    const health = await app.inject({ url: "/health" });
    expect(health.statusCode).toBe(200);
  });
});

describe("deeply nested and oversized input, over a socket", () => {
  let base: string;
  beforeAll(async () => {
    await app.listen({ port: 0, host: "127.0.0.1" });
    base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  });

  /** ~30 KB of nesting, under the body limit: `{"a":{"a":…1…}}`, `[[…]]`, and the same inside a field. */
  const DEEP = 5_000;
  const deepObject = `${'{"a":'.repeat(DEEP)}1${"}".repeat(DEEP)}`;
  const deepArray = `${"[".repeat(DEEP)}${"]".repeat(DEEP)}`;
  const bodies = { object: deepObject, array: deepArray, field: `{"name":"x","git_url":"y","context":${deepObject}}` };

  it("every route that takes a body refuses deep JSON with its surface's 400 or 422, never a 5xx, and echoes none of it", { timeout: 300_000 }, async () => {
    const routes = app.routeTable.filter((r) => !["GET", "HEAD", "OPTIONS"].includes(r.method));
    expect(routes.length).toBeGreaterThan(30);
    const seen: string[] = [];
    for (const r of routes) {
      const path = r.url.replace(/:([A-Za-z0-9_]+)|\*/g, "1");
      for (const [name, payload] of Object.entries(bodies)) {
        // With its length: Node's client sends a DELETE's body neither chunked nor with a length otherwise.
        const headers = { "content-type": "application/json", "content-length": String(Buffer.byteLength(payload)) };
        const res = await http(r.method, `${base}${path}`, { headers, body: payload });
        seen.push(`${r.method} ${r.url} (${name}) → ${res.status}`);
        expect(res.status, `${r.method} ${r.url} (${name}): ${res.text.slice(0, 300)}`).toBeOneOf([400, 422]);
        expect(res.text.length, `${r.method} ${r.url} (${name}) echoes the input`).toBeLessThan(1_000);
      }
    }
    // Each surface in its own words.
    const shape = async (method: string, path: string) =>
      (await http(method, `${base}${path}`, { headers: { "content-type": "application/json" }, body: deepObject })).json();
    expect(await shape("POST", "/workflows")).toMatchObject({ detail: [{ type: "json_invalid", loc: ["body", 0], msg: "JSON decode error" }] });
    expect(await shape("POST", `/workflows/${known[1]}/advance`)).toMatchObject({ detail: [{ type: "json_invalid", msg: "JSON decode error" }] });
    expect(await shape("POST", "/projects")).toMatchObject({ detail: [{ type: "json_invalid", msg: "JSON decode error" }] });
    expect(await shape("POST", "/api/v1/runs")).toEqual({ error: { code: "BAD_REQUEST", message: "JSON body nested deeper than 64 levels" } });
    expect(await shape("POST", "/api/orchestrator/jobs")).toMatchObject({ error: { code: "BAD_REQUEST" } });
    expect(await shape("POST", "/tasks")).toEqual({ ok: false, error: "bad_request" });
    expect(await shape("POST", "/webhooks/github")).toEqual({ detail: "Invalid JSON body" });
    // A definition's YAML text: the same bound once parsed (and a parser's own overflow is a 400).
    const yaml = (text: string) =>
      http("POST", `${base}/api/v1/definitions`, { headers: { "content-type": "text/yaml", "content-length": String(Buffer.byteLength(text)) }, body: text });
    const deepYaml = await yaml(`id: deep\nversion: 1\nfacts: ${"{a: ".repeat(100)}1${"}".repeat(100)}\n`);
    expect(deepYaml.status, deepYaml.text).toBe(400);
    expect(deepYaml.json().error.message).toBe("JSON body nested deeper than 64 levels");
    expect((await yaml(`${"[".repeat(DEEP)}${"]".repeat(DEEP)}`)).status).toBe(400);
    // 64 levels is allowed: a body just under the bound is validated as usual.
    const ok = await http("POST", `${base}/api/v1/runs`, {
      json: { definition: "job", input: JSON.parse(`${'{"a":'.repeat(62)}1${"}".repeat(62)}`), steps: [{ id: "s0", type: "dev.log" }] },
    });
    expect(ok.status, ok.text).toBe(201);
  });

  it("a long input is echoed cut short in FastAPI's 422 bodies", async () => {
    const long = "x".repeat(20_000);
    for (const [path, body] of [
      ["/projects", { git_url: long }],
      ["/projects", { git_url: "y", name: { long } }],
      ["/workflows", { workflow_type: "specify", context: { long } }],
    ] as const) {
      const r = await http("POST", `${base}${path}`, { json: body });
      expect(r.status, r.text).toBe(422);
      expect(r.text.length).toBeLessThan(1_000);
      for (const item of r.json().detail) {
        expect(item).toMatchObject({ type: expect.any(String), loc: expect.any(Array), msg: expect.any(String) });
        if (typeof item.input === "string" && item.input.length > 200) expect(item.input).toMatch(/^.{200}…$/s);
      }
    }
    // Small inputs are echoed as they came.
    expect((await http("POST", `${base}/projects`, { json: { git_url: "x" } })).json()).toEqual({
      detail: [{ type: "missing", loc: ["body", "name"], msg: "Field required", input: { git_url: "x" } }],
    });
  });
});
