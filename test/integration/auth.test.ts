import { networkInterfaces } from "node:os";
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Stack, freePort, http, sse, waitFor, type ServiceProcess } from "@orch/testing";

/**
 * Authentication end to end, on the real gateway: the API token on every route but the open ones
 * (health, metrics, docs), in each surface's own error shape; project tokens that open one
 * project; stream tokens bound to one path that expire; seed 004's TASKSGODZILLA_API_TOKEN; no
 * token at all means loopback only; and no token ever reaches the logs.
 */

const TOKEN = "api-token-7f3a9c2e5b1d4a8f";
const PROJECT_TOKEN = "proj-token-2d8e6b4c1a9f7e3d";
const TTL_MS = 1_500;

let stack: Stack;
let base: string;
const spawned: ServiceProcess[] = [];
const bearer = { authorization: `Bearer ${TOKEN}` };
const issuedStreamTokens: string[] = [];

beforeAll(async () => {
  stack = await Stack.start({
    env: { ORCH_RATE_LIMIT_MAX: "10000" },
    serviceEnv: { gateway: { ORCH_API_TOKEN: TOKEN, ORCH_SSE_TOKEN_TTL_MS: String(TTL_MS) } },
  });
  base = stack.baseUrl;
});

afterAll(async () => {
  await stack?.stop();
});

/** Open without a token: liveness, metrics, the API's documentation (and the service root, which points at it), the console's static files. */
const OPEN = (path: string) =>
  /^\/(health|metrics|redoc|openapi\.yaml|console)?$/.test(path) || path === "/docs" || path.startsWith("/docs/") || path.startsWith("/console/");
/** Webhooks authenticate with their provider's signature or token, not the bearer. */
const WEBHOOK = (path: string) => /webhook/i.test(path);

interface Op {
  method: string;
  path: string;
  open: boolean;
}

async function operations(): Promise<Op[]> {
  const doc = (await http("GET", `${base}/docs/openapi.json`)).json();
  const out: Op[] = [];
  for (const [path, ops] of Object.entries<Record<string, { security?: unknown[] }>>(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      if (method === "parameters") continue;
      out.push({ method: method.toUpperCase(), path, open: Array.isArray(op.security) && op.security.length === 0 });
    }
  }
  return out;
}

const concrete = (path: string) => path.replace(/\{[^}]+\}/g, "00000000-0000-4000-8000-000000000000");

