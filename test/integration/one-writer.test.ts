import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectBus, decode, encode, type Bus } from "@orch/bus";
import {
  DefinitionPutAnswer,
  DefinitionPutRequest,
  IdAssignAnswer,
  IdAssignRequest,
  kvStreamOf,
  MAX_RUN_STEPS,
  ProjectUpdateRequest,
  ProjectWriteAnswer,
  RPC,
} from "@orch/contracts";
import { createLogger } from "@orch/logging";
import { Stack, freePort, http, waitFor, type HttpResponse, type ServiceProcess } from "@orch/testing";

/**
 * One writer: definitions, projects and the numbers that name things are written by the core only,
 * asked over NATS request/reply (`<p>.rpc.*`) and answered by any orchestrator replica; readers
 * never allocate. Over the real system: the core's answers and refusals on the wire, a second
 * replica answering when the first is gone, nothing answering (so nothing written) when no core
 * runs, GETs of every seed 004 read route leaving the `ids` bucket and the runs stream as they
 * were, seed 004's integer ids the same across surfaces, gateways and restarts, and seed 002's
 * feature numbers consecutive under concurrent creates.
 */

let stack: Stack;
let base: string;
let bus: Bus;
let replica: ServiceProcess;

beforeAll(async () => {
  stack = await Stack.start({
    // Bodies larger than NATS carries (1 MiB by default) reach the gateway.
    env: { ORCH_RATE_LIMIT_MAX: "100000", ORCH_MAX_REQUEST_BYTES: String(4 * 1024 * 1024) },
    serviceEnv: { orchestrator: { ORCH_INSTANCE_ID: "core-a" } },
  });
  base = stack.baseUrl;
  bus = await connectBus({ url: stack.nats.url, name: "probe", logger: createLogger({ service: "test", level: "silent" }) });
}, 60_000);

afterAll(async () => {
  await bus?.close();
  await stack?.stop();
});

const api = (method: string, path: string, json?: unknown, headers: Record<string, string> = {}) =>
  http(method, `${base}${path}`, { ...(json !== undefined ? { json } : {}), headers });

function ok(r: HttpResponse, status = 200): any {
  expect(r.status, r.text).toBe(status);
  return r.json();
}

/** One request on a write subject, as any edge sends it. */
async function ask(name: string, body: Uint8Array): Promise<Uint8Array> {
  return (await bus.nc.request(bus.names.subjects.rpc(name), body, { timeout: 10_000 })).data;
}

const definition = (version: number, title: string) => ({
  id: "acme.writer",
  version,
  title,
  steps: [{ id: "build", role: "implementer", type: "dev.log" }],
});

/** What reads must leave as it is: the numbers the core assigned, and every run's transitions. */
async function written() {
  const runs = (await bus.jsm.streams.info(bus.names.streams.runs)).state;
  const ids = (await bus.jsm.streams.info(kvStreamOf(bus.names.buckets.ids))).state;
  const projects = (await bus.jsm.streams.info(kvStreamOf(bus.names.buckets.projects))).state;
  return { runs: runs.last_seq, ids: ids.last_seq, projects: projects.last_seq };
}

