import { z } from "zod";

/**
 * Repository operations a surface asks for over NATS (request/reply on `<p>.q.repo`, answered by
 * an agent hub, queue group `agent-hub`): the repositories live with the agent hubs (a project's
 * `localPath`, else the hub's clone under `<ORCH_WORKSPACE>/repos/<projectId>`), so the gateway
 * never runs git or reads a repository itself. The hub reads the project record from the
 * `projects` bucket; a request names the project only.
 */

const ProjectId = z.string().regex(/^[A-Za-z0-9_-]{1,128}$/, "must be [A-Za-z0-9_-], 1-128 chars");

/** The subject's name under `names.subjects.query(…)`. */
export const REPO_QUERY = "repo";

export const RepoRequest = z.discriminatedUnion("op", [
  /** origin's branches (`ls-remote --heads`), or the local ones when the repository has no origin. */
  z.object({ op: z.literal("branches"), projectId: ProjectId }),
  /**
   * Deletes a branch on origin (locally without one): never the project's base branch, and one
   * not merged into it only with `ORCH_GIT_ALLOW_DELETE_UNMERGED_BRANCHES` (the hub's setting).
   */
  z.object({ op: z.literal("delete_branch"), projectId: ProjectId, branch: z.string().min(1).max(255) }),
  /**
   * Loads a `.codemachine` workspace: `workspacePath` relative to the repository (or an absolute
   * path inside it); the repository's root when unset. Config files are parsed, never evaluated.
   */
  z.object({ op: z.literal("codemachine"), projectId: ProjectId, workspacePath: z.string().max(4_096).optional() }),
]);
export type RepoRequest = z.infer<typeof RepoRequest>;

export const RepoErrorCode = z.enum(["NOT_FOUND", "CONFLICT", "BAD_REQUEST", "UNAVAILABLE"]);
export type RepoErrorCode = z.infer<typeof RepoErrorCode>;

export const RepoBranches = z.object({
  /** Whether these are origin's branches (false: the repository's local ones, it has no origin). */
  remote: z.boolean(),
  /** Sorted by name. */
  branches: z.array(z.object({ name: z.string(), sha: z.string() })),
});
export type RepoBranches = z.infer<typeof RepoBranches>;

export const RepoBranchDeleted = z.object({ deleted: z.literal(true), branch: z.string(), remote: z.boolean() });
export type RepoBranchDeleted = z.infer<typeof RepoBranchDeleted>;

/** A CodeMachine agent (`main.agents.js`, `sub.agents.js`). */
export const CodeMachineAgent = z.object({
  id: z.string(),
  name: z.string().optional(),
  description: z.string().optional(),
  promptPath: z.string(),
  engineId: z.string().optional(),
  model: z.string().optional(),
});
export type CodeMachineAgent = z.infer<typeof CodeMachineAgent>;

export const CodeMachineWorkspace = z.object({
  /** The main agents, in order: the steps. Never empty. */
  main: z.array(CodeMachineAgent),
  sub: z.array(CodeMachineAgent),
  /** Module policies (`modules.js`), as written. */
  modules: z.array(z.record(z.string(), z.unknown())),
  placeholders: z.unknown(),
  template: z.unknown(),
  /** The workspace, relative to the repository's root (`.` for the root itself). */
  workspacePath: z.string(),
  /** The workspace's absolute (real) path on the agent hub. */
  root: z.string(),
});
export type CodeMachineWorkspace = z.infer<typeof CodeMachineWorkspace>;

export const RepoReply = z.discriminatedUnion("ok", [
  z.object({ ok: z.literal(true), data: z.union([RepoBranches, RepoBranchDeleted, CodeMachineWorkspace]) }),
  z.object({ ok: z.literal(false), error: z.object({ code: RepoErrorCode, message: z.string() }) }),
]);
export type RepoReply = z.infer<typeof RepoReply>;
