import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectBus, decode, encode, type Bus } from "@orch/bus";
import { DefinitionPutAnswer, DefinitionPutRequest, kvStreamOf, RPC } from "@orch/contracts";
import { createLogger } from "@orch/logging";
import { Stack, freePort, http, waitFor, type HttpResponse, type ServiceProcess } from "@orch/testing";

/**
 * One writer: definitions are written by the core only, asked over NATS request/reply
 * (`<p>.rpc.*`) and answered by any orchestrator replica. Over the real system: the core's answers
 * and refusals on the wire, a second replica answering when the first is gone, nothing answering
 * (so nothing written) when no core runs.
 */

let stack: Stack;
let base: string;
let bus: Bus;
let replica: ServiceProcess;

beforeAll(async () => {
  stack = await Stack.start({ env: { ORCH_RATE_LIMIT_MAX: "100000" }, serviceEnv: { orchestrator: { ORCH_INSTANCE_ID: "core-a" } } });
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

/** What nothing but the core writes. */
async function written() {
  const defs = (await bus.jsm.streams.info(kvStreamOf(bus.names.buckets.defs))).state;
  return { defs: defs.last_seq };
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
    const invalid = await api("POST", "/api/v1/definitions", { id: "acme.writer", version: 0 });
    expect(invalid.status).toBe(400);
    expect(invalid.json().error).toMatchObject({
      code: "BAD_REQUEST",
      details: { fields: expect.arrayContaining([expect.objectContaining({ path: "version" })]) },
    });
  });
});

describe("a replica", () => {
  it("answers the writes when the first core is gone; with no core nothing is written", async () => {
    replica = await stack.spawn("orchestrator", { ORCH_INSTANCE_ID: "core-b", ORCH_GRPC_PORT: String(await freePort()) });
    await stack.kill("orchestrator");
    ok(await api("POST", "/api/v1/definitions", definition(3, "by the replica")), 201);
    await replica.kill();
    const before = await written();
    const refused = await api("POST", "/api/v1/definitions", definition(4, "nobody"));
    expect(refused.status).toBe(503);
    expect(refused.json().error.code).toBe("UNAVAILABLE");
    expect(await written()).toEqual(before);
    expect((await api("GET", "/api/v1/definitions/acme.writer?version=4")).status).toBe(404);
    await stack.restart("orchestrator");
    await waitFor(async () => (await api("POST", "/api/v1/definitions", definition(4, "back"))).status === 201, {
      timeoutMs: 20_000,
      what: "the core to answer again",
    });
  }, 60_000);
});
