/** Names and message shape shared by the raw JetStream chain's driver and its worker process. */

export const RAW = {
  workStream: "BENCH_RAW_WORK",
  doneStream: "BENCH_RAW_DONE",
  consumer: "worker",
  stepSubject: "bench.raw.step",
  doneSubject: "bench.raw.done",
} as const;

/** The workflow's state, carried from step to step in the message itself (there is no run record). */
export interface RawState {
  wf: string;
  goal: string;
  /** 1-based step this message asks for. */
  step: number;
  steps: number;
  /** One entry per finished step, as a real chain would carry results forward. */
  results: { i: number; at: number }[];
}
