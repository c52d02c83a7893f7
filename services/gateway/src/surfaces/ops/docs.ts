import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { FastifyInstance } from "fastify";
import { stringify } from "yaml";
import { z } from "zod";
import type { Surface } from "../../context.js";
import { buildOpenApi } from "../../openapi.js";
import { notFound } from "../../errors.js";
import { route } from "../../routing.js";

/**
 * The API's documentation: the OpenAPI document (JSON and YAML) generated from the route schemas,
 * Swagger UI at /docs (served from the swagger-ui-dist package, no CDN) and ReDoc at /redoc (seed
 * 002's two pages), and seed 002's service root.
 */

export const TAGS = [
  { name: "runs", description: "Our API: runs of any workflow definition, their steps, approvals and events" },
  { name: "definitions", description: "Our API: workflow definitions (versioned, immutable)" },
  { name: "projects", description: "Our API: projects and where their repositories are" },
  { name: "sessions", description: "Our API: worker sessions of the agent hubs" },
  { name: "supervisor", description: "Our API: ask a model about a run (it reads, a person acts)" },
  { name: "queues", description: "Our API: work queues, schedules and dead letters" },
  { name: "jobs", description: "Seed 000 (Orchestrator v0): jobs under /api/orchestrator" },
  { name: "tasks", description: "Seed 001 (Orchestrator Service): tasks, runs, dead letters" },
  { name: "workflows", description: "Seed 002 (SpecKit orchestrator): workflows" },
  { name: "protocols", description: "Seed 004 (TasksGodzilla): projects, protocols, steps, events, queues" },
  { name: "webhooks", description: "GitHub and GitLab webhooks" },
  { name: "ops", description: "Health, readiness, metrics, documentation" },
];

export function openApiDocument(app: FastifyInstance, version: string): Record<string, unknown> {
  return buildOpenApi(app.documented, { version, tags: TAGS });
}

const require = createRequire(import.meta.url);
const SWAGGER_DIR = dirname(require.resolve("swagger-ui-dist/package.json"));
const ASSETS: Record<string, string> = {
  "swagger-ui.css": "text/css; charset=utf-8",
  "swagger-ui-bundle.js": "application/javascript; charset=utf-8",
  "swagger-ui-standalone-preset.js": "application/javascript; charset=utf-8",
  "favicon-32x32.png": "image/png",
};

const SWAGGER_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Orchestrator API</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css"><link rel="icon" href="/docs/static/favicon-32x32.png"></head>
<body><div id="ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script src="/docs/static/swagger-ui-standalone-preset.js"></script>
<script>window.ui = SwaggerUIBundle({ url: "/docs/openapi.json", dom_id: "#ui", persistAuthorization: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset], layout: "StandaloneLayout" });</script>
</body></html>`;

const REDOC_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Orchestrator API - ReDoc</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><redoc spec-url="/docs/openapi.json"></redoc>
<script src="https://cdn.jsdelivr.net/npm/redoc@2/bundles/redoc.standalone.js"></script>
</body></html>`;

export async function docsRoutes(app: FastifyInstance, opts: Surface): Promise<void> {
  let json: string | undefined;
  const doc = () => (json ??= JSON.stringify(openApiDocument(app, opts.version)));
  const html = { description: "HTML page", contentType: "text/html" };

  route(
    app,
    {
      method: "GET",
      url: "/",
      operationId: "root",
      tags: ["ops"],
      summary: "The service, its version and where its docs are (seed 002)",
      auth: "none",
      responses: { 200: { description: "Service", schema: z.object({ service: z.literal("orchestrator"), version: z.string(), docs: z.literal("/docs") }) } },
    },
    async () => ({ service: "orchestrator", version: opts.version, docs: "/docs" }),
  );
  route(
    app,
    { method: "GET", url: "/docs", operationId: "docs", tags: ["ops"], summary: "Swagger UI", auth: "none", responses: { 200: html } },
    async (_req, reply) =>
      reply
        .type("text/html; charset=utf-8")
        .header("content-security-policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; img-src 'self' data:")
        .send(SWAGGER_HTML),
  );
  route(
    app,
    { method: "GET", url: "/redoc", operationId: "redoc", tags: ["ops"], summary: "ReDoc", auth: "none", responses: { 200: html } },
    async (_req, reply) =>
      reply
        .type("text/html; charset=utf-8")
        .header(
          "content-security-policy",
          "default-src 'self'; script-src 'self' https://cdn.jsdelivr.net; style-src 'self' 'unsafe-inline' https://fonts.googleapis.com; font-src https://fonts.gstatic.com; img-src 'self' data: https://cdn.redoc.ly; worker-src blob:; connect-src 'self'",
        )
        .send(REDOC_HTML),
  );
  route(
    app,
    {
      method: "GET",
      url: "/docs/openapi.json",
      operationId: "openapiJson",
      tags: ["ops"],
      summary: "The OpenAPI 3.1 document (JSON)",
      auth: "none",
      responses: { 200: { description: "OpenAPI 3.1" } },
    },
    async (_req, reply) => reply.type("application/json; charset=utf-8").send(doc()),
  );
  route(
    app,
    {
      method: "GET",
      url: "/docs/openapi.yaml",
      operationId: "openapiYaml",
      tags: ["ops"],
      summary: "The OpenAPI 3.1 document (YAML)",
      auth: "none",
      responses: { 200: { description: "OpenAPI 3.1", contentType: "application/yaml" } },
    },
    async (_req, reply) => reply.type("application/yaml; charset=utf-8").send(stringify(JSON.parse(doc()))),
  );
  route(
    app,
    {
      method: "GET",
      url: "/docs/static/:file",
      operationId: "docsAsset",
      tags: ["ops"],
      summary: "Swagger UI's assets",
      hidden: true,
      auth: "none",
      params: z.object({ file: z.string() }),
      responses: { 200: { description: "Asset" }, 404: { description: "No such asset" } },
    },
    async (_req, reply, { params }) => {
      // A file that is not one of the assets is not there (404), not a bad request.
      const type = Object.hasOwn(ASSETS, params.file) ? ASSETS[params.file] : undefined;
      if (type === undefined) throw notFound(`No asset ${params.file.slice(0, 100)}`);
      return reply
        .type(type)
        .header("cache-control", "public, max-age=86400")
        .send(await readFile(join(SWAGGER_DIR, params.file)));
    },
  );
}