describe("the core writes definitions", () => {
  it("answers definitions.put: created, the same again, ALREADY_EXISTS, INVALID with the issues", async () => {
    const put = async (d: unknown) => {
      const a = decode(DefinitionPutAnswer, await ask(RPC.definitionsPut, encode(DefinitionPutRequest, { definition: d, actor: "test" })));
      expect(a.ok, a.ok ? "" : a.error).toBe(true);
      return (a as { value: DefinitionPutAnswer }).value;
    };
    expect(await put(definition(1, "first"))).toMatchObject({ ok: true, created: true, summary: { id: "acme.writer", version: 1, source: "stored" } });
    expect(await put(definition(1, "first"))).toMatchObject({ ok: true, created: false });
    expect(await put(definition(1, "other"))).toMatchObject({ ok: false, error: { code: "ALREADY_EXISTS" } });
    const bad = await put({ id: "acme.writer", version: "two", steps: "none" });
    expect(bad).toMatchObject({ ok: false, error: { code: "INVALID" } });
    expect(bad.ok ? [] : bad.error.issues!.map((i) => i.path).sort()).toEqual(["steps", "version"]);
    // A request that is not one: INVALID, and nothing written.
    const garbage = decode(DefinitionPutAnswer, await ask(RPC.definitionsPut, new TextEncoder().encode("not json")));
    expect(garbage.ok && garbage.value).toMatchObject({ ok: false, error: { code: "INVALID" } });
    // Our API publishes through the same request and answers as before.
    const r = await api("POST", "/api/v1/definitions", definition(2, "second"));
    expect(ok(r, 201)).toMatchObject({ id: "acme.writer", version: 2 });
    expect(ok(await api("GET", "/api/v1/definitions/acme.writer"))).toMatchObject({ version: 2, title: "second" });
    const conflict = await api("POST", "/api/v1/definitions", definition(2, "changed"));
    expect(conflict.status).toBe(409);
    expect(conflict.json().error.code).toBe("CONFLICT");
    // A definition larger than NATS carries cannot be asked for: 413, not a failure.
    const huge = { ...definition(9, "huge"), steps: [{ id: "big", role: "implementer", type: "dev.log", payload: { blob: "x".repeat(1_500_000) } }] };
    const tooLarge = await api("POST", "/api/v1/definitions", huge);
    expect(tooLarge.status, tooLarge.text).toBe(413);
    expect(tooLarge.json().error.code).toBe("PAYLOAD_TOO_LARGE");
    const invalid = await api("POST", "/api/v1/definitions", { id: "acme.writer", version: 0 });
    expect(invalid.status).toBe(400);
    expect(invalid.json().error).toMatchObject({
      code: "BAD_REQUEST",
      details: { fields: expect.arrayContaining([expect.objectContaining({ path: "version" })]) },
    });
  });
});

describe("the core writes projects", () => {
  it("answers projects.update and keeps project tokens out of every answer", async () => {
    const hash = "a".repeat(64);
    const create = decode(
      ProjectWriteAnswer,
      await ask(RPC.projectsUpdate, encode(ProjectUpdateRequest, { id: "wire", fields: { name: "Wire" }, tokenSha256: hash, createIfMissing: true })),
    );
    expect(create.ok && create.value).toMatchObject({
      ok: true,
      created: true,
      project: { id: "wire", name: "Wire", tokenSha256: hash },
      number: expect.any(Number),
    });
    const missing = decode(ProjectWriteAnswer, await ask(RPC.projectsUpdate, encode(ProjectUpdateRequest, { id: "nowhere", fields: { name: "x" } })));
    expect(missing.ok && missing.value).toMatchObject({ ok: false, error: { code: "NOT_FOUND" } });
    const noName = decode(
      ProjectWriteAnswer,
      await ask(RPC.projectsUpdate, encode(ProjectUpdateRequest, { id: "nameless", fields: {}, createIfMissing: true })),
    );
    expect(noName.ok && noName.value).toMatchObject({ ok: false, error: { code: "INVALID", issues: [{ path: "name" }] } });

    // The token opens its project (the core indexed it); the API never shows it.
    const p = ok(await api("GET", "/api/v1/projects/wire", undefined, { "x-project-token": "irrelevant" }), 401);
    expect(p.error.code).toBe("UNAUTHORIZED");
    const shown = await api("GET", "/api/v1/projects");
    expect(shown.text).not.toContain(hash);
  });

  it("numbers a project once, when it is created, whichever surface creates it", async () => {
    const v1 = ok(await api("POST", "/api/v1/projects", { id: "numbered", name: "Numbered" }), 201);
    const n = Number(v1.alias);
    expect(Number.isInteger(n) && n > 0).toBe(true);
    const tg = ok(await api("POST", "/projects", { name: "tg", git_url: "", local_path: "/nonexistent" }));
    expect(tg.id).toBeGreaterThan(n);
    const list = ok(await api("GET", "/projects")).map((x: any) => [x.id, x.name]);
    expect(list).toEqual(
      expect.arrayContaining([
        [n, "Numbered"],
        [tg.id, "tg"],
      ]),
    );
    // The same number, asked again (a retry, another gateway): ids.assign answers what it has.
    const again = decode(IdAssignAnswer, await ask(RPC.idsAssign, encode(IdAssignRequest, { kind: "project", key: "numbered" })));
    expect(again.ok && again.value).toEqual({ ok: true, n });
  });
});

