import { SessionAbortedError } from "../executors/types.js";
import { LlmError, LlmFailure } from "./errors.js";

/**
 * One conversation with a model server, in terms both wire APIs share: messages, function tools,
 * and a turn streamed back (text pieces as they arrive, then tool calls and token counts).
 */

export interface ToolCall {
  /** The server's id (OpenAI), or one made up for servers that send none (older Ollama). */
  id: string;
  name: string;
  /** The arguments as the model wrote them (a JSON text). */
  raw: string;
  /** `raw` parsed, when it is a JSON object. */
  args: Record<string, unknown> | undefined;
}

export type ChatMessage =
  | { role: "system" | "user"; content: string }
  | { role: "assistant"; content: string; toolCalls?: ToolCall[] }
  | { role: "tool"; callId: string; name: string; content: string };

/** A function tool offered to the model (JSON Schema parameters). */
export interface ToolSpec {
  name: string;
  description: string;
  parameters: Record<string, unknown>;
}

export interface ChatRequest {
  model: string;
  messages: readonly ChatMessage[];
  tools: readonly ToolSpec[];
  /** Constrain the answer to a JSON object (Ollama `format: "json"`, OpenAI `response_format`). */
  json: boolean;
}

export interface ChatTurn {
  text: string;
  toolCalls: ToolCall[];
  tokensIn: number;
  tokensOut: number;
  /** The model the server says answered. */
  model: string;
}

/** Where a streamed turn goes while it arrives. */
export interface StreamSink {
  delta(text: string, channel?: "reasoning"): void;
  /** Any byte arrived (proof of life for the session). */
  alive(): void;
}

export interface ChatApi {
  readonly provider: "ollama" | "openai";
  /** The server's base URL (what the policy judges; without credentials when shown). */
  readonly baseUrl: string;
  chat(req: ChatRequest, sink: StreamSink, signal: AbortSignal): Promise<ChatTurn>;
  /** Whether the server answers its model listing; a line saying what it serves. */
  ready(signal: AbortSignal): Promise<string>;
}

export interface HttpOptions {
  timeoutMs: number;
  apiKey?: string;
}

/** `url` without user info, query or fragment: what logs and details may show. */
export function displayUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname.replace(/\/$/, "")}`;
  } catch {
    return "(invalid URL)";
  }
}

/** Parses `raw` tool arguments; an empty text means no arguments. */
export function toolCall(id: string, name: string, raw: string): ToolCall {
  let args: Record<string, unknown> | undefined;
  try {
    const v: unknown = JSON.parse(raw.trim() === "" ? "{}" : raw);
    if (v && typeof v === "object" && !Array.isArray(v)) args = v as Record<string, unknown>;
  } catch {
    args = undefined;
  }
  return { id, name, raw, args };
}

function causeText(err: unknown): string {
  const e = err as { message?: string; cause?: { code?: string; message?: string } };
  return e.cause?.code ?? e.cause?.message ?? e.message ?? String(err);
}

/**
 * Runs one model request under `LOCAL_LLM_TIMEOUT_MS` (from sending to the last byte) and the
 * session's signal: the session's abort becomes SessionAbortedError, the deadline a transient
 * LlmError, and anything else that escaped the wire code a transient stream failure.
 */
export async function withDeadline<T>(outer: AbortSignal, timeoutMs: number, what: string, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  if (outer.aborted) throw new SessionAbortedError("the session was aborted");
  const ctl = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    ctl.abort(new Error("timeout"));
  }, timeoutMs);
  const onAbort = () => ctl.abort(outer.reason);
  outer.addEventListener("abort", onAbort, { once: true });
  try {
    return await fn(ctl.signal);
  } catch (err) {
    if (outer.aborted) throw new SessionAbortedError("the session was aborted", { cause: err });
    if (timedOut) throw new LlmError(`${what}: no complete answer within ${timeoutMs} ms (LOCAL_LLM_TIMEOUT_MS)`, LlmFailure.Timeout, true, { cause: err });
    if (err instanceof LlmError) throw err;
    throw new LlmError(`${what}: ${causeText(err)}`, LlmFailure.Stream, true, { cause: err });
  } finally {
    clearTimeout(timer);
    outer.removeEventListener("abort", onAbort);
  }
}

/** Sends a request; a failure to connect is a transient LlmError, an error status is read into one. */
export async function send(url: string, init: RequestInit, signal: AbortSignal, opts: HttpOptions): Promise<Response> {
  const headers: Record<string, string> = {
    accept: "application/json, text/event-stream, application/x-ndjson",
    ...(init.headers as Record<string, string> | undefined),
  };
  if (opts.apiKey) headers.authorization = `Bearer ${opts.apiKey}`;
  let res: Response;
  try {
    res = await fetch(url, { ...init, headers, signal });
  } catch (err) {
    if (signal.aborted) throw err;
    throw new LlmError(`cannot reach ${displayUrl(url)}: ${causeText(err)}`, LlmFailure.Connect, true, { cause: err });
  }
  if (!res.ok) {
    const text = await res.text().catch(() => "");
    throw new LlmError(
      `${displayUrl(url)} answered ${res.status}${errorMessage(text) ? `: ${errorMessage(text)}` : ""}`,
      LlmFailure.Status,
      res.status >= 500 || res.status === 429 || res.status === 408,
      { status: res.status },
    );
  }
  if (!res.body) throw new LlmError(`${displayUrl(url)} answered without a body`, LlmFailure.Protocol, true);
  return res;
}

/** The message in an error body (`{error: {message}}`, `{error: "…"}`, `{message}`), else its start. */
export function errorMessage(text: string): string {
  try {
    const v = JSON.parse(text) as { error?: unknown; message?: unknown };
    if (typeof v.error === "string") return v.error;
    if (v.error && typeof v.error === "object" && typeof (v.error as { message?: unknown }).message === "string")
      return (v.error as { message: string }).message;
    if (typeof v.message === "string") return v.message;
  } catch {
    /* not JSON: show its start */
  }
  return text.trim().slice(0, 500);
}

/** A broken or garbled stream: transient, the next attempt may well get a whole one. */
export function brokenStream(url: string, detail: string, cause?: unknown): LlmError {
  return new LlmError(`the stream from ${displayUrl(url)} broke: ${detail}`, LlmFailure.Stream, true, { cause });
}
