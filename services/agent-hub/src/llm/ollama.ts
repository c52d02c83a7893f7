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
} from "./chat.js";
import { lines } from "./streams.js";

/**
 * Ollama's native API: `POST /api/chat` with `stream: true`, read as newline-delimited JSON —
 * `{message: {role, content, thinking?, tool_calls?}, done: false}` pieces, then `{done: true,
 * prompt_eval_count, eval_count}`. Tool calls carry their arguments as objects; results go back as
 * `{role: "tool", content, tool_name}`. Readiness is `GET /api/tags`.
 */

export const DEFAULT_OLLAMA_URL = "http://localhost:11434";

interface OllamaChunk {
  model?: string;
  error?: unknown;
  done?: boolean;
  prompt_eval_count?: number;
  eval_count?: number;
  message?: {
    content?: string;
    thinking?: string;
    tool_calls?: Array<{ id?: string; function?: { name?: string; arguments?: unknown } }>;
  };
}

function wireMessage(m: ChatMessage): Record<string, unknown> {
  switch (m.role) {
    case "assistant":
      return m.toolCalls && m.toolCalls.length > 0
        ? { role: "assistant", content: m.content, tool_calls: m.toolCalls.map((c) => ({ function: { name: c.name, arguments: c.args ?? {} } })) }
        : { role: "assistant", content: m.content };
    case "tool":
      return { role: "tool", content: m.content, tool_name: m.name };
    default:
      return { role: m.role, content: m.content };
  }
}

export class OllamaChat implements ChatApi {
  readonly provider = "ollama" as const;
  readonly baseUrl: string;

  constructor(
    url: string | undefined,
    private readonly http: HttpOptions,
  ) {
    const u = new URL(url ?? DEFAULT_OLLAMA_URL);
    u.search = "";
    u.hash = "";
    this.baseUrl = u.toString().replace(/\/+$/, "");
  }

  chat(req: ChatRequest, sink: StreamSink, outer: AbortSignal): Promise<ChatTurn> {
    const url = `${this.baseUrl}/api/chat`;
    return withDeadline(outer, this.http.timeoutMs, `the model request to ${displayUrl(url)}`, async (signal) => {
      const body: Record<string, unknown> = { model: req.model, messages: req.messages.map(wireMessage), stream: true };
      if (req.tools.length > 0)
        body.tools = req.tools.map((t) => ({ type: "function", function: { name: t.name, description: t.description, parameters: t.parameters } }));
      if (req.json) body.format = "json";
      const res = await send(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) }, signal, this.http);
      const turn: ChatTurn = { text: "", toolCalls: [], tokensIn: 0, tokensOut: 0, model: req.model };
      let done = false;
      try {
        for await (const line of lines(res.body!)) {
          sink.alive();
          if (line.trim() === "") continue;
          let chunk: OllamaChunk;
          try {
            chunk = JSON.parse(line) as OllamaChunk;
          } catch (err) {
            throw brokenStream(url, `a line is not JSON: ${line.slice(0, 200)}`, err);
          }
          if (chunk.error !== undefined) {
            throw new LlmError(
              `${displayUrl(url)} reported an error mid-stream: ${typeof chunk.error === "string" ? chunk.error : JSON.stringify(chunk.error)}`,
              LlmFailure.Stream,
              true,
            );
          }
          if (typeof chunk.model === "string" && chunk.model) turn.model = chunk.model;
          const m = chunk.message;
          if (m?.thinking) sink.delta(m.thinking, "reasoning");
          if (m?.content) {
            turn.text += m.content;
            sink.delta(m.content);
          }
          for (const tc of m?.tool_calls ?? []) {
            const args = tc.function?.arguments;
            const raw = typeof args === "string" ? args : JSON.stringify(args ?? {});
            turn.toolCalls.push(toolCall(tc.id || `call_${turn.toolCalls.length + 1}`, tc.function?.name ?? "", raw));
          }
          if (chunk.done) {
            turn.tokensIn = chunk.prompt_eval_count ?? 0;
            turn.tokensOut = chunk.eval_count ?? 0;
            done = true;
            break;
          }
        }
      } catch (err) {
        if (signal.aborted || err instanceof LlmError) throw err;
        throw brokenStream(url, (err as { cause?: { message?: string } }).cause?.message ?? (err as Error).message, err);
      }
      if (!done) throw brokenStream(url, "it ended before `done: true`");
      return turn;
    });
  }

  ready(outer: AbortSignal): Promise<string> {
    const url = `${this.baseUrl}/api/tags`;
    return withDeadline(outer, Math.min(this.http.timeoutMs, 10_000), `GET ${displayUrl(url)}`, async (signal) => {
      const res = await send(url, { method: "GET" }, signal, this.http);
      const body = (await res.json().catch(() => undefined)) as { models?: Array<{ name?: unknown }> } | undefined;
      if (!body || !Array.isArray(body.models)) throw new LlmError(`${displayUrl(url)} did not answer a model list`, LlmFailure.Protocol, false);
      const names = body.models.map((m) => m.name).filter((n): n is string => typeof n === "string");
      return `Ollama at ${displayUrl(this.baseUrl)} has ${names.length} model${names.length === 1 ? "" : "s"}${names.length > 0 ? ` (${names.slice(0, 5).join(", ")}${names.length > 5 ? ", …" : ""})` : ""}`;
    });
  }
}
