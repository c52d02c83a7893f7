import type { RunEvent, RunView, SessionEvent, SessionRecord, StepView } from "@orch/contracts";
import type { ChatMessage } from "../llm/chat.js";
import type { Redact } from "./redact.js";

/**
 * The supervisor's prompt (pure: no I/O). A system message says what the supervisor is and is not
 * (it reads; a person acts); one user message gives the run as the hub read it, in sections with
 * budgets of their own, then the question:
 *
 *   run       status, definition, error, usage, gate, facts, input           RUN_BUDGET
 *   steps     one line each; failed and focused steps with their error       STEPS_BUDGET
 *   events    failures (and the focused step's) first, then the latest ones  EVENTS_BUDGET
 *   sessions  the latest sessions' transcripts, their tails                  SESSIONS_BUDGET
 *
 * Everything is redacted before it is cut (a secret is never half-kept) and the whole again after;
 * the user message never exceeds PROMPT_MAX_CHARS.
 */

export const RUN_BUDGET = 6_000;
export const STEPS_BUDGET = 10_000;
export const EVENTS_BUDGET = 14_000;
export const SESSIONS_BUDGET = 16_000;
/** The user message's ceiling: the sections, the question (≤ 4,000) and the headings. */
export const PROMPT_MAX_CHARS = 52_000;
/** One event or transcript line. */
const LINE_MAX = 600;
/** A failed or focused step's error and output. */
const STEP_DETAIL_MAX = 2_000;
/** Sessions whose transcripts are shown. */
export const MAX_SESSIONS = 3;

/** A session as the prompt shows it: its record and its events (the latest ones; the hub keeps a bounded tail). */
export interface SessionContext {
  record: SessionRecord;
  events: SessionEvent[];
  /** Events of the session left out before `events` (the hub read a tail). */
  omitted?: number;
}

export interface SupervisorContext {
  run: RunView;
  /** The run's events, oldest first (a bounded tail is fine; failures should be in it). */
  events: RunEvent[];
  /** Events left out before `events`. */
  omittedEvents?: number;
  sessions: SessionContext[];
  question: string;
  stepId?: string;
  /** The time the answer is asked at (epoch ms), to say how long ago things happened. */
  now: number;
}

export const SYSTEM_PROMPT = [
  "You are the supervisor of Orchestrator, a system that runs AI coding-agent workflows as runs made of steps.",
  "A person asks you about one run. You are given what the system recorded about it: the run, its steps, its events and the tail of its agents' session transcripts.",
  "",
  "- Answer the question from that record. Be concise and concrete: name steps, errors and events by their ids and types.",
  "- To summarise progress: where the run is, what finished, what runs or waits, and for whom.",
  "- To explain a failure: quote the error, say which step and attempt failed and what led to it, and whether it was retried.",
  "- To suggest the next action: propose what a person can do (retry or skip a step, approve or reject an output with feedback, extend a budget, cancel the run, fix the configuration or the repository) and why.",
  "- You cannot change anything: never claim that you did, and never invent facts the record does not show; say what is missing instead.",
  "- Values shown as [REDACTED] are secrets that were removed; do not guess them.",
].join("\n");

const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());

