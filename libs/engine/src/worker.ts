import type { Definition, RetryPolicy } from "./definition.js";

/**
 * The core's task worker as run policy (seed 001's ORCH_WORKER_ENABLED, ORCH_WORKER_MAX_RETRIES,
 * ORCH_WORKER_BACKOFF_MS): resolved once, at a run's creation, from its definition's `worker` policy
 * and the core's settings for what that leaves out, and kept with the run, so a later change of the
 * settings never changes a run in flight. Pure.
 *
 * With `enabled`, the run's ready steps start by themselves (the kernel schedules them, as with
 * `execution: auto`, within the run's `maxConcurrentSteps`) and a failed attempt is retried by the
 * kernel's retry policy: at most `maxRetries` retries, retry n after `backoffMs · 2^(n−1)` capped at
 * 60 s, each through a retry timer the scheduler fires. Disabled, the definition's execution and
 * retry policy stand (seed 001: steps wait for a dispatch, one attempt per dispatch).
 */

export interface WorkerRules {
  enabled: boolean;
  maxRetries: number;
  backoffMs: number;
}

/** The core's settings, for what a definition's worker policy leaves out. */
export type WorkerDefaults = Partial<WorkerRules>;

/** What a policy gets for what neither its definition nor the core's settings say. */
export const WORKER_POLICY_DEFAULTS: Readonly<WorkerRules> = Object.freeze({ enabled: false, maxRetries: 3, backoffMs: 1_000 });

/** The longest wait before a worker retry. */
export const WORKER_MAX_BACKOFF_MS = 60_000;

/** A definition's worker policy with the core's settings filled in; null when the definition has none. */
export function resolveWorkerPolicy(policy: Definition["worker"], defaults: WorkerDefaults = {}): WorkerRules | null {
  if (policy === undefined) return null;
  return {
    enabled: policy.enabled ?? defaults.enabled ?? WORKER_POLICY_DEFAULTS.enabled,
    maxRetries: policy.maxRetries ?? defaults.maxRetries ?? WORKER_POLICY_DEFAULTS.maxRetries,
    backoffMs: policy.backoffMs ?? defaults.backoffMs ?? WORKER_POLICY_DEFAULTS.backoffMs,
  };
}

/** The retry policy an enabled worker gives a run's steps (over the definition's): no jitter, exact backoff. */
export function workerRetry(rules: WorkerRules | undefined | null): Partial<RetryPolicy> {
  if (!rules?.enabled) return {};
  return { maxAttempts: 1 + rules.maxRetries, initialMs: rules.backoffMs, multiplier: 2, maxMs: WORKER_MAX_BACKOFF_MS, jitterMs: 0 };
}
