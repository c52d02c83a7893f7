import { randomUUID } from "node:crypto";
import { ErrorCode, OrchError, ProjectForge, ProjectMerge, WriteErrorCode, type ProjectChange } from "@orch/contracts";
import { WriteRefusedError } from "@orch/runs";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { z } from "zod";
import { tokenHash } from "../../auth.js";
import { route } from "../../routing.js";
import { checkProject, ERRORS, IdParam, listOf, ProjectJson, projectJson, tokenProject, type V1 } from "./common.js";

const TAGS = ["projects"];

const Fields = {
  name: z.string().min(1).max(200),
  localPath: z.string().max(4_096).optional().describe("A local checkout the agent hub can reach"),
  gitUrl: z.string().max(4_096).optional().describe("Cloned into the workspace when there is no local path"),
  baseBranch: z.string().max(255).optional(),
  ciProvider: z.string().max(64).optional(),
  defaultModels: z.record(z.string().max(64), z.string().max(200)).optional().describe("Model per role for the project's runs"),
  forge: ProjectForge.optional().describe(
    "Where the repository is hosted (GitHub, GitLab): pull requests are opened there. Left out: derived from `gitUrl` (github.com, gitlab.com, the hosts of ORCH_FORGE_HOSTS, else the URL's host with `ciProvider` as the provider)",
  ),
  merge: ProjectMerge.optional().describe(
    "Whether the system merges its runs' pull requests once approved and green (`enabled`; a definition's `pullRequests.merge` enables it too), how (`method`: merge, squash, rebase; wins over the definition's), and through its base's merge queue (`queue`)",
  ),
};
const TokenField = z
  .string()
  .min(16, "a project token must be at least 16 characters")
  .max(512)
  .describe("Sets the project's own token (`X-Project-Token`); only its SHA-256 is kept, it is never returned");

const CreateProject = z.strictObject({ id: IdParam.optional().describe("Default: a new uuid"), ...Fields, token: TokenField.optional() });
const UpdateProject = z.strictObject({
  ...Fields,
  name: Fields.name.optional(),
  forge: ProjectForge.nullable().optional().describe("`null`: derive it from `gitUrl` again; left out: kept (a derived one follows `gitUrl`)"),
  merge: ProjectMerge.nullable().optional().describe("`null`: removed (the definitions' settings apply); left out: kept"),
  token: TokenField.nullable().optional().describe("A new token replaces the old one (which stops working); `null` removes it"),
});

export function projectRoutes(app: FastifyInstance, { opts, defaults }: V1): void {
  const { runs } = opts;

  /** A token as the core stores it: only its SHA-256 (`null` removes it; left out, kept). */
  const hashOf = (token: string | null | undefined) => (token === undefined ? undefined : token === null ? null : tokenHash(token));

  const logSaved = (req: FastifyRequest, projectId: string, token: string | null | undefined) =>
    req.log.info({ projectId, token: token === undefined ? "unchanged" : token === null ? "removed" : "set" }, "project saved");

  route(
    app,
    {
      method: "GET",
      url: "/projects",
      operationId: "v1ListProjects",
      tags: TAGS,
      summary: "Every project",
      description: "Oldest first. A project token sees its own project only.",
      responses: { 200: { description: "Projects", schema: listOf(ProjectJson) }, 401: ERRORS[401] },
      projectScoped: true,
    },
    async (req) => {
      const only = tokenProject(req);
      const items = (await runs.listProjects()).filter((p) => only === undefined || p.id === only).map(projectJson);
      return { items, total: items.length };
    },
  );

  route(
    app,
    {
      method: "POST",
      url: "/projects",
      operationId: "v1CreateProject",
      tags: TAGS,
      summary: "Create a project",
      json: true,
      body: CreateProject,
      responses: {
        201: { description: "Created", schema: ProjectJson },
        400: ERRORS[400],
        401: ERRORS[401],
        409: { description: "A project with this id exists (update it with PUT)" },
        415: { description: "Not JSON" },
      },
    },
    async (req, reply, { body }) => {
      const { token, id, ...fields } = body;
      const pid = id ?? randomUUID();
      const hash = hashOf(token);
      try {
        const { project } = await runs.writes.createProject({ id: pid, fields, ...(hash ? { tokenSha256: hash } : {}), actor: "api", correlationId: req.id });
        logSaved(req, project.id, token);
        return reply.status(201).header("location", `/api/v1/projects/${project.id}`).send(projectJson(project));
      } catch (err) {
        if (err instanceof WriteRefusedError && err.writeCode === WriteErrorCode.AlreadyExists) {
          throw new OrchError(ErrorCode.Conflict, `project ${pid} exists; update it with PUT /api/v1/projects/${pid}`);
        }
        throw err;
      }
    },
    defaults,
  );

  route(
    app,
    {
      method: "GET",
      url: "/projects/:id",
      operationId: "v1GetProject",
      tags: TAGS,
      summary: "A project",
      params: z.object({ id: IdParam }),
      projectScoped: true,
      responses: { 200: { description: "The project", schema: ProjectJson }, ...ERRORS },
    },
    async (req, _reply, { params }) => {
      const p = await checkProject(opts, req, params.id);
      if (!p) throw new OrchError(ErrorCode.NotFound, `project ${params.id} not found`);
      return projectJson(p);
    },
  );

  route(
    app,
    {
      method: "PUT",
      url: "/projects/:id",
      operationId: "v1PutProject",
      tags: TAGS,
      summary: "Create or update a project",
      description: "Fields left out keep their value. 201 when it created the project (then `name` is required), 200 when it updated it.",
      params: z.object({ id: IdParam }),
      json: true,
      body: UpdateProject,
      projectScoped: true,
      responses: {
        200: { description: "Updated", schema: ProjectJson },
        201: { description: "Created", schema: ProjectJson },
        ...ERRORS,
        415: { description: "Not JSON" },
      },
    },
    async (req, reply, { params, body }) => {
      const prev = await checkProject(opts, req, params.id);
      const { token, ...fields } = body;
      if (!prev && fields.name === undefined) {
        throw new OrchError(ErrorCode.BadRequest, "Invalid body: name: required to create a project", {
          details: { fields: [{ path: "name", message: "required to create a project" }] },
        });
      }
      const hash = hashOf(token);
      const change: ProjectChange = fields;
      const { created, project } = await runs.writes.updateProject({
        id: params.id,
        fields: change,
        ...(hash !== undefined ? { tokenSha256: hash } : {}),
        createIfMissing: true,
        actor: "api",
        correlationId: req.id,
      });
      logSaved(req, project.id, token);
      return reply.status(created ? 201 : 200).send(projectJson(project));
    },
    defaults,
  );
}
