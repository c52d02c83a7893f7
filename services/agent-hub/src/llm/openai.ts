import { LlmError, LlmFailure } from "./errors.js";
import {
  brokenStream,
  displayUrl,
  send,
  toolCall,
  withDeadline,
  type ChatApi,
  type ChatMessage,
  type ChatRequest,
  type ChatTurn,
  type HttpOptions,
  type StreamSink,
  type ToolCall,
} from "./chat.js";
import { sseData } from "./streams.js";

/**
 * Any OpenAI-compatible Chat Completions server (vLLM, llama.cpp's server, LM Studio, Ollama's
 * `/v1`): `POST <base>/chat/completions` with `stream: true` and `stream_options.include_usage`,
 * read as Server-Sent Events — `choices[0].delta.content` pieces, `delta.tool_calls` whose
 * `function.arguments` arrive in fragments joined per `index`, a `finish_reason`, a last chunk with
 * `usage` and no choices, then `data: [DONE]`. Tool results go back as `{role: "tool", tool_call_id,
 * content}`. Readiness is `GET <base>/models`.
 */

export const DEFAULT_OPENAI_URL = "http://localhost:8000/v1";

/** `LOCAL_LLM_URL` with `/v1` added when it is missing, without a trailing slash. */
export function openAiBase(url: string | undefined): string {
  const u = new URL(url ?? DEFAULT_OPENAI_URL);
  const path = u.pathname.replace(/\/+$/, "");
  u.pathname = /\/v1$/.test(path) ? path : `${path}/v1`;
  u.search = "";
  u.hash = "";
  return u.toString().replace(/\/+$/, "");
}

interface Chunk {
  model?: string;
  error?: unknown;
  usage?: { prompt_tokens?: number; completion_tokens?: number } | null;
  choices?: Array<{
    delta?: {
      content?: string | null;
      reasoning_content?: string | null;
      reasoning?: string | null;
      tool_calls?: Array<{ index?: number; id?: string; function?: { name?: string; arguments?: string } }>;
    };
    message?: {
      content?: string | null;
      reasoning_content?: string | null;
      tool_calls?: Array<{ id?: string; function?: { name?: string; arguments?: string } }>;
    };
    finish_reason?: string | null;
  }>;
}

function wireMessage(m: ChatMessage): Record<string, unknown> {
  switch (m.role) {
    case "assistant":
      return m.toolCalls && m.toolCalls.length > 0
        ? {
            role: "assistant",
            content: m.content || null,
            tool_calls: m.toolCalls.map((c: ToolCall) => ({ id: c.id, type: "function", function: { name: c.name, arguments: c.raw } })),
          }
        : { role: "assistant", content: m.content };
    case "tool":
      return { role: "tool", tool_call_id: m.callId, content: m.content };
    default:
      return { role: m.role, content: m.content };
  }
}

export class OpenAiChat implements ChatApi {
  readonly provider = "openai" as const;
  readonly baseUrl: string;

  /** `verbatim`: `url` is the base as given (a hosted API's `…/api/v1`), else `/v1` is added when missing. */
  constructor(
    url: string | undefined,
    private readonly http: HttpOptions,
    opts: { verbatim?: boolean } = {},
  ) {
    this.baseUrl = opts.verbatim && url ? url.replace(/\/+$/, "") : openAiBase(url);
  }

