import { z } from "zod";
import { ProjectForge, ProjectMerge } from "./forges.js";
import { Id } from "./run-views.js";
import { ProjectRecord } from "./sessions.js";

/**
 * The writes only the core makes, which the edges ask for over NATS request/reply
 * (`names.subjects.rpc(RPC.*)`, answered by every orchestrator replica in the queue group
 * `names.groups.core`): publishing a definition, creating or changing a project, and assigning the
 * numbers that name things (seed 002's feature numbers, a project's number). Each request is
 * validated by the core, which answers with what it wrote or a typed refusal (`WriteError`); an
 * edge maps the code, never the message. Reads stay reads of the buckets (`defs`, `projects`, `ids`).
 */

export const RPC = {
  definitionsPut: "definitions.put",
  projectsCreate: "projects.create",
  projectsUpdate: "projects.update",
  idsAssign: "ids.assign",
} as const;

export const WriteErrorCode = {
  /** A definition version that exists with other content; a project id that is taken. */
  AlreadyExists: "ALREADY_EXISTS",
  /** The request, or what it carries (a definition, a project), does not validate: `issues` say where. */
  Invalid: "INVALID",
  /** What the request changes is not there (a project to update). */
  NotFound: "NOT_FOUND",
  /** The core could not do it (JetStream failed): try again. */
  Unavailable: "UNAVAILABLE",
  /** The core failed (a bug): it is logged there. */
  Internal: "INTERNAL",
} as const;
export type WriteErrorCode = (typeof WriteErrorCode)[keyof typeof WriteErrorCode];

export const WriteIssue = z.object({ path: z.string(), message: z.string() });
export type WriteIssue = z.infer<typeof WriteIssue>;

export const WriteError = z.object({
  code: z.enum(Object.values(WriteErrorCode) as [WriteErrorCode, ...WriteErrorCode[]]),
  message: z.string(),
  issues: z.array(WriteIssue).optional(),
});
export type WriteError = z.infer<typeof WriteError>;

const Refused = z.object({ ok: z.literal(false), error: WriteError });

/** Who asked (recorded on what the write creates, e.g. a setup run's events) and the request it serves. */
const Origin = {
  actor: z.string().min(1).max(200).optional(),
  correlationId: z.string().max(200).optional(),
};

// ── definitions ─────────────────────────────────────────────────────────────────────────────────

/** A definition to publish, as a value (an edge reads YAML text itself): the core validates it. */
export const DefinitionPutRequest = z.object({ definition: z.unknown(), ...Origin });
export type DefinitionPutRequest = z.infer<typeof DefinitionPutRequest>;

export const DefinitionSummary = z.object({
  id: z.string(),
  version: z.int(),
  title: z.string().optional(),
  view: z.string(),
  source: z.enum(["builtin", "stored"]),
  hash: z.string(),
});
export type DefinitionSummary = z.infer<typeof DefinitionSummary>;

/** `created: false`: the same content was published before (nothing written). */
export const DefinitionPutAnswer = z.discriminatedUnion("ok", [z.object({ ok: z.literal(true), created: z.boolean(), summary: DefinitionSummary }), Refused]);
export type DefinitionPutAnswer = z.infer<typeof DefinitionPutAnswer>;

// ── projects ────────────────────────────────────────────────────────────────────────────────────

const Sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, "must be a SHA-256 in hex");

/** A project's fields as a change: a field left out keeps its value, `null` removes it. */
export const ProjectChange = z.object({
  name: z.string().min(1).max(200).optional(),
  localPath: z.string().max(4_096).nullable().optional(),
  gitUrl: z.string().max(4_096).nullable().optional(),
  baseBranch: z.string().max(255).nullable().optional(),
  ciProvider: z.string().max(64).nullable().optional(),
  defaultModels: z.record(z.string().max(64), z.string().max(200)).nullable().optional(),
  /** Where its repository is hosted; `null`: derive it from `gitUrl` again (the core does). */
  forge: ProjectForge.nullable().optional(),
  merge: ProjectMerge.nullable().optional(),
});
export type ProjectChange = z.infer<typeof ProjectChange>;

/**
 * A new project's onboarding: its setup run (`setup-<projectId>`, a run of `protocol` named
 * `setup-<number>`) that resolves the repository in an agent hub, with the questions the project
 * leaves open recorded on it (and, `blocking`, a step that waits until they are answered).
 */
export const Onboarding = z.object({ questions: z.array(z.string().min(1).max(1_000)).max(50), blocking: z.boolean() });
export type Onboarding = z.infer<typeof Onboarding>;

export const ProjectCreateRequest = z.object({
  /** Default: `project-<number>`, with the number the core assigns it. */
  id: Id.optional(),
  fields: ProjectChange.extend({ name: z.string().min(1).max(200) }),
  /** The project's own token, as its SHA-256: the token itself never travels. */
  tokenSha256: Sha256Hex.optional(),
  onboarding: Onboarding.optional(),
  ...Origin,
});
export type ProjectCreateRequest = z.infer<typeof ProjectCreateRequest>;

export const ProjectUpdateRequest = z.object({
  id: Id,
  fields: ProjectChange,
  /** A new token's SHA-256 (the old token stops opening it); `null` removes the token; left out, kept. */
  tokenSha256: Sha256Hex.nullable().optional(),
  /** Create the project when it is not there (then `fields.name` is required); else NOT_FOUND. */
  createIfMissing: z.boolean().optional(),
  ...Origin,
});
export type ProjectUpdateRequest = z.infer<typeof ProjectUpdateRequest>;

export const ProjectWriteAnswer = z.discriminatedUnion("ok", [
  z.object({
    ok: z.literal(true),
    /** Whether this request created the project (false: it changed one). */
    created: z.boolean(),
    project: ProjectRecord,
    /** The number the core gave the project (its seed 004 id). */
    number: z.int().positive(),
    /** The onboarding's setup run, when there is one. */
    setupRunId: Id.optional(),
  }),
  Refused,
]);
export type ProjectWriteAnswer = z.infer<typeof ProjectWriteAnswer>;

// ── numbers ─────────────────────────────────────────────────────────────────────────────────────

/**
 * What the core numbers, each kind from a counter of its own in the `ids` bucket: `feature` (seed
 * 002's feature numbers, one per workflow run), `project` (every project, whether it has a record
 * or only runs).
 */
export const NUMBERED_KINDS = ["feature", "project"] as const;
export const NumberedKind = z.enum(NUMBERED_KINDS);
export type NumberedKind = z.infer<typeof NumberedKind>;

/** The number of `key` (the run or project it names): assigned once, the same on every later request. */
export const IdAssignRequest = z.object({ kind: NumberedKind, key: Id });
export type IdAssignRequest = z.infer<typeof IdAssignRequest>;

export const IdAssignAnswer = z.discriminatedUnion("ok", [z.object({ ok: z.literal(true), n: z.int().positive() }), Refused]);
export type IdAssignAnswer = z.infer<typeof IdAssignAnswer>;
