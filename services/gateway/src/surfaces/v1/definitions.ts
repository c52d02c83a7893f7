import { ErrorCode, OrchError } from "@orch/contracts";
import { builtinDefinitions, readDefinitionText, type CompiledDefinition } from "@orch/engine";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { JsonTooDeepError, jsonTooDeep } from "../../errors.js";
import { route } from "../../routing.js";
import { ERRORS, listOf, type V1 } from "./common.js";

const TAGS = ["definitions"];

const DefId = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,127}$/, "must match [a-z0-9][a-z0-9._-]{0,127}");

const DefinitionSummaryJson = z.object({
  id: z.string(),
  version: z.int(),
  title: z.string().optional(),
  view: z.string(),
  source: z.enum(["builtin", "stored"]),
  hash: z.string(),
});
const DefinitionJson = DefinitionSummaryJson.extend({ definition: z.record(z.string(), z.unknown()).describe("The definition as stored") });

const isBuiltin = (c: CompiledDefinition) => builtinDefinitions().get(c.def.id)?.key === c.key;

export function definitionRoutes(app: FastifyInstance, { opts, defaults }: V1): void {
  const store = opts.runs.definitions;

  route(
    app,
    {
      method: "GET",
      url: "/definitions",
      operationId: "v1ListDefinitions",
      tags: TAGS,
      summary: "Every workflow definition version (built-in and stored)",
      responses: { 200: { description: "Definitions by id, then version", schema: listOf(DefinitionSummaryJson) }, 401: ERRORS[401] },
    },
    async () => {
      const items = await store.list();
      return { items, total: items.length };
    },
  );

  route(
    app,
    {
      method: "GET",
      url: "/definitions/:id",
      operationId: "v1GetDefinition",
      tags: TAGS,
      summary: "A definition: its latest version, or `?version=`",
      params: z.object({ id: DefId }),
      query: z.object({ version: z.coerce.number().int().min(1).optional() }),
      responses: { 200: { description: "The definition", schema: DefinitionJson }, 400: ERRORS[400], 401: ERRORS[401], 404: ERRORS[404] },
    },
    async (_req, _reply, { params, query }) => {
      const c = await store.get({ id: params.id, version: query.version });
      return {
        id: c.def.id,
        version: c.def.version,
        ...(c.def.title !== undefined ? { title: c.def.title } : {}),
        view: c.def.view,
        source: isBuiltin(c) ? "builtin" : "stored",
        hash: c.hash,
        definition: c.def,
      };
    },
  );

  route(
    app,
    {
      method: "POST",
      url: "/definitions",
      operationId: "v1PutDefinition",
      tags: TAGS,
      summary: "Publish a definition version",
      description: [
        "The body is the definition: a JSON object, or YAML (or JSON) text with `Content-Type: application/yaml`",
        "(also `text/yaml`, `text/plain`). Versions are immutable: publishing the same content again answers 200",
        "with it; different content under an existing `id` + `version` is 409 (publish `version + 1`).",
      ].join("\n"),
      body: z.union([z.record(z.string(), z.unknown()), z.string().min(1)]).describe("The definition (object), or its YAML/JSON text"),
      responses: {
        200: { description: "This exact version already exists", schema: DefinitionSummaryJson },
        201: { description: "Published", schema: DefinitionSummaryJson },
        400: { description: "Not a valid definition: `details.fields` lists what is wrong" },
        401: ERRORS[401],
        409: { description: "This id and version exist with different content" },
        415: { description: "Neither JSON nor YAML" },
      },
    },
    async (req, reply, { body }) => {
      if (body === undefined)
        throw new OrchError(ErrorCode.BadRequest, "a definition is required (JSON or YAML body)", { details: { fields: [{ path: "", message: "required" }] } });
      const input = typeof body === "string" ? readDefinitionText(body, "the body") : body;
      // YAML text is parsed here, not by a body parser: the same bound on nesting as a JSON body's.
      if (typeof body === "string" && jsonTooDeep(input)) throw new JsonTooDeepError();
      const { created, summary } = await opts.runs.writes.putDefinition({ definition: input, actor: "api", correlationId: req.id });
      store.forgetLatest(summary.id);
      req.log.info({ definition: `${summary.id}@${summary.version}`, created }, "definition published");
      return reply
        .status(created ? 201 : 200)
        .header("location", `/api/v1/definitions/${summary.id}?version=${summary.version}`)
        .send(summary);
    },
    defaults,
  );
}
