import type { Bus } from "@orch/bus";
import { MAX_RUN_STEPS, TransitionHead, TransitionReader, isToken } from "@orch/contracts";

/**
 * Numbers for runs and their steps, derived from what the core has written, never stored:
 *
 *   run number  = the runs stream's sequence of the run's FIRST transition (the one that created it:
 *                 head `n === 1`), which never changes and which no other run has;
 *   step number = run number × MAX_RUN_STEPS + the step's index in its run (the kernel keeps a run
 *                 under MAX_RUN_STEPS steps, so no two steps of any runs share one).
 *
 * Forward, a run's number is a direct get of the first message on the run's subject
 * (`{seq: 0, next_by_subj}`); back, a number is a direct get of that sequence, whose subject names
 * the run and whose head says it is a first transition. Reading them writes nothing (seed 004's
 * integer ids: a GET never allocates). Numbers are not dense: they are positions in the runs stream.
 */

const FirstOf = TransitionHead.pick({ runId: true, projectId: true, n: true });

/** A step's number from its run's number and its index. */
export function stepNumber(runNumber: number, index: number): number {
  if (!Number.isSafeInteger(runNumber) || runNumber < 1) throw new RangeError(`run number ${runNumber} is not a positive integer`);
  if (!Number.isInteger(index) || index < 0 || index >= MAX_RUN_STEPS) throw new RangeError(`step index ${index} is not in 0..${MAX_RUN_STEPS - 1}`);
  const n = runNumber * MAX_RUN_STEPS + index;
  if (!Number.isSafeInteger(n)) throw new RangeError(`run number ${runNumber} is too large to number its steps`);
  return n;
}

/** The run number and step index a step number stands for (null for a number no step can have). */
export function splitStepNumber(n: number): { runNumber: number; index: number } | null {
  if (!Number.isSafeInteger(n) || n < MAX_RUN_STEPS) return null;
  return { runNumber: Math.floor(n / MAX_RUN_STEPS), index: n % MAX_RUN_STEPS };
}

/** The run's number, or null when the run does not exist. */
export async function runNumberOf(bus: Bus, runId: string): Promise<number | null> {
  if (!isToken(runId)) return null;
  const m = await bus.jsm.direct.getMessage(bus.names.streams.runs, { seq: 0, next_by_subj: bus.names.subjects.runOf(runId) });
  return m ? m.seq : null;
}

/** The run whose number is `n`, or null when no run has it. */
export async function runOfNumber(bus: Bus, n: number): Promise<{ projectId: string; runId: string } | null> {
  if (!Number.isSafeInteger(n) || n < 1) return null;
  const m = await bus.jsm.direct.getMessage(bus.names.streams.runs, { seq: n });
  if (!m) return null;
  const ids = bus.names.subjects.runOfSubject(m.subject);
  if (!ids) return null;
  try {
    const head = new TransitionReader(m.data).headAs(FirstOf);
    return head.n === 1 && head.runId === ids.runId ? ids : null;
  } catch {
    return null;
  }
}
