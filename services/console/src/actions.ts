import type { Run } from "./types.js";
import { TERMINAL_RUN } from "./vocabulary.js";

/**
 * Which run actions the console offers for a run as it stands: the engine's own preconditions
 * (libs/engine's kernel), read off the published view, so a button is shown only where the action
 * can be taken. The server still decides: a refusal is shown with its reason.
 */

export interface RunAction {
  name: "pause" | "resume" | "cancel" | "retry_latest" | "run_next_step" | "extend_budget" | "abort" | "open_pr";
  label: string;
  kind?: "primary" | "danger";
  confirm?: string;
}

const RUNNING_STEP = new Set(["running", "retry_wait", "qa", "needs_qa", "waiting_approval"]);

export function runActions(run: Run): RunAction[] {
  const out: RunAction[] = [];
  const final = TERMINAL_RUN.has(run.status);
  if (final) return out;
  if (run.gate) {
    out.push({ name: "extend_budget", label: "Extend budget", kind: "primary" });
    out.push({ name: "abort", label: "Abort", kind: "danger", confirm: "Abort this run at its budget gate?" });
  }
  if (run.status === "paused") out.push({ name: "resume", label: "Resume", kind: "primary" });
  else if (run.status !== "pending") out.push({ name: "pause", label: "Pause" });
  const steps = run.steps.filter((s) => s.index >= 0);
  const busy = steps.some((s) => RUNNING_STEP.has(s.status));
  const latest = [...steps].filter((s) => s.startedAt).sort((a, b) => (a.startedAt! < b.startedAt! ? 1 : -1))[0];
  if (latest && (latest.status === "failed" || latest.status === "blocked") && run.status !== "planning") {
    out.push({ name: "retry_latest", label: "Retry latest step" });
  }
  if (!run.gate && !busy && ["running", "planned", "blocked"].includes(run.status) && steps.some((s) => s.status === "pending" || s.status === "failed")) {
    out.push({ name: "run_next_step", label: "Run next step" });
  }
  // open_pr adds a pr.open step and starts it (the kernel's signal): once, unless the last one failed.
  if (run.view === "protocol" && !run.pullRequest && !steps.some((s) => s.type === "pr.open" && s.status !== "failed")) {
    out.push({ name: "open_pr", label: "Open PR" });
  }
  out.push({ name: "cancel", label: "Cancel run", kind: "danger", confirm: "Cancel this run? Its steps stop and it ends cancelled." });
  return out;
}
