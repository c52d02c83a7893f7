import { randomUUID } from "node:crypto";
import { posix } from "node:path";
import { decode, encode } from "@orch/bus";
import { CodeMachineWorkspace, ErrorCode, REPO_QUERY, RepoBranchDeleted, RepoBranches, type RepoErrorCode, RepoReply, RepoRequest } from "@orch/contracts";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { RouteDefaults } from "../../routing.js";
import { route } from "../../routing.js";
import { ProjectParams, TAGS, detail, notFound, type Seed004 } from "./common.js";
import { toProtocolOut } from "./views.js";
import { PROTOCOL_NAME_LABEL } from "@orch/contracts";

/**
 * Seed 004's branches and CodeMachine import, on the project's repository. The repositories live
 * with the agent hubs (a project's `local_path`, else a hub's clone of its `git_url`), so the
 * work is theirs: the gateway asks over NATS (`<p>.q.repo`, RepoRequest in @orch/contracts) and
 * maps the answer onto seed 004's statuses and `{"detail": …}` bodies. It runs no git and reads no
 * repository file itself.
 */

/** How long the gateway waits for an agent hub's answer (its git commands time out after 30 s each). */
const REPO_TIMEOUT_MS = 35_000;
const BRANCH = /^(?!-)[A-Za-z0-9._/-]{1,255}$/;

const STATUS_OF: Record<RepoErrorCode, ErrorCode> = {
  NOT_FOUND: ErrorCode.NotFound,
  CONFLICT: ErrorCode.Conflict,
  BAD_REQUEST: ErrorCode.BadRequest,
  UNAVAILABLE: ErrorCode.Unavailable,
};

/** Whether a NATS request failed because nobody subscribes to its subject (RequestError caused by NoRespondersError). */
function noResponders(err: unknown): boolean {
  const e = err as { isNoResponders?: () => boolean; name?: string; cause?: { name?: string } } | null;
  return typeof e?.isNoResponders === "function" ? e.isNoResponders() : e?.name === "NoRespondersError" || e?.cause?.name === "NoRespondersError";
}