describe("with ORCH_API_TOKEN set", () => {
  it("every route but /health, /metrics and /docs* needs the bearer: 401 without it or with a wrong one", async () => {
    const ops = await operations();
    expect(ops.length).toBeGreaterThan(30);
    const open = ops.filter((o) => o.open);
    expect(open.filter((o) => !OPEN(o.path) && !WEBHOOK(o.path)).map((o) => `${o.method} ${o.path}`)).toEqual([]);
    expect(open.map((o) => o.path)).toEqual(expect.arrayContaining(["/health", "/docs"]));

    const closed = ops.filter((o) => !o.open);
    expect(closed.map((o) => o.path)).toEqual(expect.arrayContaining(["/api/v1/runs", "/api/orchestrator/jobs", "/ready"]));
    for (const o of closed) {
      const url = base + concrete(o.path);
      const json = o.method === "POST" || o.method === "PUT" || o.method === "PATCH" ? {} : undefined;
      for (const headers of [
        {} as Record<string, string>,
        { authorization: "Bearer wrong-token" },
        { authorization: `Bearer ${TOKEN}x` },
        { authorization: "Basic Zm9vOmJhcg==" },
      ]) {
        const r = await http(o.method, url, { headers, ...(json ? { json } : {}) });
        expect(r.status, `${o.method} ${o.path} ${JSON.stringify(headers)}: ${r.text}`).toBe(401);
        // Ours and seed 000's shape: { error: { code, message } }.
        if (o.path.startsWith("/api/v1/") || o.path.startsWith("/api/orchestrator/")) {
          expect(r.json(), `${o.method} ${o.path}`).toEqual({ error: { code: "UNAUTHORIZED", message: expect.any(String) } });
        }
      }
    }
    // A route that does not exist is not a way to probe either.
    expect((await http("GET", `${base}/api/v1/nothing-here`)).status).toBe(401);
  });

  it("opens everything with the bearer, and the open routes without it", async () => {
    expect((await http("GET", `${base}/api/v1/runs`, { headers: bearer })).status).toBe(200);
    expect((await http("GET", `${base}/api/orchestrator/ping`, { headers: { authorization: `bearer ${TOKEN}` } })).status).toBe(200);
    const job = await http("POST", `${base}/api/orchestrator/jobs`, { headers: bearer, json: { goal: "authed", steps: [], limits: { maxSteps: 2 } } });
    expect(job.status).toBe(200);
    for (const path of ["/health", "/metrics", "/docs", "/docs/openapi.json"]) expect((await http("GET", base + path)).status, path).toBe(200);
  });

  it("a project token alone opens that project's routes only (403 elsewhere); beside the bearer it is required", async () => {
    const created = await http("POST", `${base}/api/v1/projects`, { headers: bearer, json: { id: "vault", name: "Vault", token: PROJECT_TOKEN } });
    expect(created.status, created.text).toBe(201);
    expect((await http("POST", `${base}/api/v1/projects`, { headers: bearer, json: { id: "other", name: "Other" } })).status).toBe(201);
    const pt = { "x-project-token": PROJECT_TOKEN };

    expect((await http("GET", `${base}/api/v1/projects/vault`, { headers: pt })).json()).toMatchObject({ id: "vault", hasToken: true });
    const run = await http("POST", `${base}/api/v1/runs`, { headers: pt, json: { definition: "speckit.specify", projectId: "vault", autoStart: false } });
    expect(run.status, run.text).toBe(201);
    const runId = run.json().id;
    expect((await http("GET", `${base}/api/v1/runs/${runId}`, { headers: pt })).status).toBe(200);
    expect((await http("GET", `${base}/api/v1/runs/${runId}/history`, { headers: pt })).status).toBe(200);
    const mine = await waitFor(
      async () => {
        const r = (await http("GET", `${base}/api/v1/runs`, { headers: pt })).json();
        return r.items.length > 0 ? r : undefined;
      },
      { what: "the project's run in the index" },
    );
    expect(mine.items.every((x: any) => x.projectId === "vault")).toBe(true);
    expect((await http("GET", `${base}/api/v1/projects`, { headers: pt })).json().items.map((p: any) => p.id)).toEqual(["vault"]);

    // Elsewhere: 403 in our shape.
    const otherRun = await http("POST", `${base}/api/v1/runs`, {
      headers: bearer,
      json: { definition: "speckit.specify", projectId: "other", autoStart: false },
    });
    expect(otherRun.status).toBe(201);
    for (const [method, path, json] of [
      ["GET", "/api/v1/projects/other"],
      ["GET", `/api/v1/runs/${otherRun.json().id}`],
      ["GET", "/api/v1/runs?projectId=other"],
      ["POST", "/api/v1/runs", { definition: "speckit.specify", projectId: "other", autoStart: false }],
      ["POST", "/api/v1/runs", { definition: "speckit.specify", autoStart: false }],
      ["POST", "/api/v1/projects", { name: "x" }],
      ["GET", "/api/v1/definitions"],
      ["GET", "/api/v1/timers"],
      ["GET", "/api/orchestrator/ping"],
    ] as [string, string, unknown?][]) {
      const r = await http(method, base + path, { headers: pt, ...(json ? { json } : {}) });
      expect(r.status, `${method} ${path}: ${r.text}`).toBe(403);
      if (path.startsWith("/api/")) expect(r.json().error.code, path).toBe("FORBIDDEN");
    }
    // Stream tokens for its own streams only.
    expect((await http("POST", `${base}/api/v1/stream-tokens`, { headers: pt, json: { path: `/api/v1/runs/${runId}/events` } })).status).toBe(201);
    expect((await http("POST", `${base}/api/v1/stream-tokens`, { headers: pt, json: { path: `/api/v1/runs/${otherRun.json().id}/events` } })).status).toBe(403);
    expect((await http("POST", `${base}/api/v1/stream-tokens`, { headers: pt, json: { path: "/api/orchestrator/events" } })).status).toBe(403);
    // A wrong project token is no token at all.
    expect((await http("GET", `${base}/api/v1/projects/vault`, { headers: { "x-project-token": "nope-nope-nope-nope" } })).status).toBe(401);
    // With the bearer, a project with a token of its own also needs it.
    const denied = await http("GET", `${base}/api/v1/projects/vault`, { headers: bearer });
    expect(denied.status).toBe(401);
    expect(denied.json()).toEqual({ error: { code: "UNAUTHORIZED", message: "Project access denied" } });
    expect((await http("GET", `${base}/api/v1/projects/vault`, { headers: { ...bearer, ...pt } })).status).toBe(200);

    // A replaced token stops working at once.
    const NEW = `${PROJECT_TOKEN}-rotated`;
    expect((await http("PUT", `${base}/api/v1/projects/vault`, { headers: { ...bearer, ...pt }, json: { token: NEW } })).status).toBe(200);
    expect((await http("GET", `${base}/api/v1/projects/vault`, { headers: pt })).status).toBe(401);
    expect((await http("GET", `${base}/api/v1/projects/vault`, { headers: { "x-project-token": NEW } })).status).toBe(200);
  });

  it("a stream token opens its one event stream, for GET, until it expires", async () => {
    const run = await http("POST", `${base}/api/v1/runs`, { headers: bearer, json: { definition: "speckit.specify", autoStart: false } });
    const id = run.json().id;
    const path = `/api/v1/runs/${id}/events`;
    const issued = await http("POST", `${base}/api/v1/stream-tokens`, { headers: bearer, json: { path } });
    expect(issued.status, issued.text).toBe(201);
    const { token, expiresAt } = issued.json();
    issuedStreamTokens.push(token);
    expect(Date.parse(expiresAt) - Date.now()).toBeLessThanOrEqual(TTL_MS);

    const s = await sse(`${base}${path}?access_token=${encodeURIComponent(token)}`);
    expect(s.status).toBe(200);
    await s.waitFor((f) => f.event === "run.created");
    s.close();
    // Not another path, not another method, not a tampered token.
    const other = await http("GET", `${base}/api/v1/runs/${id}?access_token=${encodeURIComponent(token)}`);
    expect(other.status).toBe(401);
    expect(other.json().error.code).toBe("UNAUTHORIZED");
    expect((await http("GET", `${base}/api/v1/runs/${id}/history?access_token=${encodeURIComponent(token)}`)).status).toBe(401);
    expect((await http("POST", `${base}${path}?access_token=${encodeURIComponent(token)}`, { json: {} })).status).toBe(401);
    expect((await http("GET", `${base}${path}?access_token=${encodeURIComponent(token.slice(0, -2) + "xx")}`)).status).toBe(401);
    // Seed 000's stream takes one too.
    const t0 = (await http("POST", `${base}/api/v1/stream-tokens`, { headers: bearer, json: { path: "/api/orchestrator/events" } })).json().token;
    issuedStreamTokens.push(t0);
    const job = (await http("POST", `${base}/api/orchestrator/jobs`, { headers: bearer, json: { goal: "s", steps: [], limits: { maxSteps: 2 } } })).json()
      .job_id;
    const s0 = await sse(`${base}/api/orchestrator/events?job=${job}&access_token=${encodeURIComponent(t0)}`);
    expect(s0.status).toBe(200);
    await s0.ended;
    expect(s0.frames.at(-1)?.event).toBe("end");
    // And it expires.
    await waitFor(
      async () => {
        // The stream stays open while the token is good: look at the status only.
        const probe = await sse(`${base}${path}?access_token=${encodeURIComponent(token)}`);
        probe.close();
        return probe.status === 401;
      },
      { timeoutMs: TTL_MS + 5_000, what: "the stream token to expire" },
    );
    const expired = await http("GET", `${base}${path}?access_token=${encodeURIComponent(token)}`);
    expect(expired.json().error.message).toMatch(/expired/);
  });
});

