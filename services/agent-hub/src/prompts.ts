import type { WorkItem } from "@orch/contracts";
import { artifactFor } from "./artifacts.js";

/**
 * The prompt every model-backed executor sends for a step: who the agent is (its role), what the
 * step asks for (the artifact and where it goes), what it has to go on (the run's goal, the step's
 * inputs, a reviewer's feedback on a rework), and how to answer.
 */

export const ROLE_BRIEFS: Readonly<Record<string, string>> = Object.freeze({
  architect: "You are the architect: you turn goals into specifications, plans and task breakdowns that others can implement.",
  implementer: "You are the implementer: you change the code to do what the task asks, with a test that shows it works.",
  reviewer: "You are the reviewer: you check work for correctness, clarity and completeness, and say exactly what must change.",
  tester: "You are the tester: you write and run tests that show whether the work does what was asked.",
  maintainer: "You are the maintainer: you keep the repository healthy (dependencies, docs, release notes, pull requests).",
  qa: "You are QA: you verify a step's output against what it was asked to do, and pass or fail it.",
});

export interface PromptOptions {
  /** The worktree the agent works in (absolute). */
  cwd: string;
  /** Ask for an AgentResponseSchema JSON object as the final answer. */
  structured: boolean;
  /** Names of the tools it may call, if any. */
  tools?: readonly string[];
}

export interface Prompt {
  system: string;
  user: string;
}

const MAX_INPUT_CHARS = 20_000;

function show(v: unknown): string {
  const s = typeof v === "string" ? v : JSON.stringify(v, null, 2);
  return s.length > MAX_INPUT_CHARS ? `${s.slice(0, MAX_INPUT_CHARS)}\n… (${s.length - MAX_INPUT_CHARS} more characters)` : s;
}

export const STRUCTURED_INSTRUCTIONS = [
  "Answer with one JSON object and nothing else (no prose, no code fences):",
  '{"status": "completed" | "failed" | "needs_input", "summary": "<one line>", "notes": ["…"], "files": ["<paths you wrote, relative to the working directory>"], "output": {…}, "reason": "<why, when not completed>"}',
].join("\n");

export function buildPrompt(item: WorkItem, opts: PromptOptions): Prompt {
  const a = artifactFor(item);
  const system = [
    ROLE_BRIEFS[item.role] ?? `You are the ${item.role}.`,
    `You work in a git repository checked out at ${opts.cwd}, on a branch of your own: read and write files only there. Your changes are committed for you when you finish.`,
    opts.tools && opts.tools.length > 0 ? `You may call these tools: ${opts.tools.join(", ")}. Paths are relative to the working directory.` : "",
    opts.structured ? STRUCTURED_INSTRUCTIONS : "When you are done, answer with a short summary of what you did.",
  ]
    .filter(Boolean)
    .join("\n\n");

  const lines: string[] = [];
  lines.push(`# ${item.title ?? item.stepId}`);
  if (item.goal) lines.push(`Goal of the run: ${item.goal}`);
  lines.push(`Task: ${a.instructions}`);
  if (a.kind !== "code" && a.kind !== "tests") lines.push(`Write it to: ${a.path}`);
  if (item.kind === "plan") {
    lines.push('Also put the steps in your answer\'s output, as {"steps": [{"id": "…", "title": "…", "role": "implementer"}]}.');
  }
  if (item.kind === "qa") lines.push('Your answer\'s status is "completed" if the step passes QA and "failed" if it does not.');
  const inputs = Object.entries(item.inputs).filter(([, v]) => v !== undefined && v !== null && v !== "");
  if (inputs.length > 0) {
    lines.push("", "## Inputs");
    for (const [k, v] of inputs) lines.push(`### ${k}`, show(v));
  }
  if (item.payload && Object.keys(item.payload).length > 0) lines.push("", "## Details", show(item.payload));
  if (item.rework > 0 && item.feedback) lines.push("", `## Rework ${item.rework}: what the reviewer asked you to change`, item.feedback);
  else if (item.feedback) lines.push("", "## Why this attempt: what went wrong before (fix it)", item.feedback);
  if (item.iteration > 0) lines.push("", `This is iteration ${item.iteration + 1} of a loop: build on what is already in the repository.`);
  return { system, user: lines.join("\n") };
}