export async function seed004GitRoutes(app: FastifyInstance, s: Seed004, defaults: RouteDefaults): Promise<void> {
  const { runs, ids, opts } = s;
  const autoQa = opts.cfg.ORCH_AUTO_QA_AFTER_EXEC;
  const subject = opts.bus.names.subjects.query(REPO_QUERY);

  /** Asks an agent hub; its refusals become seed 004 errors, its answer's data is checked against `schema`. */
  const ask = async <T extends z.ZodType>(req: RepoRequest, schema: T): Promise<z.output<T>> => {
    let data: Uint8Array;
    try {
      data = (await opts.bus.nc.request(subject, encode(RepoRequest, req, subject), { timeout: REPO_TIMEOUT_MS })).data;
    } catch (err) {
      if (noResponders(err)) throw detail(ErrorCode.Unavailable, "No agent hub is answering; repository operations run there");
      if ((err as { name?: string }).name === "TimeoutError")
        throw detail(ErrorCode.Unavailable, "The agent hub did not answer in time; repository operations run there");
      throw detail(ErrorCode.Unavailable, `Unable to ask an agent hub: ${(err as Error).message}`);
    }
    const reply = decode(RepoReply, data);
    if (!reply.ok) throw detail(ErrorCode.Unavailable, "The agent hub's answer is unreadable");
    if (!reply.value.ok) throw detail(STATUS_OF[reply.value.error.code], reply.value.error.message);
    const out = schema.safeParse(reply.value.data);
    if (!out.success) throw detail(ErrorCode.Unavailable, "The agent hub's answer is unreadable");
    return out.data;
  };

  route(
    app,
    {
      method: "GET",
      url: "/projects/:project_id/branches",
      operationId: "tgListBranches",
      tags: TAGS,
      summary: "The repository's branches (origin's, or the local ones when it has no origin)",
      projectScoped: true,
      params: ProjectParams,
      responses: {
        200: { description: "Branch names, sorted", schema: z.object({ branches: z.array(z.string()) }) },
        404: { description: "No such project" },
        409: { description: "The repository is not available (no local path, not cloned yet)" },
        503: { description: "No agent hub answered (repository operations run there), or origin could not be reached" },
      },
    },
    async (req, _reply, { params }) => {
      const p = await s.project(req, params.project_id);
      const { branches } = await ask({ op: "branches", projectId: p.id }, RepoBranches);
      return { branches: branches.map((b) => b.name).sort() };
    },
  );

  const deleteBranch = async (projectN: number, branch: string, confirm: boolean, req: Parameters<Seed004["project"]>[0]) => {
    const p = await s.project(req, projectN);
    if (!confirm) throw detail(ErrorCode.BadRequest, "confirm=true required to delete a remote branch");
    if (!BRANCH.test(branch) || branch.includes("..") || branch.endsWith("/") || branch.endsWith(".lock"))
      throw detail(ErrorCode.BadRequest, `Invalid branch name '${branch}'`);
    const { remote } = await ask({ op: "delete_branch", projectId: p.id, branch }, RepoBranchDeleted);
    req.log.info({ projectId: p.id, branch, remote }, "branch deleted");
    return { deleted: true, branch };
  };

  const DeleteBody = z.object({ confirm: z.boolean().default(false) }).default({ confirm: false });
  const deleteSpec = {
    tags: TAGS,
    projectScoped: true,
    body: DeleteBody,
    responses: {
      200: { description: "Deleted", schema: z.object({ deleted: z.literal(true), branch: z.string() }) },
      400: { description: "confirm=true required, or an invalid branch name" },
      404: { description: "No such project or branch" },
      409: { description: "Not merged into the base branch (unless allow_delete_unmerged_branches), the base branch itself, or no repository" },
      503: { description: "No agent hub answered (repository operations run there), or origin could not be reached" },
    },
  } as const;

  route(
    app,
    {
      method: "POST",
      url: "/projects/:project_id/branches/:branch/delete",
      operationId: "tgDeleteBranch",
      summary: "Delete a branch (on origin; locally when there is no origin)",
      description: [
        'Needs `{"confirm": true}`. A branch not merged into the project\'s base branch is refused (409) unless',
        "`allow_delete_unmerged_branches` (the agent hub's ORCH_GIT_ALLOW_DELETE_UNMERGED_BRANCHES) is on. Names with `/`",
        "work too. An agent hub does the work, in the repository it has (`local_path`, else its clone).",
      ].join("\n"),
      params: z.object({ project_id: ProjectParams.shape.project_id, branch: z.string().min(1).max(255) }),
      ...deleteSpec,
    },
    async (req, _reply, { params, body }) => deleteBranch(params.project_id, params.branch, body.confirm, req),
    defaults,
  );

  // Branch names with slashes (`feature/x`): the same route, as a wildcard.
  route(
    app,
    {
      method: "POST",
      url: "/projects/:project_id/branches/*",
      operationId: "tgDeleteBranchPath",
      summary: "Delete a branch whose name has slashes (`/projects/{id}/branches/feature/x/delete`)",
      params: ProjectParams,
      ...deleteSpec,
    },
    async (req, _reply, { params, body }) => {
      // The branch is the wildcard (fastify's `*` parameter), which OpenAPI cannot name.
      const rest = String((req.params as Record<string, unknown>)["*"] ?? "");
      if (!rest.endsWith("/delete")) throw notFound("Not Found");
      return deleteBranch(params.project_id, rest.slice(0, -"/delete".length), body.confirm, req);
    },
    defaults,
  );

  // ── CodeMachine import ──────────────────────────────────────────────────────────────────────

  route(
    app,
    {
      method: "POST",
      url: "/projects/:project_id/codemachine/import",
      operationId: "tgCodeMachineImport",
      tags: TAGS,
      summary: "Import a .codemachine workspace as a protocol run",
      description: [
        "Reads `<workspace>/.codemachine/config/main.agents.js` (and sub.agents.js, modules.js, placeholders.js,",
        "template.json; JSON or plain JS literals, never evaluated) in the project's repository: each main agent",
        "becomes a step of a new protocol run, in order (engine_id, model and prompt path kept; module policies",
        "kept on the steps they target). `workspace_path` is relative to the repository (or inside it); the",
        "repository's root by default. An agent hub reads the files, where the repository is. The import is done",
        "at once (`enqueue` changes nothing: `job` is null).",
      ].join("\n"),
      projectScoped: true,
      json: true,
      params: ProjectParams,
      body: z.object({
        protocol_name: z.string().min(1).max(255),
        workspace_path: z.string().max(4_096).nullish(),
        base_branch: z.string().min(1).max(255).nullish(),
        description: z.string().max(10_000).nullish(),
        enqueue: z.boolean().default(false),
      }),
      responses: {
        200: { description: "The protocol run", schema: z.object({ protocol_run: z.record(z.string(), z.unknown()), job: z.null(), message: z.string() }) },
        400: { description: "No or malformed .codemachine workspace, or a path outside the repository" },
        404: { description: "No such project" },
        409: { description: "The repository is not available (no local path, not cloned yet)" },
        503: { description: "No agent hub answered (repository operations run there)" },
      },
    },
    async (req, _reply, { params, body }) => {
      const p = await s.project(req, params.project_id);
      const cm = await ask(
        { op: "codemachine", projectId: p.id, ...(body.workspace_path ? { workspacePath: body.workspace_path } : {}) },
        CodeMachineWorkspace,
      );
      const policiesFor = (agentId: string) =>
        cm.modules.filter((m) => {
          const b = (m.behavior && typeof m.behavior === "object" ? m.behavior : {}) as Record<string, unknown>;
          return [m.targetAgentId, m.target_agent_id, b.targetAgentId, b.triggerAgentId, m.id].includes(agentId);
        });
      const runId = randomUUID();
      const steps: Record<string, unknown>[] = [];
      for (const [i, a] of cm.main.entries()) {
        // A step's number comes from its index in the run; its id only has to be unique there.
        const stepId = `agent-${i + 1}`;
        const policy = policiesFor(a.id);
        steps.push({
          id: stepId,
          title: a.name ?? a.id,
          type: "codemachine",
          role: "implementer",
          ...(a.model ? { model: a.model.slice(0, 200) } : {}),
          qa: { auto: autoQa },
          inputs: { protocol: "${input}", prompt_path: a.promptPath, ...(a.description ? { description: a.description } : {}) },
          payload: {
            step_index: i,
            step_name: a.id,
            step_type: "codemachine",
            prompt_path: a.promptPath,
            ...(a.engineId ? { engine_id: a.engineId } : {}),
            ...(policy.length ? { policy } : {}),
          },
        });
      }
      const name = body.protocol_name;
      const r = await runs.create(
        {
          projectId: p.id,
          runId,
          definition: { id: "protocol" },
          title: name,
          labels: { [PROTOCOL_NAME_LABEL]: name.slice(0, 256) },
          input: {
            protocol_name: name,
            base_branch: body.base_branch ?? p.baseBranch ?? "main",
            // The agent hub's paths: the workspace is where the repository is, on the hub.
            worktree_path: cm.root,
            protocol_root: posix.join(cm.root, ".codemachine"),
            ...(body.description ? { description: body.description } : {}),
            template_config: { main_agents: cm.main, sub_agents: cm.sub, modules: cm.modules, placeholders: cm.placeholders, template: cm.template },
            template_source: { kind: "codemachine", path: cm.workspacePath },
          },
          steps,
          autoStart: false,
        },
        { actor: "tasksgodzilla", correlationId: req.id },
      );
      const run = "accepted" in r ? await runs.get(runId) : r;
      if (!run) throw detail(ErrorCode.Unavailable, "The protocol run is stored and will be created shortly");
      return {
        protocol_run: toProtocolOut(run, { n: await ids.protocolInt(runId), projectN: params.project_id }),
        job: null,
        message: "Imported CodeMachine workspace.",
      };
    },
    defaults,
  );
}
