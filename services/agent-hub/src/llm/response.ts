import { AgentResponseSchema, StepErrorCode, type AgentResponse } from "@orch/contracts";
import type { ExecutorResult } from "../executors/types.js";
import { STRUCTURED_INSTRUCTIONS } from "../prompts.js";

/**
 * The model's final answer → the step's result. `structured-json` answers are one
 * AgentResponseSchema object (found in the text even when a model wraps it in a code fence or a
 * sentence), validated with zod; `text` answers are taken as they are.
 */

export type ParsedResponse = { ok: true; value: AgentResponse } | { ok: false; error: string };

/** The outermost `{…}` of `text`, code fences and surrounding prose ignored. */
function jsonPart(text: string): string {
  const t = text.trim();
  const fenced = /^```(?:json)?\s*\n?([\s\S]*?)\n?```$/i.exec(t);
  const body = fenced ? fenced[1]!.trim() : t;
  if (body.startsWith("{")) return body;
  const start = body.indexOf("{");
  const end = body.lastIndexOf("}");
  return start >= 0 && end > start ? body.slice(start, end + 1) : body;
}

export function parseAgentResponse(text: string): ParsedResponse {
  let value: unknown;
  try {
    value = JSON.parse(jsonPart(text));
  } catch (err) {
    return { ok: false, error: `not a JSON object (${(err as Error).message})` };
  }
  const r = AgentResponseSchema.safeParse(value);
  if (!r.success) return { ok: false, error: r.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ") };
  return { ok: true, value: r.data };
}

/** The one repair request: the validation error and what to answer instead. */
export function repairPrompt(error: string): string {
  return [
    `Your answer is not a valid response object: ${error}.`,
    "Answer again with the corrected JSON object only, nothing else.",
    STRUCTURED_INSTRUCTIONS,
  ].join("\n");
}

/** A result's notes and summary fit the session record's limits. */
const NOTE_MAX = 10_000;

function cap(s: string, max: number): string {
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/** The first non-empty line of `text`, capped: a summary of a free-form answer. */
export function firstLine(text: string, max = 500): string {
  return cap(
    text
      .trim()
      .split("\n")
      .find((l) => l.trim() !== "")
      ?.trim() ?? "",
    max,
  );
}

type ResultPart = Pick<ExecutorResult, "ok" | "summary" | "notes" | "output" | "error" | "commitMessage">;

/** A structured answer as the step's result: `completed` is ok; `failed` and `needs_input` fail it with their reason. */
export function fromAgentResponse(r: AgentResponse): ResultPart {
  const output: Record<string, unknown> = { ...(r.output ?? {}) };
  if (r.files.length > 0 && output.files === undefined) output.files = r.files;
  const summary = cap(r.summary, NOTE_MAX);
  const base = { summary, notes: r.notes.map((n) => cap(n, NOTE_MAX)), output, commitMessage: firstLine(r.summary) };
  if (r.status === "completed") return { ok: true, ...base };
  const why = r.reason ?? r.summary;
  return {
    ok: false,
    ...base,
    error: {
      code: StepErrorCode.AgentFailed,
      message: r.status === "needs_input" ? `the agent needs input: ${why}` : `the agent could not do it: ${why}`,
      retryable: false,
    },
  };
}

/** A free-form answer as the step's result. */
export function fromText(text: string): ResultPart {
  const summary = firstLine(text) || "(the model answered with no text)";
  return { ok: true, summary, notes: text.trim() ? [cap(text.trim(), NOTE_MAX)] : [], output: { text }, commitMessage: summary };
}
