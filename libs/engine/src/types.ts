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

/** `tick`: a periodic run's next slot; `command`: a timer whose firing sends the command it carries; `pr_poll`: the next look at an open PR. */
export type TimerKind = "retry" | "step_timeout" | "approval_timeout" | "wall_clock" | "tick" | "command" | "pr_poll";

export interface TimerParams {
  timerId: string;
  dueAt: number;
  kind: TimerKind;
  stepId?: string;
}

export interface CancelTimerParams {
  timerId: string;
}
