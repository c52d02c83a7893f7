import type { RunEventJson, SessionEventJson } from "./api.js";

/** Plain-text shapes shared by the commands and the terminal UI. */

/** `1.2s`, `3m04s`, `2h05m`. */
export function duration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "-";
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.round(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/** How long ago an ISO time was, shortly: `5s`, `3m`, `2h`, `4d`. */
export function age(iso: string | undefined, now = Date.now()): string {
  if (!iso) return "-";
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}

/** Columns padded to the widest cell; the last column is not padded. */
export function table(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

export const clip = (s: string, n: number): string => (s.length <= n ? s : `${s.slice(0, Math.max(0, n - 1))}…`);

const oneLine = (v: unknown): string => (typeof v === "string" ? v : (JSON.stringify(v) ?? "")).replace(/\s+/g, " ").trim();

/**
 * What one step event says, for `orch watch`'s one line per step change: the step, its new
 * status, and how long it took when it ended. Undefined for events that are not about a step.
 */
export function stepLine(e: RunEventJson, startedAt: Map<string, number>): { stepId: string; status: string; elapsed?: string; note?: string } | undefined {
  const d = e.data ?? {};
  const stepId = typeof d.stepId === "string" ? d.stepId : undefined;
  if (!stepId || !e.type.startsWith("step.")) return undefined;
  const status = e.type.slice("step.".length);
  const at = Date.parse(e.at);
  if (status === "started") startedAt.set(stepId, at);
  const since = startedAt.get(stepId);
  const ended = ["succeeded", "failed", "cancelled", "skipped", "blocked", "awaiting_approval", "approved", "rejected", "retrying"].includes(status);
  const by = typeof d.actor === "string" && (status === "approved" || status === "rejected") ? `by ${d.actor}` : undefined;
  const why = typeof d.error === "string" ? d.error : typeof d.reason === "string" ? d.reason : undefined;
  const note = by && why ? `${by}: ${why}` : (by ?? why);
  return {
    stepId,
    status,
    ...(ended && since !== undefined ? { elapsed: duration(at - since) } : {}),
    ...(note ? { note: clip(oneLine(note), 120) } : {}),
  };
}

/**
 * A session event as transcript lines (seed 003's session transcript): the agent's messages, tool
 * calls and results, file edits, commits, usage, log lines and lifecycle changes. `agent.delta`
 * pieces are returned as `{delta}` for the caller to join.
 */
export function transcriptLines(e: Pick<SessionEventJson, "type" | "data">): string[] | { delta: string } {
  const d = e.data ?? {};
  const str = (k: string) => (typeof d[k] === "string" ? (d[k] as string) : undefined);
  switch (e.type) {
    case "agent.delta":
      return { delta: str("text") ?? "" };
    case "agent.message":
      return (str("text") ?? "").split("\n").map((l, i) => (i === 0 ? `${str("role") ?? "agent"}: ${l}` : `  ${l}`));
    case "agent.tool_call":
      return [`→ ${str("name") ?? "tool"} ${clip(oneLine(d.args ?? ""), 200)}`];
    case "agent.tool_result":
      return [
        `← ${str("name") ?? "tool"} ${d.ok === false ? `failed: ${clip(oneLine(d.error ?? d.output ?? ""), 200)}` : clip(oneLine(d.output ?? "ok"), 200)}`,
      ];
    case "agent.file_edit":
      return [`✎ ${str("change") ?? "edit"} ${str("path") ?? ""}`];
    case "agent.commit":
      return [`● commit ${(str("sha") ?? "").slice(0, 10)} ${oneLine(str("message") ?? "")}`];
    case "agent.usage":
      return [`usage: ${d.tokensIn ?? 0} tokens in, ${d.tokensOut ?? 0} out${typeof d.costUsd === "number" ? `, $${d.costUsd.toFixed(4)}` : ""}`];
    case "agent.log":
      return [`[${str("level") ?? "info"}] ${oneLine(str("msg") ?? "")}`];
    case "agent.raw":
      return [];
    default:
      if (e.type.startsWith("session.")) {
        const why = str("reason") ?? (d.error && typeof d.error === "object" ? (d.error as { message?: string }).message : str("error"));
        return [`-- session ${e.type.slice("session.".length)}${why ? `: ${oneLine(why)}` : ""} --`];
      }
      return [`${e.type} ${clip(oneLine(d), 200)}`];
  }
}
