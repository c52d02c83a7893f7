import { z } from "zod";
import { ErrorCode } from "./errors.js";
import { Id } from "./run-views.js";

/**
 * A step's diff: what the agent committed for one attempt of a step, as a patch per file, for the
 * person deciding at a gate. The commits are the ones the run's sessions recorded (`result.commit`
 * of the step's sessions of that attempt), never a commit named by the asker, so nothing outside
 * the run is ever shown.
 *
 * Wire protocol (core NATS request/reply, nothing stored):
 *
 *   edge ─ StepDiffRequest ──▶ p.q.step.diff   (queue group `agent-hub`)
 *   hub  ─ StepDiffReply ───▶ <reply inbox>    one message: the diff, or an error with a code
 *
 * The hub runs git where the project's repository is (its `localPath`, else the hub's clone), with
 * secret values it knows redacted, and bounds the answer: STEP_DIFF_MAX_BYTES of patch text in all,
 * STEP_DIFF_FILE_MAX_BYTES per file; a file cut short is `truncated` and ends with a note.
 */

/** The subject's name under `names.subjects.query(…)`. */
export const STEP_DIFF = "step.diff";

/** Patch text in one answer, all files together. */
export const STEP_DIFF_MAX_BYTES = 512 * 1024;
/** Patch text of one file. */
export const STEP_DIFF_FILE_MAX_BYTES = 128 * 1024;

/** A commit id as git prints it (abbreviated to 7, or a full SHA-1). */
export const CommitSha = z.string().regex(/^[0-9a-f]{7,40}$/, "must be 7-40 hex digits");

export const StepDiffRequest = z.object({
  runId: Id,
  stepId: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/),
  /** The step's attempt whose commits are shown. */
  attempt: z.int().nonnegative(),
});
export type StepDiffRequest = z.infer<typeof StepDiffRequest>;

/** As `agent.file_edit` names them (renames are shown as a delete and an add). */
export const FILE_CHANGES = ["add", "modify", "delete"] as const;
export const FileChangeKind = z.enum(FILE_CHANGES);
export type FileChangeKind = z.infer<typeof FileChangeKind>;

export const DiffFile = z.object({
  path: z.string(),
  change: FileChangeKind,
  additions: z.int().nonnegative(),
  deletions: z.int().nonnegative(),
  binary: z.boolean().optional(),
  /** The file's part of the patch (from its `diff --git` line), possibly cut short. */
  patch: z.string(),
  truncated: z.boolean().optional(),
});
export type DiffFile = z.infer<typeof DiffFile>;

export const DiffCommit = z.object({
  sha: CommitSha,
  message: z.string(),
  /** The branch the commit was made on (the session's). */
  branch: z.string(),
  files: z.array(DiffFile),
  /** Some of this commit's patch text was left out. */
  truncated: z.boolean().optional(),
});
export type DiffCommit = z.infer<typeof DiffCommit>;

export const StepDiff = z.object({
  runId: Id,
  stepId: z.string(),
  attempt: z.int().nonnegative(),
  /** Oldest first. */
  commits: z.array(DiffCommit),
  /** Some patch text was left out (a file or the answer over its bound). */
  truncated: z.boolean(),
});
export type StepDiff = z.infer<typeof StepDiff>;

/** Why there is no diff; the edge maps each to its HTTP status. */
export const StepDiffErrorCode = {
  /** The run, the step, or a commit of that attempt does not exist. */
  NotFound: ErrorCode.NotFound,
  BadRequest: ErrorCode.BadRequest,
  /** git failed or the commit is not in this hub's repository. */
  GitError: ErrorCode.GitError,
  /** The repository or the run's sessions could not be read. */
  Unavailable: ErrorCode.Unavailable,
} as const;
export type StepDiffErrorCode = (typeof StepDiffErrorCode)[keyof typeof StepDiffErrorCode];

export const StepDiffReply = z.discriminatedUnion("ok", [
  z.object({ ok: z.literal(true), diff: StepDiff }),
  z.object({
    ok: z.literal(false),
    error: z.object({ code: z.enum(Object.values(StepDiffErrorCode) as [StepDiffErrorCode, ...StepDiffErrorCode[]]), message: z.string() }),
  }),
]);
export type StepDiffReply = z.infer<typeof StepDiffReply>;