describe("other gateways on the same system", () => {
  it("honours seed 004's TASKSGODZILLA_API_TOKEN", async () => {
    const port = await freePort();
    const gw = await stack.spawn("gateway", { PORT: String(port), HOST: "127.0.0.1", TASKSGODZILLA_API_TOKEN: "godzilla-token-1234" });
    spawned.push(gw);
    try {
      const url = `http://127.0.0.1:${port}/api/v1/runs`;
      expect((await http("GET", url)).status).toBe(401);
      expect((await http("GET", url, { headers: { authorization: "Bearer nope" } })).status).toBe(401);
      expect((await http("GET", url, { headers: { authorization: "Bearer godzilla-token-1234" } })).status).toBe(200);
      expect((await gw.waitForLog((l) => l.msg === "gateway listening")).auth).toBe("bearer");
    } finally {
      await gw.stop();
    }
    expect(gw.raw.some((l) => l.includes("godzilla-token-1234"))).toBe(false);
  });

  it("with no token and HOST=0.0.0.0 listens on 127.0.0.1 only, and says auth is off", async () => {
    const port = await freePort();
    const gw = await stack.spawn("gateway", { PORT: String(port), HOST: "0.0.0.0" });
    spawned.push(gw);
    try {
      const warn = await gw.waitForLog((l) => typeof l.msg === "string" && l.msg.includes("AUTH IS OFF"));
      expect(warn.level).toBe("warn");
      expect(warn.msg).toMatch(/refusing to listen on 0\.0\.0\.0; listening on 127\.0\.0\.1 only/);
      const listening = await gw.waitForLog((l) => l.msg === "gateway listening");
      expect(listening).toMatchObject({ host: "127.0.0.1", port, auth: "off" });
      expect((await http("GET", `http://127.0.0.1:${port}/api/v1/runs`)).status).toBe(200);
      // Not reachable on the machine's other addresses.
      const external = Object.values(networkInterfaces())
        .flat()
        .find((a) => a && a.family === "IPv4" && !a.internal)?.address;
      if (external) {
        const refused = await new Promise<boolean>((resolve) => {
          const sock = connect({ host: external, port }, () => {
            sock.destroy();
            resolve(false);
          });
          sock.once("error", () => resolve(true));
        });
        expect(refused, `connect to ${external}:${port}`).toBe(true);
      }
    } finally {
      await gw.stop();
    }
  });
});

describe("logs", () => {
  it("never contain a token: not the API token, not a project token, not a stream token", async () => {
    const gw = stack.service("gateway");
    const lines = [...gw.raw, ...spawned.flatMap((s) => s.raw)];
    // The requests above were logged (so this looks at something), with the stream token redacted.
    expect(lines.some((l) => l.includes("access_token=[redacted]"))).toBe(true);
    expect(issuedStreamTokens.length).toBeGreaterThan(0);
    for (const secret of [TOKEN, PROJECT_TOKEN, ...issuedStreamTokens, ...issuedStreamTokens.map(encodeURIComponent)]) {
      const hit = lines.find((l) => l.includes(secret));
      expect(hit, `a log line contains a token: ${hit}`).toBeUndefined();
    }
    // Not even the signature half of a stream token.
    for (const t of issuedStreamTokens) expect(lines.some((l) => l.includes(t.split(".")[1]!))).toBe(false);
  });
});