  chat(req: ChatRequest, sink: StreamSink, outer: AbortSignal): Promise<ChatTurn> {
    const url = `${this.baseUrl}/chat/completions`;
    return withDeadline(outer, this.http.timeoutMs, `the model request to ${displayUrl(url)}`, async (signal) => {
      const body: Record<string, unknown> = {
        model: req.model,
        messages: req.messages.map(wireMessage),
        stream: true,
        stream_options: { include_usage: true },
      };
      if (req.tools.length > 0)
        body.tools = req.tools.map((t) => ({ type: "function", function: { name: t.name, description: t.description, parameters: t.parameters } }));
      if (req.json) body.response_format = { type: "json_object" };
      const res = await send(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) }, signal, this.http);
      const turn: ChatTurn = { text: "", toolCalls: [], tokensIn: 0, tokensOut: 0, model: req.model };
      const calls = new Map<number, { id: string; name: string; raw: string }>();
      let finished = false;
      let sawDone = false;
      const absorb = (chunk: Chunk) => {
        if (chunk.error) {
          const e = chunk.error as { message?: unknown };
          throw new LlmError(
            `${displayUrl(url)} reported an error mid-stream: ${typeof e.message === "string" ? e.message : JSON.stringify(chunk.error)}`,
            LlmFailure.Stream,
            true,
          );
        }
        if (typeof chunk.model === "string" && chunk.model) turn.model = chunk.model;
        if (chunk.usage) {
          turn.tokensIn = chunk.usage.prompt_tokens ?? turn.tokensIn;
          turn.tokensOut = chunk.usage.completion_tokens ?? turn.tokensOut;
        }
        const choice = chunk.choices?.[0];
        if (!choice) return;
        const d = choice.delta ?? {};
        const m = choice.message;
        const reasoning = d.reasoning_content ?? d.reasoning ?? m?.reasoning_content;
        if (reasoning) sink.delta(reasoning, "reasoning");
        const content = d.content ?? m?.content;
        if (content) {
          turn.text += content;
          sink.delta(content);
        }
        for (const [i, tc] of (d.tool_calls ?? m?.tool_calls ?? []).entries()) {
          const index = "index" in tc && typeof tc.index === "number" ? tc.index : i;
          const entry = calls.get(index) ?? { id: "", name: "", raw: "" };
          if (tc.id) entry.id = tc.id;
          if (tc.function?.name && !entry.name) entry.name = tc.function.name;
          if (tc.function?.arguments) entry.raw += tc.function.arguments;
          calls.set(index, entry);
        }
        if (choice.finish_reason) finished = true;
      };

      const type = res.headers.get("content-type") ?? "";
      if (!type.includes("text/event-stream")) {
        // A server that ignored `stream: true` answers with one chat.completion object.
        const text = await res.text();
        sink.alive();
        let whole: Chunk;
        try {
          whole = JSON.parse(text) as Chunk;
        } catch (err) {
          throw brokenStream(url, `not JSON: ${text.slice(0, 200)}`, err);
        }
        absorb(whole);
        finished = true;
        sawDone = true;
      } else {
        try {
          for await (const data of sseData(res.body!)) {
            sink.alive();
            if (data.trim() === "[DONE]") {
              sawDone = true;
              break;
            }
            let chunk: Chunk;
            try {
              chunk = JSON.parse(data) as Chunk;
            } catch (err) {
              throw brokenStream(url, `a chunk is not JSON: ${data.slice(0, 200)}`, err);
            }
            absorb(chunk);
          }
        } catch (err) {
          if (signal.aborted || err instanceof LlmError) throw err;
          throw brokenStream(url, (err as { cause?: { message?: string } }).cause?.message ?? (err as Error).message, err);
        }
      }
      if (!sawDone && !finished) throw brokenStream(url, "it ended before the answer was complete");
      turn.toolCalls = [...calls.entries()].sort(([a], [b]) => a - b).map(([index, c]) => toolCall(c.id || `call_${index + 1}`, c.name, c.raw));
      return turn;
    });
  }

  ready(outer: AbortSignal): Promise<string> {
    const url = `${this.baseUrl}/models`;
    return withDeadline(outer, Math.min(this.http.timeoutMs, 10_000), `GET ${displayUrl(url)}`, async (signal) => {
      const res = await send(url, { method: "GET" }, signal, this.http);
      const body = (await res.json().catch(() => undefined)) as { data?: Array<{ id?: unknown }> } | undefined;
      if (!body || !Array.isArray(body.data)) throw new LlmError(`${displayUrl(url)} did not answer a model list`, LlmFailure.Protocol, false);
      const ids = body.data.map((m) => m.id).filter((id): id is string => typeof id === "string");
      return `OpenAI-compatible server at ${displayUrl(this.baseUrl)} serves ${ids.length} model${ids.length === 1 ? "" : "s"}${ids.length > 0 ? ` (${ids.slice(0, 5).join(", ")}${ids.length > 5 ? ", …" : ""})` : ""}`;
    });
  }
}
