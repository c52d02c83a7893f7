import { z } from "zod";

/**
 * The writes only the core makes, which the edges ask for over NATS request/reply
 * (`names.subjects.rpc(RPC.*)`, answered by every orchestrator replica in the queue group
 * `names.groups.core`): publishing a definition. Each request is validated by the core, which
 * answers with what it wrote or a typed refusal (`WriteError`); an edge maps the code, never the
 * message. Reads stay reads of the buckets (`defs`).
 */

export const RPC = {
  definitionsPut: "definitions.put",
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
