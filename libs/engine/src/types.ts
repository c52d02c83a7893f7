/** Shapes shared by the machines and the kernel. */

export interface Usage {
  tokensIn: number;
  tokensOut: number;
  costUsd: number;
  wallMs: number;
}

export interface StepError {
  code: string;
  message: string;
  retryable: boolean;
}

/** An event to append to the run's history. */
export interface EmitParams {
  type: string;
  at: number;
  data?: Record<string, unknown>;
}

/** Work for the agent hub: the kernel adds role, type, inputs and payload from the definition. */
export interface DispatchParams {
  stepId: string;
  kind: "execute" | "qa";
  attempt: number;
  at: number;
}

/** What a timer is for: the contracts' vocabulary (TIMER_KINDS), defined once there. */
import type { TimerKind } from "@orch/contracts";
export type { TimerKind };

export interface TimerParams {
  timerId: string;
  dueAt: number;
  kind: TimerKind;
  stepId?: string;
}

export interface CancelTimerParams {
  timerId: string;
}
