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
import { generateOpenApiYaml } from "../../services/gateway/src/openapi-file.js";

/**
 * api/openapi.yaml is generated from the gateway's route schemas: the committed file must be what
 * the code generates (run `npm run openapi` after changing a route), a valid OpenAPI 3.1 document,
 * and list exactly the routes the gateway serves.
 */

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
  it("is what the route schemas generate (run `npm run openapi` after changing a route)", async () => {
    expect(readFileSync(file, "utf8")).toBe(await generateOpenApiYaml());
  });

  it("is a valid OpenAPI 3.1 document", async () => {
    const doc = parse(readFileSync(file, "utf8"));
    expect(doc.openapi).toBe("3.1.0");
    const result = await validate(structuredClone(doc));
    expect(result.errors ?? [], JSON.stringify(result.errors)).toEqual([]);
    expect(result.valid).toBe(true);
  });

  it("lists every route the gateway serves, and nothing else", async () => {
    const cfg = loadConfig(GatewayConfig, { ORCH_CONFIG: "none" });
    const app = await buildApp({
      cfg,
      bus,
      topology: topologyFromConfig(bus.names, cfg),
      logger: createLogger({ service: "test", level: "silent" }),
      version: "test",
    });
    await app.ready();
    const hidden = new Set(["GET /docs/static/{file}", "GET /console/*"]);
    const served = new Set(
      app.routeTable
        .filter((r) => r.method !== "HEAD" && r.method !== "OPTIONS")
        .map((r) => `${r.method} ${r.url.replace(/:([A-Za-z_]+)/g, "{$1}").replace(/(.)\/$/, "$1")}`)
        .filter((r) => !hidden.has(r)),
    );
    const doc = parse(readFileSync(file, "utf8")) as { paths: Record<string, Record<string, unknown>> };
    const documented = new Set(
      Object.entries(doc.paths).flatMap(([path, ops]) =>
        Object.keys(ops)
          .filter((k) => k !== "parameters")
          .map((m) => `${m.toUpperCase()} ${path}`),
      ),
    );
    expect([...served].sort()).toEqual([...documented].sort());
    for (const seed of ["POST /api/orchestrator/jobs", "GET /api/orchestrator/jobs/{id}", "GET /api/orchestrator/events"]) expect(documented).toContain(seed);
    // Every route that changes something is rate limited; only probes, metrics and docs are open.
    expect(app.routeTable.filter((r) => !["GET", "HEAD", "OPTIONS"].includes(r.method) && !r.rateLimited).map((r) => `${r.method} ${r.url}`)).toEqual([]);
    expect(
      app.routeTable
        .filter((r) => r.open && r.method !== "HEAD")
        .map((r) => r.url)
        .sort(),
    ).toEqual(
      [
        "/",
        "/console",
        "/console/",
        "/console/*",
        "/console/assets/:file",
        "/docs",
        "/docs/openapi.json",
        "/docs/openapi.yaml",
        "/docs/static/:file",
        "/health",
        "/metrics",
        "/openapi.yaml",
        "/redoc",
        "/webhooks/github",
        "/webhooks/gitlab",
        "/api/orchestrator/*",
      ].sort(),
    );
    // The CORS preflight is served for every job route, as seed 000's document says.
    expect(app.routeTable.some((r) => r.method === "OPTIONS" && r.url === "/api/orchestrator/*")).toBe(true);
    await app.close();
  });

  it("is served at /docs/openapi.json and /docs/openapi.yaml, with Swagger UI at /docs and ReDoc at /redoc", async () => {
    const cfg = loadConfig(GatewayConfig, { ORCH_CONFIG: "none", ORCH_API_TOKEN: "docs-are-open-token" });
    const app = await buildApp({
      cfg,
      bus,
      topology: topologyFromConfig(bus.names, cfg),
      logger: createLogger({ service: "test", level: "silent" }),
      version: "0.1.0",
    });
    const json = await app.inject({ url: "/docs/openapi.json" });
    expect(json.statusCode).toBe(200);
    expect(json.json()).toEqual(parse(readFileSync(file, "utf8")));
    const yaml = await app.inject({ url: "/docs/openapi.yaml" });
    expect(parse(yaml.body)).toEqual(json.json());
    const ui = await app.inject({ url: "/docs" });
    expect(ui.headers["content-type"]).toMatch(/text\/html/);
    expect(ui.body).toContain("/docs/static/swagger-ui-bundle.js");
    const asset = await app.inject({ url: "/docs/static/swagger-ui-bundle.js" });
    expect(asset.statusCode).toBe(200);
    expect(asset.body.length).toBeGreaterThan(100_000);
    expect((await app.inject({ url: "/docs/static/..%2fpackage.json" })).statusCode).toBe(404);
    await app.close();
  });

  it("ReDoc at /redoc works offline: its page names no other host, and its script is served from the redoc package", async () => {
    const cfg = loadConfig(GatewayConfig, { ORCH_CONFIG: "none" });
    const app = await buildApp({
      cfg,
      bus,
      topology: topologyFromConfig(bus.names, cfg),
      logger: createLogger({ service: "test", level: "silent" }),
      version: "0.1.0",
    });
    const page = await app.inject({ url: "/redoc" });
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain('<redoc spec-url="/docs/openapi.json">');
    // No URL with a scheme or a protocol-relative one, in the page or its content policy.
    expect(page.body).not.toMatch(/(https?:)?\/\/[a-z0-9.-]+/i);
    expect(String(page.headers["content-security-policy"])).not.toMatch(/https?:|\/\//);
    const scripts = [...page.body.matchAll(/<script[^>]*\ssrc="([^"]+)"/g)].map((m) => m[1]!);
    expect(scripts).toEqual(["/docs/static/redoc.standalone.js"]);
    const script = await app.inject({ url: scripts[0]! });
    expect(script.statusCode).toBe(200);
    expect(script.headers["content-type"]).toMatch(/^application\/javascript/);
    expect(script.body.length).toBeGreaterThan(500_000);
    expect(script.body).toContain("Redoc");
    await app.close();
  });
});
