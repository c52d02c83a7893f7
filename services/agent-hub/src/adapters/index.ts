import { StepErrorCode, type StepError, type Usage, type WorkItem } from "@orch/contracts";
import type { Logger } from "@orch/logging";
import { z } from "zod";

/** What a step adapter answers, as seed 000 defines it: `{ ok, notes }` (plus an error when not ok). */
export interface AdapterResult {
  ok: boolean;
  notes: string[];
  output?: unknown;
  error?: StepError;
  usage?: Usage;
  model?: string;
}

export interface AdapterContext {
  item: WorkItem;
  logger: Logger;
  signal: AbortSignal;
}

export type Adapter = (ctx: AdapterContext) => Promise<AdapterResult>;

/**
 * `payload.mock`, honoured in `ORCH_MODE=mock` only, lets a step show retries and limits:
 * `failTimes` fails the first N attempts (N > 2 exhausts the retries), `delayMs` makes each attempt
 * take that long, `error` sets the failure message, `retryable: false` makes a failure final.
 */
export const MockDirective = z.strictObject({
  failTimes: z.int().min(0).max(1_000).optional(),
  delayMs: z.int().min(0).max(600_000).optional(),
  error: z.string().max(2_000).optional(),
  retryable: z.boolean().optional(),
});
export type MockDirective = z.infer<typeof MockDirective>;

export class AbortedError extends Error {
  override readonly name = "AbortedError";
  readonly code = StepErrorCode.Aborted;
}

export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new AbortedError("step aborted"));
    const t = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(new AbortedError("step aborted"));
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

const str = (v: unknown, fallback: string) => (typeof v === "string" && v.length > 0 ? v : fallback);

/** A log-only adapter (seed 000's workers): logs what it would do and says so in its notes. */
function logOnly(type: string, describe: (item: WorkItem) => string): Adapter {
  return async ({ item, logger }) => {
    const what = describe(item);
    logger.info({ index: item.index, attempt: item.attempt }, `${type}: ${what}`);
    return { ok: true, notes: [`${type}: ${what}`] };
  };
}

export const ADAPTERS: Readonly<Record<string, Adapter>> = Object.freeze({
  "dev.log": logOnly("dev.log", (i) => str(i.payload?.message, i.goal ?? i.title ?? i.stepId)),
  repoops: logOnly("repoops", (i) => `${str(i.payload?.op, "sync")} (log-only)`),
  ci: logOnly("ci", (i) => `${str(i.payload?.pipeline, "default")} pipeline (log-only)`),
  docs: logOnly("docs", (i) => `${str(i.payload?.path, "docs/")} (log-only)`),
});

export const STEP_TYPES = Object.keys(ADAPTERS);
