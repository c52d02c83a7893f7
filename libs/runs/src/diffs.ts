import { decode, encode, type Bus } from "@orch/bus";
import { STEP_DIFF, StepDiffErrorCode, StepDiffReply, StepDiffRequest, type StepDiff } from "@orch/contracts";

/**
 * The asking side of a step's diff (@orch/contracts `diffs.ts`): one request to any agent hub,
 * one reply. A hub's refusal, no hub at all, or an unreadable answer is a StepDiffError.
 */

/** How long an agent hub has to answer (its git commands are bounded well below). */
export const STEP_DIFF_TIMEOUT_MS = 20_000;

export class StepDiffError extends Error {
  override readonly name = "StepDiffError";
  constructor(
    readonly code: StepDiffErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Whether a request failed because nobody subscribes to its subject. */
function noResponders(err: unknown): boolean {
  const e = err as { isNoResponders?: () => boolean; name?: string; cause?: { name?: string } } | null;
  return typeof e?.isNoResponders === "function" ? e.isNoResponders() : e?.name === "NoRespondersError" || e?.cause?.name === "NoRespondersError";
}

export async function requestStepDiff(bus: Bus, req: StepDiffRequest, timeoutMs = STEP_DIFF_TIMEOUT_MS): Promise<StepDiff> {
  const subject = bus.names.subjects.query(STEP_DIFF);
  let data: Uint8Array;
  try {
    data = (await bus.nc.request(subject, encode(StepDiffRequest, req, subject), { timeout: timeoutMs })).data;
  } catch (err) {
    if (noResponders(err)) throw new StepDiffError(StepDiffErrorCode.Unavailable, "No agent hub is answering; diffs are read there", { cause: err });
    if ((err as { name?: string }).name === "TimeoutError")
      throw new StepDiffError(StepDiffErrorCode.Unavailable, "The agent hub did not answer in time", { cause: err });
    throw new StepDiffError(StepDiffErrorCode.Unavailable, `Unable to ask an agent hub: ${(err as Error).message}`, { cause: err });
  }
  const reply = decode(StepDiffReply, data);
  if (!reply.ok) throw new StepDiffError(StepDiffErrorCode.Unavailable, "The agent hub's answer is unreadable");
  if (!reply.value.ok) throw new StepDiffError(reply.value.error.code, reply.value.error.message);
  return reply.value.diff;
}
