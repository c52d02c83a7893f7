import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { validate } from "@readme/openapi-parser";
import { parse } from "yaml";
import { connectBus, topologyFromConfig, type Bus } from "@orch/bus";
import { GatewayConfig, loadConfig } from "@orch/config";
import { createLogger } from "@orch/logging";
import { REPO_ROOT } from "@orch/nats-server";
import { startNats, type NatsServer } from "@orch/testing";
import { buildApp } from "../../services/gateway/src/app.js";

/** api/openapi.yaml is a valid OpenAPI 3.1 document and describes exactly the routes the gateway serves. */

const file = join(REPO_ROOT, "api", "openapi.yaml");
let nats: NatsServer;
let bus: Bus;

beforeAll(async () => {
  nats = await startNats();
  bus = await connectBus({ url: nats.url, name: "openapi-test", logger: createLogger({ service: "test", level: "silent" }) });
});

afterAll(async () => {
  await bus?.close();
  await nats?.stop();
});

describe("api/openapi.yaml", () => {
  it("is a valid OpenAPI 3.1 document", async () => {
    const doc = parse(readFileSync(file, "utf8"));
    expect(doc.openapi).toBe("3.1.0");
    const result = await validate(structuredClone(doc));
    expect(result.errors ?? [], JSON.stringify(result.errors)).toEqual([]);
    expect(result.valid).toBe(true);
  });

  it("lists every route the gateway serves, and nothing else", async () => {
    const cfg = loadConfig(GatewayConfig, {});
    const app = await buildApp({ cfg, bus, topology: topologyFromConfig(bus.names, cfg), logger: createLogger({ service: "test", level: "silent" }), version: "test" });
    await app.ready();
    const served = new Set(
      app.routeTable
        .filter((r) => r.method !== "HEAD" && r.method !== "OPTIONS")
        .map((r) => `${r.method} ${r.url.replace(/:([A-Za-z]+)/g, "{$1}")}`),
    );
    const doc = parse(readFileSync(file, "utf8")) as { paths: Record<string, Record<string, unknown>> };
    const documented = new Set(Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).filter((k) => k !== "parameters").map((m) => `${m.toUpperCase()} ${path}`)));
    expect([...served].sort()).toEqual([...documented].sort());
    for (const seed of ["POST /api/orchestrator/jobs", "GET /api/orchestrator/jobs/{id}", "GET /api/orchestrator/events"]) expect(documented).toContain(seed);
    // The CORS preflight is served for every job route, as the document says.
    expect(app.routeTable.some((r) => r.method === "OPTIONS" && r.url === "/api/orchestrator/*")).toBe(true);
    await app.close();
  });
});
