import type { CiStatus, StepStatus } from "@orch/contracts";
import type { CiPolicy, Definition } from "./definition.js";

/**
 * CI reports, decided by the kernel (`ci_report`): the policy a run got at its creation, what a
 * report does to the step it is about, whether a fix attempt may start, and what its agent is told.
 * Pure: the kernel applies these in one transition; the clock is the kernel's.
 *
 *   report \ step    running          needs_qa         failed | blocked   anything else
 *   success          complete_step    approve (forced) approve (forced)   —
 *     (onSuccess qa) run_qa           run_qa           run_qa             —
 *   failure          fail_step        fail_step        —                  —
 *   pending          —                —                —                  —
 *   (onSuccess or onFailure `record`: — for that report)
 *
 * After a failure (onFailure not `record`), a failed or blocked step runs again (`run_step` with the
 * failure as feedback) while the run has had fewer than `fixAttempts` attempts and the last one is
 * at least `fixCooldownMs` old; otherwise why not is recorded (`ci.fix_refused`).
 */

/** A run's CI policy as resolved at its creation, kept in its state (so later defaults never change it). */
export interface CiRules {
  onSuccess: NonNullable<CiPolicy["onSuccess"]>;
  onFailure: NonNullable<CiPolicy["onFailure"]>;
  fixAttempts: number;
  fixCooldownMs: number;
}

/** The core's defaults (its configuration) for what a definition's CI policy leaves out. */
export type CiDefaults = Partial<CiRules>;

/** What a policy gets for what neither its definition nor the core's defaults say. */
export const CI_POLICY_DEFAULTS: Readonly<CiRules> = Object.freeze({ onSuccess: "complete", onFailure: "block", fixAttempts: 0, fixCooldownMs: 600_000 });

/** A definition's CI policy with the core's defaults filled in; null when CI reports are only recorded. */
export function resolveCiPolicy(policy: Definition["ci"], defaults: CiDefaults = {}): CiRules | null {
  if (policy === undefined || policy === "off") return null;
  return {
    onSuccess: policy.onSuccess ?? defaults.onSuccess ?? CI_POLICY_DEFAULTS.onSuccess,
    onFailure: policy.onFailure ?? defaults.onFailure ?? CI_POLICY_DEFAULTS.onFailure,
    fixAttempts: policy.fixAttempts ?? defaults.fixAttempts ?? CI_POLICY_DEFAULTS.fixAttempts,
    fixCooldownMs: policy.fixCooldownMs ?? defaults.fixCooldownMs ?? CI_POLICY_DEFAULTS.fixCooldownMs,
  };
}

/** What a report does to its step: nothing, `complete_step`, a forced `approve`, `run_qa`, or `fail_step`. */
export type CiStepAction = "none" | "complete" | "approve" | "qa" | "fail";

const QA_FROM: ReadonlySet<StepStatus> = new Set(["running", "needs_qa", "failed", "blocked"]);

/** The table above, for one report and the status of the step it is about. */
export function ciStepAction(rules: CiRules, report: CiStatus, step: StepStatus): CiStepAction {
  if (report === "success") {
    if (rules.onSuccess === "record") return "none";
    if (rules.onSuccess === "qa" && QA_FROM.has(step)) return "qa";
    if (step === "running") return "complete";
    return step === "needs_qa" || step === "failed" || step === "blocked" ? "approve" : "none";
  }
  if (report === "failure") {
    if (rules.onFailure === "record") return "none";
    return step === "running" || step === "needs_qa" ? "fail" : "none";
  }
  return "none";
}

/** A run's fix attempts so far (its kernel state). */
export interface CiFixCount {
  attempts: number;
  lastAt?: number;
}

export type CiFixVerdict = { ok: true; attempt: number } | { ok: false; reason: string; notBefore?: number };

/** Whether fix attempt n+1 may start at `now`, or why not (the reasons seed 004's users read in `ciFixRefused`). */
export function ciFixVerdict(rules: CiRules, count: CiFixCount, now: number): CiFixVerdict {
  const max = rules.fixAttempts;
  if (count.attempts >= max) return { ok: false, reason: `CI fix attempts used up (${count.attempts} of ${max})` };
  if (count.lastAt !== undefined && now - count.lastAt < rules.fixCooldownMs) {
    const notBefore = count.lastAt + rules.fixCooldownMs;
    return {
      ok: false,
      reason: `CI fix attempt ${count.attempts + 1} of ${max} waits for the cooldown: not before ${new Date(notBefore).toISOString()}`,
      notBefore,
    };
  }
  return { ok: true, attempt: count.attempts + 1 };
}

/** What failed, as a report tells it. */
export interface CiFailure {
  provider?: string;
  check?: string;
  conclusion?: string;
  sha?: string;
  url?: string;
}

/** What the agent of fix attempt `attempt` is told: the check, its conclusion, where to read the log, the step's last error. */
export function ciFixFeedback(f: CiFailure, stepError: string | undefined, attempt: number, max: number): string {
  return [
    `CI failed${f.provider ? ` on ${f.provider}` : ""}${f.check ? ` (${f.check})` : ""}: ${f.conclusion ?? "failure"}${f.sha ? ` at ${f.sha}` : ""}.`,
    ...(f.url ? [`Details: ${f.url}`] : []),
    ...(stepError ? [`The step's last error: ${stepError}`] : []),
    `Fix what makes it fail (fix attempt ${attempt} of ${max}).`,
  ]
    .join("\n")
    .slice(0, 10_000);
}
