import { isAbsolute, relative } from "node:path";
import { SessionEventType, type SessionEventInput } from "@orch/contracts";

/** Building blocks the normalizers share: session events in their documented shapes, and small readers. */

/** Tool output in a session event is capped: events stay small (the CLI keeps the whole of it). */
export const EVENT_OUTPUT_MAX = 16_384;

export function cap(s: string, max: number): string {
  return s.length > max ? `${s.slice(0, max)}… (${s.length - max} more characters)` : s;
}

export const obj = (v: unknown): Record<string, unknown> => (v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {});
export const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);
export const num = (v: unknown): number => (typeof v === "number" && Number.isFinite(v) && v > 0 ? v : 0);

/** `path` relative to the worktree when it is inside it, else as given. */
export function inWorktree(cwd: string, path: string): string {
  if (!isAbsolute(path)) return path;
  const r = relative(cwd, path);
  return r && !r.startsWith("..") && !isAbsolute(r) ? r : path;
}

export type FileChange = "add" | "modify" | "delete";

export const ev = {
  message: (text: string, role = "assistant"): SessionEventInput => ({ type: SessionEventType.Message, data: { role, text } }),
  delta: (text: string, channel?: "reasoning"): SessionEventInput => ({ type: SessionEventType.Delta, data: channel ? { text, channel } : { text } }),
  toolCall: (callId: string, name: string, args: unknown): SessionEventInput => ({ type: SessionEventType.ToolCall, data: { callId, name, args } }),
  toolResult: (callId: string, name: string, ok: boolean, output?: string, error?: string): SessionEventInput => ({
    type: SessionEventType.ToolResult,
    data: {
      callId,
      name,
      ok,
      ...(output !== undefined && output !== "" ? { output: cap(output, EVENT_OUTPUT_MAX) } : {}),
      ...(error !== undefined ? { error: cap(error, EVENT_OUTPUT_MAX) } : {}),
    },
  }),
  fileEdit: (path: string, change: FileChange): SessionEventInput => ({ type: SessionEventType.FileEdit, data: { path, change } }),
  /** One report of the CLI's; the session's usage is the sum of them. */
  usage: (tokensIn: number, tokensOut: number, costUsd?: number, model?: string): SessionEventInput => ({
    type: SessionEventType.Usage,
    data: { tokensIn, tokensOut, ...(costUsd ? { costUsd } : {}), ...(model ? { model } : {}) },
  }),
  log: (level: "info" | "warn" | "error", msg: string): SessionEventInput => ({ type: SessionEventType.Log, data: { level, msg } }),
};

/** Keeps edited files in order, once each. */
export class FileList {
  readonly #seen = new Set<string>();
  readonly list: string[] = [];
  add(path: string): void {
    if (this.#seen.has(path)) return;
    this.#seen.add(path);
    this.list.push(path);
  }
}
