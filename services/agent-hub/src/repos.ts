import { existsSync } from "node:fs";
import { readFile, realpath, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { isAbsolute, join, relative, resolve } from "node:path";
import { type Bus, decode, encode } from "@orch/bus";
import {
  type CodeMachineAgent,
  type CodeMachineWorkspace,
  ProjectRecord,
  type RepoBranchDeleted,
  type RepoBranches,
  type RepoErrorCode,
  RepoReply,
  RepoRequest,
} from "@orch/contracts";
import type { Logger } from "@orch/logging";
import { GitCommandError, type GitCli, GitTimeoutError, NotARepositoryError, UnmergedBranchDeleteRefusedError, type WorkspaceManager } from "./git/index.js";

/**
 * The repository operations the surfaces ask for over NATS (`<p>.q.repo`, see RepoRequest in
 * @orch/contracts): seed 004's branch list and delete and its CodeMachine import. They run here,
 * where the repositories are: a project's `localPath`, else this hub's clone of its `gitUrl`
 * (`<ORCH_PROJECTS_ROOT>/<project id>`, default `<ORCH_WORKSPACE>/repos/…`, as `WorkspaceManager.repoFor` places it). A request does
 * not clone a project that is not cloned yet (that is its setup run's work, which may take longer
 * than a request waits): it is answered CONFLICT. git runs through `GitCli` (argument vectors,
 * never a shell, no prompts, timeouts), with this hub's `[git]` settings: an unmerged branch is
 * deleted only with ORCH_GIT_ALLOW_DELETE_UNMERGED_BRANCHES.
 *
 * Every request gets an answer: a bad one BAD_REQUEST, a failure of git or of the bus UNAVAILABLE.
 */

/** Each git command of a request; the gateway waits 35 s for the answer. */
export const REPO_GIT_TIMEOUT_MS = 30_000;

const BRANCH = /^(?!-)[A-Za-z0-9._/-]{1,255}$/;
/** A `.codemachine` config file larger than this is refused (it is a list of agents). */
const MAX_CONFIG_BYTES = 1024 * 1024;

/** A refusal, answered as `{ok: false, error: {code, message}}`. */
export class RepoFailure extends Error {
  override name = "RepoFailure";
  constructor(
    readonly code: RepoErrorCode,
    message: string,
  ) {
    super(message);
  }
}

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

/** A malformed `.codemachine` workspace (answered BAD_REQUEST with this message). */
export class CodeMachineConfigError extends Error {
  override name = "CodeMachineConfigError";
}

const str = (v: unknown) => (typeof v === "string" && v.trim() ? v.trim() : undefined);
const inside = (root: string, p: string) => {
  const rel = relative(root, p);
  return !(rel.startsWith("..") || isAbsolute(rel));
};

/** The parsed file, or undefined when there is none; only a regular file inside `within` is read. */
async function loadValue(path: string, within: string): Promise<unknown> {
  if (!existsSync(path)) return undefined;
  const shown = path.split("/").slice(-2).join("/");
  const real = await realpath(path);
  if (!inside(within, real)) throw new CodeMachineConfigError(`Config file ${shown} is outside the project's repository`);
  const st = await stat(real);
  if (!st.isFile()) throw new CodeMachineConfigError(`Config file ${shown} is not a file`);
  if (st.size > MAX_CONFIG_BYTES) throw new CodeMachineConfigError(`Config file ${shown} is larger than ${MAX_CONFIG_BYTES} bytes`);
  try {
    return parseJsLike(await readFile(real, "utf8"));
  } catch (e) {
    throw new CodeMachineConfigError(`Unable to parse config file ${shown}: ${(e as Error).message}`);
  }
}

function agents(raw: unknown, kind: string): CodeMachineAgent[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw new CodeMachineConfigError(`${kind} agents config must be a list`);
  return raw.map((e) => {
    if (!e || typeof e !== "object") throw new CodeMachineConfigError(`${kind} agent entry must be an object`);
    const o = e as Record<string, unknown>;
    const id = str(o.id) ?? str(o.agentId);
    const promptPath = str(o.promptPath) ?? str(o.prompt) ?? str(o.path);
    if (!id) throw new CodeMachineConfigError(`${kind} agent is missing an id`);
    if (!promptPath) throw new CodeMachineConfigError(`${kind} agent ${id} is missing promptPath`);
    const a: CodeMachineAgent = { id, promptPath };
    for (const k of ["name", "description", "engineId", "model"] as const) {
      const s = str(o[k]);
      if (s) a[k] = s;
    }
    return a;
  });
}

/**
 * A `.codemachine` workspace at `root` (the directory holding `.codemachine`, or that directory
 * itself): its main agents (the steps, in order), sub agents, module policies, placeholders and
 * template. Files are read only inside `within` (the repository; `root` by default).
 */
export async function loadCodeMachine(root: string, within: string = root) {
  let ws = root;
  if (existsSync(join(root, ".codemachine"))) ws = join(root, ".codemachine");
  const cfg = join(ws, "config");
  const main = agents(await loadValue(join(cfg, "main.agents.js"), within), "main");
  const sub = agents(await loadValue(join(cfg, "sub.agents.js"), within), "sub");
  const modulesRaw = (await loadValue(join(cfg, "modules.js"), within)) ?? [];
  if (!Array.isArray(modulesRaw)) throw new CodeMachineConfigError("modules config must be a list");
  if (modulesRaw.some((m) => !m || typeof m !== "object" || Array.isArray(m))) throw new CodeMachineConfigError("module entry must be an object");
  const placeholders = (await loadValue(join(cfg, "placeholders.js"), within)) ?? {};
  const template = (await loadValue(join(ws, "template.json"), within)) ?? {};
  return { main, sub, modules: modulesRaw as Record<string, unknown>[], placeholders, template };
}

// ── requests ────────────────────────────────────────────────────────────────────────────────

export interface RepoServiceOptions {
  /** This hub's git, with its `[git]` policy (REPO_GIT_TIMEOUT_MS timeouts). */
  git: GitCli;
  /** Where projects' repositories are. */
  workspaces: Pick<WorkspaceManager, "repoFor" | "reposRoot">;
  /** The project record (the `projects` bucket), undefined when there is none. */
  project: (projectId: string) => Promise<ProjectRecord | undefined>;
  logger: Logger;
  /** Where `~` in a `localPath` is; the user's home directory when unset. */
  homeDir?: string;
}

type Data = RepoBranches | RepoBranchDeleted | CodeMachineWorkspace;

/** The last line git printed on stderr (what it says went wrong), or what happened instead. */
function why(e: unknown, fallback: string): string {
  if (e instanceof GitCommandError) return e.stderr.trim().split("\n").at(-1) || fallback;
  if (e instanceof GitTimeoutError) return `${fallback}: timed out after ${e.timeoutMs} ms`;
  return e instanceof Error ? e.message : fallback;
}

export class RepoService {
  readonly #o: RepoServiceOptions;
  readonly #home: string;

  constructor(opts: RepoServiceOptions) {
    this.#o = opts;
    this.#home = opts.homeDir ?? homedir();
  }

  /** Answers one request (never throws). */
  async handle(req: RepoRequest): Promise<RepoReply> {
    try {
      const p = await this.#o.project(req.projectId);
      if (!p) throw new RepoFailure("NOT_FOUND", "Project not found");
      let data: Data;
      switch (req.op) {
        case "branches":
          data = await this.#branches(p);
          break;
        case "delete_branch":
          data = await this.#deleteBranch(p, req.branch);
          break;
        case "codemachine":
          data = await this.#codemachine(p, req.workspacePath);
          break;
      }
      return { ok: true, data };
    } catch (e) {
      if (e instanceof RepoFailure) return { ok: false, error: { code: e.code, message: e.message } };
      this.#o.logger.warn({ err: e, op: req.op, projectId: req.projectId }, "repository request failed");
      return { ok: false, error: { code: "UNAVAILABLE", message: `The repository operation failed: ${why(e, "unknown error")}` } };
    }
  }

  /**
   * Answers an encoded request with an encoded reply (never throws): an unreadable request is
   * BAD_REQUEST; a reply over `maxBytes` (the server's max payload) is UNAVAILABLE.
   */
  async answer(data: Uint8Array, maxBytes = Number.POSITIVE_INFINITY): Promise<Uint8Array> {
    const d = decode(RepoRequest, data);
    const reply: RepoReply = d.ok
      ? await this.handle(d.value)
      : { ok: false, error: { code: "BAD_REQUEST", message: `Invalid repository request: ${d.error}` } };
    let out: Uint8Array;
    try {
      out = encode(RepoReply, reply);
    } catch (e) {
      this.#o.logger.error({ err: e }, "invalid repository reply");
      return encode(RepoReply, { ok: false, error: { code: "UNAVAILABLE", message: "The agent hub could not encode its answer" } });
    }
    if (out.length > maxBytes) {
      return encode(RepoReply, {
        ok: false,
        error: { code: "UNAVAILABLE", message: `The answer (${out.length} bytes) is larger than the bus allows (${maxBytes})` },
      });
    }
    return out;
  }

  /** A project's repository on this hub: NOT_FOUND without a project, CONFLICT when it has none yet. */
  async repository(projectId: string): Promise<string> {
    const p = await this.#o.project(projectId);
    if (!p) throw new RepoFailure("NOT_FOUND", "Project not found");
    return this.#repo(p);
  }

  /** The project's repository (its top level, real path), or CONFLICT when it has none yet. */
  async #repo(p: ProjectRecord): Promise<string> {
    if (p.localPath) {
      const dir = resolve(p.localPath === "~" ? this.#home : p.localPath.startsWith("~/") ? join(this.#home, p.localPath.slice(2)) : p.localPath);
      if (!existsSync(dir)) throw new RepoFailure("CONFLICT", `Repository path ${p.localPath} does not exist`);
      try {
        return await this.#o.workspaces.repoFor(p, p.id);
      } catch (e) {
        if (e instanceof NotARepositoryError) throw new RepoFailure("CONFLICT", `${p.localPath} is not a git repository`);
        throw e;
      }
    }
    // The managed clone, as repoFor places it; not cloned (nor fetched) here.
    const dir = join(this.#o.workspaces.reposRoot, p.id);
    if (!existsSync(dir)) throw new RepoFailure("CONFLICT", "The repository has not been cloned yet (the project's setup run clones it)");
    const real = await realpath(dir);
    const root = await this.#o.git.repositoryRoot(real);
    if (root === null || (await realpath(root)) !== real) throw new RepoFailure("CONFLICT", `${dir} is not a git repository`);
    return real;
  }

  /** origin's branches (name → head), or the local ones when there is no origin. */
  async #heads(repo: string): Promise<{ remote: boolean; heads: Map<string, string> }> {
    if ((await this.#o.git.remoteUrl(repo)) !== null) {
      try {
        return { remote: true, heads: await this.#o.git.remoteBranchHeads(repo, "origin") };
      } catch (e) {
        throw new RepoFailure("UNAVAILABLE", `Unable to list origin's branches: ${why(e, "git ls-remote failed")}`);
      }
    }
    return { remote: false, heads: await this.#o.git.branchHeads(repo) };
  }

  async #branches(p: ProjectRecord): Promise<RepoBranches> {
    const { remote, heads } = await this.#heads(await this.#repo(p));
    const names = [...heads.keys()].sort();
    return { remote, branches: names.map((name) => ({ name, sha: heads.get(name)! })) };
  }

  async #deleteBranch(p: ProjectRecord, branch: string): Promise<RepoBranchDeleted> {
    const git = this.#o.git;
    const invalid = () => new RepoFailure("BAD_REQUEST", `Invalid branch name '${branch}'`);
    if (!BRANCH.test(branch) || branch.includes("..") || branch.endsWith("/") || branch.endsWith(".lock")) throw invalid();
    const repo = await this.#repo(p);
    if (!(await git.isValidBranchName(repo, branch))) throw invalid();
    const base = p.baseBranch ?? "main";
    if (branch === base) throw new RepoFailure("CONFLICT", `Refusing to delete the base branch ${base}`);
    const { remote, heads } = await this.#heads(repo);
    const sha = heads.get(branch);
    if (!sha) throw new RepoFailure("NOT_FOUND", `Branch ${branch} not found${remote ? " on origin" : ""}`);
    const checkMerged = !git.policy.allowDeleteUnmergedBranches;
    const baseSha = heads.get(base);
    if (checkMerged && !baseSha) throw new RepoFailure("CONFLICT", `Base branch ${base} not found; cannot tell whether ${branch} is merged`);
    const unmerged = () => new RepoFailure("CONFLICT", `Branch ${branch} is not merged into ${base}; set allow_delete_unmerged_branches to delete it`);
    const failed = (e: unknown) => new RepoFailure("CONFLICT", `Failed to delete branch ${branch}: ${why(e, "git failed")}`);
    if (remote) {
      if (checkMerged) {
        try {
          await git.fetchBranches(repo, "origin", [base, branch]);
        } catch (e) {
          throw new RepoFailure("UNAVAILABLE", `Unable to fetch from origin: ${why(e, "git fetch failed")}`);
        }
      }
      try {
        await git.deleteRemoteBranch(repo, "origin", branch, { head: sha, ...(baseSha ? { target: baseSha } : {}), targetName: base });
      } catch (e) {
        throw e instanceof UnmergedBranchDeleteRefusedError ? unmerged() : failed(e);
      }
    } else {
      let deleted: boolean;
      try {
        deleted = await git.deleteBranch(repo, branch, { target: `refs/heads/${base}` });
      } catch (e) {
        throw e instanceof UnmergedBranchDeleteRefusedError ? unmerged() : failed(e);
      }
      if (!deleted) throw new RepoFailure("NOT_FOUND", `Branch ${branch} not found`);
    }
    this.#o.logger.info({ projectId: p.id, branch, remote }, "branch deleted");
    return { deleted: true, branch, remote };
  }

  async #codemachine(p: ProjectRecord, workspacePath: string | undefined): Promise<CodeMachineWorkspace> {
    const repo = await this.#repo(p);
    const wanted = workspacePath ? (isAbsolute(workspacePath) ? workspacePath : join(repo, workspacePath)) : repo;
    if (!existsSync(wanted)) throw new RepoFailure("BAD_REQUEST", `Workspace path ${workspacePath} does not exist`);
    const ws = await realpath(wanted);
    if (!inside(repo, ws)) throw new RepoFailure("BAD_REQUEST", "workspace_path must be inside the project's repository");
    let cm: Awaited<ReturnType<typeof loadCodeMachine>>;
    try {
      cm = await loadCodeMachine(ws, repo);
    } catch (e) {
      if (e instanceof CodeMachineConfigError) throw new RepoFailure("BAD_REQUEST", e.message);
      throw e;
    }
    if (cm.main.length === 0) throw new RepoFailure("BAD_REQUEST", "No CodeMachine main agents found (.codemachine/config/main.agents.js)");
    const rel = relative(repo, ws);
    return { ...cm, workspacePath: rel === "" ? "." : rel, root: ws };
  }
}

/** Reads a project record from the `projects` bucket (undefined when absent or unreadable). */
export function projectReader(bus: Bus): (projectId: string) => Promise<ProjectRecord | undefined> {
  return async (projectId) => {
    const kv = await bus.kv(bus.names.buckets.projects);
    const e = await kv.get(projectId);
    if (!e || e.operation !== "PUT" || e.length === 0) return undefined;
    const d = decode(ProjectRecord, e.value);
    return d.ok ? d.value : undefined;
  };
}