export function clip(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, Math.max(0, max - 1))}…`;
}

function json(v: unknown, max: number): string {
  let s: string;
  try {
    s = JSON.stringify(v) ?? "";
  } catch {
    s = String(v);
  }
  return clip(s, max);
}

/** Lines that fit `budget` characters, from the end (`tail`) or the start, saying how many were left out. */
export function fit(lines: readonly string[], budget: number, keep: "head" | "tail" = "head"): string[] {
  const out: string[] = [];
  let used = 0;
  const ordered = keep === "tail" ? [...lines].reverse() : lines;
  for (const line of ordered) {
    if (used + line.length + 1 > budget) break;
    out.push(line);
    used += line.length + 1;
  }
  const left = lines.length - out.length;
  if (keep === "tail") out.reverse();
  if (left > 0) {
    const note = `(${left} ${keep === "tail" ? "earlier" : "further"} line${left === 1 ? "" : "s"} left out)`;
    if (keep === "tail") out.unshift(note);
    else out.push(note);
  }
  return out;
}

const FAILURE = /fail|error|retry|refused|timed_out|cancel|dead_letter|blocked|budget/;
const isFailure = (e: RunEvent) => FAILURE.test(e.type) || (e.type === "run.finished" && e.data?.status !== "completed");

function runSection(run: RunView): string[] {
  const lines = [
    `id: ${run.runId} (project ${run.projectId})`,
    `definition: ${run.definition.id}@${run.definition.version} (view ${run.view}, mode ${run.mode})`,
    ...(run.title ? [`title: ${clip(run.title, 300)}`] : []),
    `status: ${run.status}${run.stage ? `, stage ${run.stage}` : ""}${run.gate ? `, waiting at budget gate ${run.gate}` : ""}`,
    `created ${iso(run.createdAt)}, updated ${iso(run.updatedAt)}${run.startedAt ? `, started ${iso(run.startedAt)}` : ""}${run.finishedAt ? `, finished ${iso(run.finishedAt)}` : ""}`,
    `steps completed: ${run.stepsRun} of ${run.steps.length}`,
    ...(run.error ? [`error: ${clip(run.error, STEP_DETAIL_MAX)}`] : []),
    `usage: ${run.usage.tokensIn} tokens in, ${run.usage.tokensOut} out, ${run.usage.calls} calls, $${run.usage.costUsd.toFixed(4)}, ${Math.round(run.usage.wallMs / 1000)} s`,
    ...(Object.keys(run.labels).length > 0 ? [`labels: ${json(run.labels, 500)}`] : []),
    ...(run.pullRequest ? [`pull request: ${json(run.pullRequest, 800)}`] : []),
    ...(run.mergeQueue ? [`merge queue: ${json(run.mergeQueue, 500)}`] : []),
    ...(Object.keys(run.facts).length > 0 ? [`facts: ${json(run.facts, 1_500)}`] : []),
    ...(run.result !== undefined ? [`result: ${json(run.result, 800)}`] : []),
    `input: ${json(run.input, 1_500)}`,
  ];
  return fit(lines, RUN_BUDGET);
}

function stepLine(s: StepView, detailed: boolean): string {
  const head = `- ${s.id} [${s.status}] role ${s.role}, type ${s.type}${s.title ? `, "${clip(s.title, 120)}"` : ""}; attempt ${s.attempt}/${s.maxAttempts}${s.retries ? `, ${s.retries} manual retries` : ""}${s.reworks ? `, ${s.reworks} reworks` : ""}${s.inflight ? ", in flight" : ""}`;
  if (!detailed) return s.error ? `${head}; error ${s.errorCode ?? ""}: ${clip(s.error, 200)}` : head;
  const more = [
    s.error ? `  error${s.errorCode ? ` ${s.errorCode}` : ""}: ${clip(s.error, STEP_DETAIL_MAX)}` : undefined,
    s.notes?.length ? `  notes: ${json(s.notes, 800)}` : undefined,
    s.output !== undefined ? `  output: ${json(s.output, STEP_DETAIL_MAX)}` : undefined,
    s.inputs ? `  inputs: ${json(s.inputs, 600)}` : undefined,
    s.startedAt ? `  started ${iso(s.startedAt)}${s.finishedAt ? `, finished ${iso(s.finishedAt)}` : ""}` : undefined,
  ].filter((x): x is string => x !== undefined);
  return [head, ...more].join("\n");
}

function stepsSection(run: RunView, stepId: string | undefined): string[] {
  const steps = run.planning ? [run.planning, ...run.steps] : run.steps;
  // Detailed ones first within the budget, then shown in their order.
  const detailed = (s: StepView) => s.id === stepId || s.status === "failed" || s.status === "blocked" || s.errorCode !== undefined;
  const lines = steps.map((s) => stepLine(s, detailed(s)));
  if (lines.join("\n").length <= STEPS_BUDGET) return lines;
  const short = steps.map((s) => (s.id === stepId || s.status === "failed" ? stepLine(s, true) : stepLine(s, false)));
  return fit(short, STEPS_BUDGET);
}

function eventLine(e: RunEvent, now: number): string {
  const ago = Math.max(0, Math.round((now - e.at) / 1000));
  return clip(`#${e.seq} ${iso(e.at)} (${ago} s ago) ${e.type}${e.data && Object.keys(e.data).length > 0 ? ` ${json(e.data, LINE_MAX)}` : ""}`, LINE_MAX);
}

/** Failures and the focused step's events are kept first; the rest of the budget goes to the latest events. */
export function eventsSection(events: readonly RunEvent[], stepId: string | undefined, now: number, omitted = 0): string[] {
  const important = (e: RunEvent) => isFailure(e) || (stepId !== undefined && e.data?.stepId === stepId);
  const lines = events.map((e) => ({ e, line: eventLine(e, now) }));
  const keep = new Set<number>();
  let used = 0;
  const take = (i: number) => {
    const len = lines[i]!.line.length + 1;
    if (keep.has(i) || used + len > EVENTS_BUDGET - 100) return false;
    keep.add(i);
    used += len;
    return true;
  };
  // Up to half of the budget for what matters most, latest first.
  for (let i = lines.length - 1; i >= 0 && used < EVENTS_BUDGET / 2; i--) if (important(lines[i]!.e)) take(i);
  for (let i = lines.length - 1; i >= 0; i--) {
    if (keep.has(i)) continue;
    if (!take(i)) break;
  }
  const out: string[] = [];
  const left = omitted + lines.length - keep.size;
  if (left > 0) out.push(`(${left} other event${left === 1 ? "" : "s"} left out)`);
  lines.forEach((l, i) => keep.has(i) && out.push(l.line));
  return out;
}

