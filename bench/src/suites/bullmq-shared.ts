import type { DefaultJobOptions } from "bullmq";

/** Names shared by the BullMQ references' driver and worker process. */
export const BQ = {
  /** Reference B: one queue, each job enqueues the next step of its workflow. */
  chain: "bench-chain",
  /** Reference C: the coordinator's queue (workflow starts and step results)… */
  coord: "bench-coord",
  /** …and the step workers' queue. */
  steps: "bench-steps",
  /** Redis pub/sub channel a finished workflow's id is published on. */
  done: "bench:done",
  /** Run state hash of reference C, one per workflow. */
  runKey: (wf: string) => `bench:run:${wf}`,
} as const;

export type BullmqMode = "chained" | "coordinator";

/**
 * Completed and failed jobs are removed at once: Redis stays small over a long run, as the
 * work-queue stream does for the raw chain, and BullMQ is measured in its fastest configuration.
 */
export const JOB_OPTIONS: DefaultJobOptions = { removeOnComplete: true, removeOnFail: true };

export interface ChainJob {
  wf: string;
  step: number;
  steps: number;
  results: { i: number; at: number }[];
}

export type CoordJob = { wf: string; steps: number; kind: "start" } | { wf: string; steps: number; kind: "step.done"; i: number };

export interface StepJob {
  wf: string;
  steps: number;
  i: number;
}
