import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile, realpath } from "node:fs/promises";
import { homedir } from "node:os";
import { isAbsolute, join, relative, resolve } from "node:path";
import { AgentHubConfig, loadConfig } from "@orch/config";
import { ErrorCode, type ProjectRecord } from "@orch/contracts";
import { PROTOCOL_NAME_LABEL, protocolRunId, stepIdOf, toProtocolOut } from "@orch/runs";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { RouteDefaults } from "../routing.js";
import { route } from "../routing.js";
import { ProjectParams, TAGS, conflict, detail, notFound, type Seed004 } from "./seed004-common.js";

/**
 * Seed 004's branches and CodeMachine import, on the project's repository: its `local_path`, else
 * the agent hub's clone of its `git_url` (`<ORCH_WORKSPACE>/repos/<project id>`, made by the setup
 * run). git runs as a child process with an argument vector (never a shell), with a timeout and no
 * terminal prompts.
 */

const GIT_TIMEOUT_MS = 30_000;
const BRANCH = /^(?!-)[A-Za-z0-9._/-]{1,255}$/;

interface GitResult {
  code: number;
  stdout: string;
  stderr: string;
}

function git(bin: string, cwd: string, args: string[]): Promise<GitResult> {
  return new Promise((done) => {
    execFile(
      bin,
      args,
      { cwd, timeout: GIT_TIMEOUT_MS, maxBuffer: 8 * 1024 * 1024, env: { ...process.env, GIT_TERMINAL_PROMPT: "0", GIT_ASKPASS: "echo", LC_ALL: "C" } },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === "number" ? ((err as { code: number }).code) : -1) : 0;
        done({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
  });
}

/** The workspace settings the agent hub clones under (same host, same configuration). */
function hubSettings() {
  try {
    return loadConfig(AgentHubConfig.pick({ ORCH_WORKSPACE: true, ORCH_GIT_BINARY: true, ORCH_GIT_ALLOW_DELETE_UNMERGED_BRANCHES: true }));
  } catch {
    return { ORCH_WORKSPACE: undefined, ORCH_GIT_BINARY: "git", ORCH_GIT_ALLOW_DELETE_UNMERGED_BRANCHES: false };
  }
}

const expandHome = (p: string) => (p === "~" ? homedir() : p.startsWith("~/") ? join(homedir(), p.slice(2)) : p);

// ── CodeMachine ─────────────────────────────────────────────────────────────────────────────

/** A `.codemachine/config/*.js` value: JSON, or a JS literal (`export default [...]`, `module.exports = …`); never evaluated. */
export function parseJsLike(text: string): unknown {
  let t = text.trim();
  if (t.startsWith("export default")) t = t.slice("export default".length).trim();
  if (t.startsWith("module.exports")) t = t.slice(t.indexOf("=") + 1).trim();
  t = t.replace(/^const\s+\w+\s*=\s*/, "");
  if (t.endsWith(";")) t = t.slice(0, -1).trim();
  try {
    return JSON.parse(t);
  } catch {
    const normalized = t
      .replace(/\/\*[\s\S]*?\*\//g, "")
      .replace(/^\s*\/\/.*$/gm, "")
      .replace(/'((?:[^'\\]|\\.)*)'/g, (_m, s: string) => JSON.stringify(s.replace(/\\'/g, "'")))
      .replace(/([{,]\s*)([A-Za-z_$][\w$]*)\s*:/g, '$1"$2":')
      .replace(/,\s*([}\]])/g, "$1");
    return JSON.parse(normalized);
  }
}

interface Agent {
  id: string;
  name?: string;
  description?: string;
  promptPath: string;
  engineId?: string;
  model?: string;
}

const str = (v: unknown) => (typeof v === "string" && v.trim() ? v.trim() : undefined);

class ConfigError extends Error {}

async function loadValue(path: string): Promise<unknown> {
  if (!existsSync(path)) return undefined;
  try {
    return parseJsLike(await readFile(path, "utf8"));
  } catch (e) {
    throw new ConfigError(`Unable to parse config file ${path.split("/").slice(-2).join("/")}: ${(e as Error).message}`);
  }
}

function agents(raw: unknown, kind: string): Agent[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw new ConfigError(`${kind} agents config must be a list`);
  return raw.map((e) => {
    if (!e || typeof e !== "object") throw new ConfigError(`${kind} agent entry must be an object`);
    const o = e as Record<string, unknown>;
    const id = str(o.id) ?? str(o.agentId);
    const promptPath = str(o.promptPath) ?? str(o.prompt) ?? str(o.path);
    if (!id) throw new ConfigError(`${kind} agent is missing an id`);
    if (!promptPath) throw new ConfigError(`${kind} agent ${id} is missing promptPath`);
    const a: Agent = { id, promptPath };
    for (const [k, v] of [["name", o.name], ["description", o.description], ["engineId", o.engineId], ["model", o.model]] as const) {
      const s = str(v);
      if (s) (a as unknown as Record<string, string>)[k] = s;
    }
    return a;
  });
}

