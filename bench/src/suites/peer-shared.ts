/** What the peers' drivers and workers share: names, and the workflow's input and answer. */

export const RESTATE = { service: "BenchFlow", handler: "run" } as const;
export const DBOS_BENCH = { app: "orch-bench", workflow: "benchWorkflow", database: "dbos_bench" } as const;

/** A workflow's input: its id (for the answer) and how many steps to run. */
export interface PeerInput {
  wf: string;
  steps: number;
}

/** A workflow's answer: how many steps ran. */
export interface PeerResult {
  wf: string;
  steps: number;
}
