import { z } from "zod";
import type { DocumentedRoute } from "./routing.js";

/**
 * The OpenAPI 3.1 document, generated from the routes' zod schemas (`routing.ts`). Served at
 * `/docs/openapi.json` and `/docs/openapi.yaml`, committed as `api/openapi.yaml` (`npm run openapi`
 * writes it; a test fails when the committed file and the generated one differ).
 */

export interface DocInfo {
  version: string;
  tags: { name: string; description: string }[];
}

type Json = Record<string, unknown>;

function schemaOf(s: z.ZodType, io: "input" | "output"): Json {
  const js = z.toJSONSchema(s, { target: "draft-2020-12", io, unrepresentable: "any", reused: "inline" }) as Json;
  delete js.$schema;
  return js;
}

const ERROR_BODY: Json = {
  type: "object",
  required: ["error"],
  properties: {
    error: {
      type: "object",
      required: ["code", "message"],
      properties: { code: { type: "string" }, message: { type: "string" }, details: {} },
    },
  },
};

function parameters(r: DocumentedRoute): Json[] {
  const out: Json[] = [];
  const add = (where: "path" | "query", s: z.ZodType | undefined) => {
    if (!s) return;
    const js = schemaOf(s, "input");
    const props = (js.properties ?? {}) as Record<string, Json>;
    const required = new Set((js.required as string[] | undefined) ?? []);
    for (const [name, schema] of Object.entries(props)) {
      const { description, ...rest } = schema;
      out.push({
        name,
        in: where,
        required: where === "path" ? true : required.has(name),
        ...(typeof description === "string" ? { description } : {}),
        schema: rest,
      });
    }
  };
  add("path", r.spec.params);
  add("query", r.spec.query);
  for (const [name, description] of Object.entries(r.spec.headers ?? {})) {
    out.push({ name, in: "header", required: false, description, schema: { type: "string" } });
  }
  return out;
}

function operation(r: DocumentedRoute): Json {
  const s = r.spec;
  const op: Json = { operationId: s.operationId, tags: s.tags, summary: s.summary };
  if (s.description) op.description = s.description;
  const params = parameters(r);
  if (params.length) op.parameters = params;
  if (s.body) op.requestBody = { required: true, content: { "application/json": { schema: schemaOf(s.body, "input") } } };
  const responses: Json = {};
  for (const [code, resp] of Object.entries(s.responses)) {
    const ct = resp.contentType ?? "application/json";
    const schema = resp.schema ? schemaOf(resp.schema, "output") : Number(code) >= 400 && ct === "application/json" ? ERROR_BODY : undefined;
    const content: Json = schema || ct !== "application/json" ? { [ct]: { schema: schema ?? {} } } : {};
    for (const alt of resp.alternatives ?? []) content[alt.contentType] = { schema: alt.schema ? schemaOf(alt.schema, "output") : {} };
    responses[code] = { description: resp.description, ...(Object.keys(content).length > 0 ? { content } : {}) };
  }
  op.responses = responses;
  op.security = s.auth === "none" ? [] : [{ bearer: [] }];
  return op;
}

export function buildOpenApi(routes: readonly DocumentedRoute[], info: DocInfo): Json {
  const paths: Record<string, Json> = {};
  const sorted = [...routes].sort((a, b) => a.path.localeCompare(b.path) || a.method.localeCompare(b.method));
  for (const r of sorted) {
    (paths[r.path] ??= {})[r.method.toLowerCase()] = operation(r);
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "Orchestrator gateway",
      version: info.version,
      summary: "Our API (/api/v1) and every seed system's HTTP surface, over the same durable runs.",
      description: [
        "Runs of workflow definitions, driven by role agents, with approval gates, live events and audit.",
        "",
        '`/api/v1` is our own API: one error shape `{ "error": { "code", "message", "details"? } }`.',
        "The seed surfaces (`/api/orchestrator` jobs, `/tasks` and `/runs`, `/workflows`, `/projects` and",
        "`/protocols`) answer exactly as the systems they come from did, error bodies included.",
        "",
        "Authentication: `Authorization: Bearer <ORCH_API_TOKEN>` on everything but `/health`, `/metrics`",
        "and the console. A project's own token goes in `X-Project-Token`. Event streams (SSE) also take a",
        "short-lived `access_token` query parameter from `POST /api/v1/stream-tokens`, for EventSource.",
        "Every response carries `X-Request-ID`.",
      ].join("\n"),
      license: { name: "Apache-2.0", identifier: "Apache-2.0" },
    },
    servers: [{ url: "http://127.0.0.1:8080" }],
    tags: info.tags,
    paths,
    components: {
      securitySchemes: {
        bearer: { type: "http", scheme: "bearer", description: "ORCH_API_TOKEN (or TASKSGODZILLA_API_TOKEN)" },
      },
    },
  };
}