/** A `.codemachine` workspace: its main agents (the steps, in order), sub agents, module policies, placeholders, template. */
export async function loadCodeMachine(root: string) {
  let ws = root;
  if (existsSync(join(root, ".codemachine"))) ws = join(root, ".codemachine");
  const cfg = join(ws, "config");
  const main = agents(await loadValue(join(cfg, "main.agents.js")), "main");
  const sub = agents(await loadValue(join(cfg, "sub.agents.js")), "sub");
  const modulesRaw = (await loadValue(join(cfg, "modules.js"))) ?? [];
  if (!Array.isArray(modulesRaw)) throw new ConfigError("modules config must be a list");
  const placeholders = (await loadValue(join(cfg, "placeholders.js"))) ?? {};
  const template = (await loadValue(join(ws, "template.json"))) ?? {};
  return { main, sub, modules: modulesRaw as Record<string, unknown>[], placeholders, template };
}

export async function seed004GitRoutes(app: FastifyInstance, s: Seed004, defaults: RouteDefaults): Promise<void> {
  const { runs, ids, opts } = s;
  const hub = hubSettings();
  const gitBin = hub.ORCH_GIT_BINARY;
  const allowUnmerged = hub.ORCH_GIT_ALLOW_DELETE_UNMERGED_BRANCHES;
  const workspace = resolve(expandHome(hub.ORCH_WORKSPACE ?? join(homedir(), ".local", "share", "orchestrator", "workspace")));
  const autoQa = ["1", "true", "yes"].includes(process.env.TASKSGODZILLA_AUTO_QA_AFTER_EXEC ?? process.env.ORCH_AUTO_QA_AFTER_EXEC ?? "");

  /** The project's repository, or 409 when it has none yet (no local path, not cloned yet). */
  const repoOf = async (p: ProjectRecord): Promise<string> => {
    const dir = p.localPath ? resolve(expandHome(p.localPath)) : join(workspace, "repos", p.id);
    if (!existsSync(dir)) throw conflict(p.localPath ? `Repository path ${p.localPath} does not exist` : "The repository has not been cloned yet (the project's setup run clones it)");
    const top = await git(gitBin, dir, ["rev-parse", "--show-toplevel"]);
    if (top.code !== 0) throw conflict(`${p.localPath ?? dir} is not a git repository`);
    return realpath(top.stdout.trim());
  };

  const hasOrigin = async (repo: string) => (await git(gitBin, repo, ["remote", "get-url", "origin"])).code === 0;

  /** origin's branches (name → head), or the local ones when there is no origin. */
  const branchesOf = async (repo: string): Promise<{ remote: boolean; heads: Map<string, string> }> => {
    const heads = new Map<string, string>();
    if (await hasOrigin(repo)) {
      const r = await git(gitBin, repo, ["ls-remote", "--heads", "origin"]);
      if (r.code !== 0) throw detail(ErrorCode.Unavailable, `Unable to list origin's branches: ${r.stderr.trim().split("\n").at(-1) ?? "git ls-remote failed"}`);
      for (const line of r.stdout.split("\n")) {
        const [sha, ref] = line.trim().split(/\s+/);
        if (sha && ref?.startsWith("refs/heads/")) heads.set(ref.slice("refs/heads/".length), sha);
      }
      return { remote: true, heads };
    }
    const r = await git(gitBin, repo, ["for-each-ref", "--format=%(objectname) %(refname:short)", "refs/heads"]);
    for (const line of r.stdout.split("\n")) {
      const [sha, name] = line.trim().split(" ");
      if (sha && name) heads.set(name, sha);
    }
    return { remote: false, heads };
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
      },
    },
    async (req, _reply, { params }) => {
      const p = await s.project(req, params.project_id);
      const { heads } = await branchesOf(await repoOf(p));
      return { branches: [...heads.keys()].sort() };
    },
  );

  const deleteBranch = async (projectN: number, branch: string, confirm: boolean, req: Parameters<Seed004["project"]>[0]) => {
    const p = await s.project(req, projectN);
    if (!confirm) throw detail(ErrorCode.BadRequest, "confirm=true required to delete a remote branch");
    if (!BRANCH.test(branch) || branch.includes("..") || branch.endsWith("/") || branch.endsWith(".lock")) throw detail(ErrorCode.BadRequest, `Invalid branch name '${branch}'`);
    const repo = await repoOf(p);
    if ((await git(gitBin, repo, ["check-ref-format", "--branch", branch])).code !== 0) throw detail(ErrorCode.BadRequest, `Invalid branch name '${branch}'`);
    const base = p.baseBranch ?? "main";
    if (branch === base) throw conflict(`Refusing to delete the base branch ${base}`);
    const { remote, heads } = await branchesOf(repo);
    const sha = heads.get(branch);
    if (!sha) throw notFound(`Branch ${branch} not found${remote ? " on origin" : ""}`);
    if (!allowUnmerged) {
      const baseSha = heads.get(base);
      if (!baseSha) throw conflict(`Base branch ${base} not found; cannot tell whether ${branch} is merged`);
      if (remote) {
        const f = await git(gitBin, repo, ["fetch", "--no-tags", "--quiet", "origin", `refs/heads/${base}`, `refs/heads/${branch}`]);
        if (f.code !== 0) throw detail(ErrorCode.Unavailable, `Unable to fetch from origin: ${f.stderr.trim().split("\n").at(-1) ?? "git fetch failed"}`);
      }
      const merged = await git(gitBin, repo, ["merge-base", "--is-ancestor", sha, baseSha]);
      if (merged.code !== 0) throw conflict(`Branch ${branch} is not merged into ${base}; set allow_delete_unmerged_branches to delete it`);
    }
    const r = remote
      ? await git(gitBin, repo, ["push", "--quiet", "origin", `:refs/heads/${branch}`])
      : await git(gitBin, repo, ["branch", "-D", branch]);
    if (r.code !== 0) throw conflict(`Failed to delete branch ${branch}: ${r.stderr.trim().split("\n").at(-1) ?? "git failed"}`);
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
        "Needs `{\"confirm\": true}`. A branch not merged into the project's base branch is refused (409) unless",
        "`allow_delete_unmerged_branches` (ORCH_GIT_ALLOW_DELETE_UNMERGED_BRANCHES) is on. Names with `/` work too.",
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
        "repository's root by default. The import is done at once (`enqueue` changes nothing: `job` is null).",
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
      },
    },
    async (req, _reply, { params, body }) => {
      const p = await s.project(req, params.project_id);
      const repo = await repoOf(p);
      const wanted = body.workspace_path ? (isAbsolute(body.workspace_path) ? body.workspace_path : join(repo, body.workspace_path)) : repo;
      if (!existsSync(wanted)) throw detail(ErrorCode.BadRequest, `Workspace path ${body.workspace_path} does not exist`);
      const ws = await realpath(wanted);
      const rel = relative(repo, ws);
      if (rel.startsWith("..") || isAbsolute(rel)) throw detail(ErrorCode.BadRequest, "workspace_path must be inside the project's repository");
      let cm: Awaited<ReturnType<typeof loadCodeMachine>>;
      try {
        cm = await loadCodeMachine(ws);
      } catch (e) {
        if (e instanceof ConfigError) throw detail(ErrorCode.BadRequest, e.message);
        throw e;
      }
      if (cm.main.length === 0) throw detail(ErrorCode.BadRequest, "No CodeMachine main agents found (.codemachine/config/main.agents.js)");
      const policiesFor = (agentId: string) =>
        cm.modules.filter((m) => {
          const b = (m.behavior && typeof m.behavior === "object" ? m.behavior : {}) as Record<string, unknown>;
          return [m.targetAgentId, m.target_agent_id, b.targetAgentId, b.triggerAgentId, m.id].includes(agentId);
        });
      const m = await opts.aliases.next("protocol");
      const runId = protocolRunId(m);
      await ids.bindProtocol(m, runId);
      const steps: Record<string, unknown>[] = [];
      for (const [i, a] of cm.main.entries()) {
        const n = await opts.aliases.next("step");
        const stepId = stepIdOf(n);
        await ids.bindStep(n, { runId, stepId });
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
      const wsRel = rel === "" ? "." : rel;
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
            worktree_path: ws,
            protocol_root: join(ws, ".codemachine"),
            ...(body.description ? { description: body.description } : {}),
            template_config: { main_agents: cm.main, sub_agents: cm.sub, modules: cm.modules, placeholders: cm.placeholders, template: cm.template },
            template_source: { kind: "codemachine", path: wsRel },
          },
          steps,
          autoStart: false,
        },
        { actor: "tasksgodzilla", correlationId: req.id },
      );
      const run = "accepted" in r ? await runs.get(runId) : r;
      if (!run) throw detail(ErrorCode.Unavailable, "The protocol run is stored and will be created shortly");
      return { protocol_run: toProtocolOut(run, { n: m, projectN: params.project_id }), job: null, message: "Imported CodeMachine workspace." };
    },
    defaults,
  );
}