/** A session's events as transcript lines: messages, tool calls and results, logs, status changes, commits. */
export function transcriptLines(events: readonly SessionEvent[]): string[] {
  const out: string[] = [];
  let pending = "";
  const flush = () => {
    if (pending.trim()) out.push(`agent (streaming, unfinished): ${clip(pending.trim(), 2_000)}`);
    pending = "";
  };
  for (const e of events) {
    const d = e.data;
    switch (e.type) {
      case "agent.delta":
        if (d.channel !== "reasoning" && typeof d.text === "string") pending += d.text;
        break;
      case "agent.message":
        pending = "";
        out.push(`${typeof d.role === "string" ? d.role : "agent"}: ${clip(String(d.text ?? ""), 2_000)}`);
        break;
      case "agent.tool_call":
        flush();
        out.push(`tool call ${String(d.name)} ${json(d.args, 400)}`);
        break;
      case "agent.tool_result":
        out.push(`tool result ${String(d.name)} ${d.ok === false ? "FAILED" : "ok"}: ${json(d.error ?? d.output ?? "", 800)}`);
        break;
      case "agent.log":
        flush();
        out.push(`log ${String(d.level ?? "info")}: ${clip(String(d.msg ?? ""), LINE_MAX)}`);
        break;
      case "agent.file_edit":
        out.push(`file ${String(d.change)} ${String(d.path)}`);
        break;
      case "agent.commit":
        out.push(`commit ${String(d.sha ?? "").slice(0, 12)} on ${String(d.branch ?? "")}: ${clip(String(d.message ?? ""), 200)}`);
        break;
      case "agent.usage":
      case "agent.raw":
        break;
      default:
        if (e.type.startsWith("session.")) {
          flush();
          out.push(`session ${e.type.slice("session.".length)}${d.reason ? `: ${clip(String(d.reason), 400)}` : ""}${d.error ? ` ${json(d.error, 800)}` : ""}`);
        }
    }
  }
  flush();
  return out.map((l) => clip(l, 2_000));
}

function sessionsSection(sessions: readonly SessionContext[]): string[] {
  if (sessions.length === 0) return ["(no agent sessions)"];
  const each = Math.floor(SESSIONS_BUDGET / Math.min(sessions.length, MAX_SESSIONS));
  const out: string[] = [];
  for (const s of sessions.slice(0, MAX_SESSIONS)) {
    const r = s.record;
    const head = [
      `### session ${r.sessionId}: step ${r.stepId}, attempt ${r.attempt} (${r.kind}), executor ${r.executor}${r.model ? `, model ${r.model}` : ""}, status ${r.status}`,
      ...(r.error ? [`error ${r.error.code}${r.error.retryable ? " (retryable)" : ""}: ${clip(r.error.message, STEP_DETAIL_MAX)}`] : []),
      ...(r.result?.summary ? [`result: ${clip(r.result.summary, 800)}`] : []),
    ];
    const used = head.join("\n").length + 1;
    const tail = fit(transcriptLines(s.events), Math.max(500, each - used), "tail");
    if ((s.omitted ?? 0) > 0 && !tail[0]?.startsWith("(")) tail.unshift(`(${s.omitted} earlier events left out)`);
    out.push(...head, ...tail);
  }
  if (sessions.length > MAX_SESSIONS) out.push(`(${sessions.length - MAX_SESSIONS} older sessions left out)`);
  return out;
}

/**
 * The messages of one ask. `redact` is applied to every input before it is cut and to the text
 * after; the user message is at most PROMPT_MAX_CHARS.
 */
export function buildSupervisorPrompt(input: SupervisorContext, redact: Redact): ChatMessage[] {
  const c = redact(input);
  const focus = c.stepId ? (c.run.steps.find((s) => s.id === c.stepId) ?? (c.run.planning?.id === c.stepId ? c.run.planning : undefined)) : undefined;
  const parts = [
    "## Run",
    ...runSection(c.run),
    "",
    "## Steps",
    ...stepsSection(c.run, c.stepId),
    "",
    `## Events (oldest first, now is ${iso(c.now)})`,
    ...eventsSection(c.events, c.stepId, c.now, c.omittedEvents),
    "",
    "## Agent sessions (latest first, transcript tails)",
    ...sessionsSection(c.sessions),
    "",
    ...(focus ? [`## Focus`, `The question is about step ${focus.id} in particular.`, ""] : []),
  ];
  const question = `## Question\n${c.question}`;
  const user = `${clip(redact(parts.join("\n")), PROMPT_MAX_CHARS - question.length - 1)}\n${question}`;
  return [
    { role: "system", content: SYSTEM_PROMPT },
    { role: "user", content: user },
  ];
}
