import { z } from "zod";
import { ErrorCode } from "./errors.js";
import { Id } from "./run-views.js";

/**
 * The supervisor: a model a person asks about a run (summarise it, explain a failure, suggest what
 * to do next). It reads the run and answers in words; nothing it says changes a run.
 *
 * Wire protocol (core NATS, nothing stored):
 *
 *   edge ─ SupervisorAsk ──▶ p.q.supervisor.ask   (queue group `agent-hub`, reply = the edge's inbox)
 *   hub  ─ SupervisorFrame ▶ <inbox>              seq 0, 1, 2, … in order:
 *                                                  ping* → start → (delta | ping)* → done | error
 *   edge ─ SupervisorCancel ▶ p.ctl.supervisor.cancel   (every hub; the one answering `askId` aborts)
 *
 * The edge subscribes to its inbox before it publishes the ask. The hub's first frame comes at once:
 * a `ping` when it takes the ask, or an `error` when it refuses it. `start` comes once the hub has
 * read the run and the question stands (the run and step exist), before the model is called. While
 * the hub works and sends nothing else (reading a long run, waiting for the model) it sends `ping`
 * every SUPERVISOR_PING_MS, so an edge that hears nothing for SUPERVISOR_IDLE_MS knows the hub is
 * gone. A gap in `seq` means a frame was lost: the edge gives up and cancels.
 */

/** Subject names under `names.subjects.query(…)` and `names.subjects.ctl(…)`. */
export const SUPERVISOR_ASK = "supervisor.ask";
export const SUPERVISOR_CANCEL = "supervisor.cancel";

/** A hub sends at least one frame this often while an answer is open. */
export const SUPERVISOR_PING_MS = 5_000;
/** An edge that gets no frame for this long takes the hub for gone. */
export const SUPERVISOR_IDLE_MS = 20_000;
/** The longest question. */
export const SUPERVISOR_QUESTION_MAX = 4_000;

export const SupervisorAsk = z.object({
  /** The edge's id for this answer (names it in frames and cancellations). */
  askId: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/),
  runId: Id,
  question: z.string().min(1).max(SUPERVISOR_QUESTION_MAX),
  /** Focus on one step of the run. */
  stepId: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,64}$/)
    .optional(),
  /** Who asks (logged by the hub; never sent to the model). */
  actor: z.string().max(200).optional(),
});
export type SupervisorAsk = z.infer<typeof SupervisorAsk>;

export const SupervisorCancel = z.object({ askId: SupervisorAsk.shape.askId });
export type SupervisorCancel = z.infer<typeof SupervisorCancel>;

/** Why an answer was refused or broke off; the edge maps each to its HTTP status. */
export const SupervisorErrorCode = {
  /** The LLM policy refuses the supervisor's model server (`locked`, or a hosted URL under `oss`). */
  PolicyRefused: ErrorCode.LlmPolicyRefused,
  /** The run (or the step asked about) does not exist. */
  NotFound: ErrorCode.NotFound,
  /** The ask itself is malformed. */
  BadRequest: ErrorCode.BadRequest,
  /** The model server failed, refused or could not be reached. */
  ModelError: ErrorCode.LlmError,
  /** The hub could not read the run or lost the answer. */
  Unavailable: ErrorCode.SupervisorUnavailable,
} as const;
export type SupervisorErrorCode = (typeof SupervisorErrorCode)[keyof typeof SupervisorErrorCode];

/** Tokens the model server reported, or null when it reported none. */
export const SupervisorUsage = z.object({ tokensIn: z.int().nonnegative(), tokensOut: z.int().nonnegative() }).nullable();
export type SupervisorUsage = z.infer<typeof SupervisorUsage>;

const Frame = z.object({ askId: SupervisorAsk.shape.askId, seq: z.int().nonnegative() });

export const SupervisorFrame = z.discriminatedUnion("kind", [
  Frame.extend({ kind: z.literal("start"), model: z.string() }),
  Frame.extend({ kind: z.literal("delta"), text: z.string() }),
  Frame.extend({ kind: z.literal("ping") }),
  Frame.extend({ kind: z.literal("done"), model: z.string(), usage: SupervisorUsage }),
  Frame.extend({
    kind: z.literal("error"),
    error: z.object({ code: z.enum(Object.values(SupervisorErrorCode) as [SupervisorErrorCode, ...SupervisorErrorCode[]]), message: z.string() }),
  }),
]);
export type SupervisorFrame = z.infer<typeof SupervisorFrame>;