describe("seed 004's integer ids", () => {
  let runId: string;
  let protocolN: number;
  let stepN: number;

  it("are derived from what the core wrote: a run made through /api/v1 is a protocol run with its number", async () => {
    const run = ok(
      await api("POST", "/api/v1/runs", {
        definition: "protocol",
        projectId: "elsewhere",
        title: "made elsewhere",
        steps: [{ id: "only", title: "the only step" }],
        autoStart: false,
      }),
      201,
    );
    runId = run.id;
    // Its number is the runs stream's sequence of its first transition.
    const first = await bus.jsm.direct.getMessage(bus.names.streams.runs, { seq: 0, next_by_subj: bus.names.subjects.runOf(runId) });
    protocolN = first!.seq;
    const p = ok(await api("GET", `/protocols/${protocolN}`));
    expect(p).toMatchObject({ id: protocolN, run_id: runId, protocol_name: "made elsewhere" });
    // The project had no record: the core numbered it when the run was created.
    expect(p.project_id).toBeGreaterThan(0);
    const steps = ok(await api("GET", `/protocols/${protocolN}/steps`));
    expect(steps).toHaveLength(1);
    stepN = steps[0].id;
    expect(stepN).toBe(protocolN * MAX_RUN_STEPS + run.steps.find((s: any) => s.id === "only").index);
    expect(ok(await api("GET", `/steps/${stepN}`))).toMatchObject({ id: stepN, protocol_run_id: protocolN, step_name: "the only step" });
    // A number that names no protocol run (a later transition, a run without a project) is a 404.
    expect((await api("GET", `/protocols/${protocolN + 1}`)).status).toBe(404);
    const job = ok(await api("POST", "/api/orchestrator/jobs", { goal: "x", limits: { maxSteps: 1 } }));
    const jobFirst = await bus.jsm.direct.getMessage(bus.names.streams.runs, { seq: 0, next_by_subj: bus.names.subjects.runOf(job.job_id) });
    if (jobFirst) expect((await api("GET", `/protocols/${jobFirst.seq}`)).status).toBe(404);
    expect((await api("GET", `/steps/${protocolN * MAX_RUN_STEPS + 7}`)).status).toBe(404);
  });

  it("are read by GETs that write nothing: no number, no transition, no project", async () => {
    const p = ok(await api("POST", "/projects", { name: "readers", git_url: "", local_path: "/nonexistent" }));
    const made = ok(await api("POST", `/projects/${p.id}/protocols`, { protocol_name: "0001-read-only" }));
    ok(await api("POST", `/protocols/${made.id}/steps`, { step_index: 0, step_name: "s0", step_type: "codex" }));
    // A run in a project that has no record and has never been listed here.
    ok(await api("POST", "/api/v1/runs", { definition: "protocol", projectId: "unlisted", title: "never listed", autoStart: false }), 201);
    // Nothing else writes meanwhile: the setup runs (of repositories that do not exist) have failed.
    await waitFor(async () => ok(await api("GET", "/api/v1/runs?status=planning,running")).total === 0, { timeoutMs: 30_000, what: "every run to settle" });
    await new Promise((r) => setTimeout(r, 500));
    const before = await written();
    const reads = [
      "/projects",
      `/projects/${p.id}`,
      `/projects/${p.id}/protocols`,
      `/protocols/${made.id}`,
      `/protocols/${made.id}/steps`,
      `/protocols/${made.id}/events`,
      `/protocols/${protocolN}`,
      `/protocols/${protocolN}/steps`,
      `/steps/${stepN}`,
      "/events?limit=200",
      `/events?project_id=${p.id}`,
      "/queues",
      "/queues/jobs?status=queued",
    ];
    for (let round = 0; round < 2; round++) for (const path of reads) expect((await api("GET", path)).status, path).toBe(200);
    expect(await written()).toEqual(before);
  });

  it("are the same through another gateway and after the core and the gateway restart", async () => {
    const view = async (url: string) => ok(await http("GET", `${url}/protocols/${protocolN}`));
    const before = await view(base);
    const port = await freePort();
    await stack.spawn("gateway", { PORT: String(port), HOST: "127.0.0.1" });
    expect(await view(`http://127.0.0.1:${port}`)).toEqual(before);
    await stack.kill("orchestrator");
    await stack.kill("gateway");
    await stack.restart("orchestrator");
    await stack.restart("gateway");
    expect(await view(base)).toEqual(before);
    expect(ok(await api("GET", `/steps/${stepN}`)).id).toBe(stepN);
  }, 60_000);
});

describe("seed 002's feature numbers", () => {
  it("are consecutive and distinct under concurrent creates, one per workflow", async () => {
    const descriptions = Array.from({ length: 12 }, (_, i) => `Concurrent feature number ${i}`);
    const made = await Promise.all(descriptions.map((d) => http("POST", `${base}/workflows`, { json: { workflow_type: "specify", feature_description: d } })));
    const numbers = made.map((r) => {
      expect(r.status, r.text).toBe(201);
      return Number(r.json().feature_id.slice(0, 3));
    });
    const sorted = [...numbers].sort((a, b) => a - b);
    expect(sorted).toEqual(sorted.map((_, i) => sorted[0]! + i));
    // Each run carries its number (labels, input): reading it again gives the same one.
    for (const r of made) {
      const w = r.json();
      expect(ok(await http("GET", `${base}/workflows/${w.id}`)).feature_id).toBe(w.feature_id);
    }
  });
});

describe("buckets", () => {
  it("are named for their purpose; deliveries expire; there is no aliases bucket", async () => {
    const b = bus.names.buckets;
    for (const name of [b.ids, b.projects, b.projectTokens, b.deliveries, b.defs]) await bus.jsm.streams.info(kvStreamOf(name));
    const deliveries = await bus.jsm.streams.info(kvStreamOf(b.deliveries));
    expect(deliveries.config.max_age).toBeGreaterThanOrEqual(86_400 * 1e9);
    await expect(bus.jsm.streams.info(kvStreamOf("orch_aliases"))).rejects.toThrow();
    // Seed 001's tasks are steps of their runs: no bucket of their own.
    await expect(bus.jsm.streams.info(kvStreamOf("orch_tasks"))).rejects.toThrow();
  });
});

describe("a replica", () => {
  it("answers the writes when the first core is gone; with no core nothing is written", async () => {
    replica = await stack.spawn("orchestrator", { ORCH_INSTANCE_ID: "core-b", ORCH_GRPC_PORT: String(await freePort()) });
    await stack.kill("orchestrator");
    ok(await api("POST", "/api/v1/definitions", definition(3, "by the replica")), 201);
    const p = ok(await api("POST", "/api/v1/projects", { id: "replicated", name: "Replicated" }), 201);
    expect(Number(p.alias)).toBeGreaterThan(0);
    await replica.kill();
    const before = await written();
    const refused = await api("POST", "/api/v1/definitions", definition(4, "nobody"));
    expect(refused.status).toBe(503);
    expect(refused.json().error.code).toBe("UNAVAILABLE");
    expect((await api("POST", "/api/v1/projects", { id: "orphan", name: "Orphan" })).status).toBe(503);
    expect((await http("POST", `${base}/workflows`, { json: { workflow_type: "plan", feature_description: "Nobody numbers this one" } })).status).toBe(503);
    expect(await written()).toEqual(before);
    expect((await api("GET", "/api/v1/definitions/acme.writer?version=4")).status).toBe(404);
    await stack.restart("orchestrator");
    await waitFor(async () => (await api("POST", "/api/v1/definitions", definition(4, "back"))).status === 201, {
      timeoutMs: 20_000,
      what: "the core to answer again",
    });
  }, 60_000);
});
