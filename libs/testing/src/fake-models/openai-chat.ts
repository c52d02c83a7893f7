import type { ServerResponse } from "node:http";
import { chunkBudget, cut, FakeModelServer, modelOf, sendWhole, sseWriter, type ScriptedTurn, type WireFormat } from "../fake-models.js";

/**
 * OpenAI Chat Completions (`POST /v1/chat/completions`, `GET /v1/models`) as served by OpenAI, vLLM,
 * llama.cpp's server and LM Studio.
 *
 * Streamed (`stream: true`): `data: <chat.completion.chunk>` events — a first chunk with the
 * assistant role, `delta.content` pieces (`delta.reasoning_content` before them when the turn has
 * reasoning, as vLLM sends it), then per tool call a chunk opening it (`index`, `id`, `type`,
 * `function.name`, empty `arguments`) followed by `function.arguments` fragments, a chunk with
 * `finish_reason` (`tool_calls` or `stop`), a chunk with `choices: []` and `usage`, then
 * `data: [DONE]`. The usage chunk is sent whether or not `stream_options.include_usage` asked for it
 * (as vLLM with `--enable-force-include-usage` does); clients must accept it either way.
 * Not streamed: one `chat.completion` object with `message.content`, `message.tool_calls`
 * (arguments as a JSON string) and `usage`. Errors: the scripted status with
 * `{error: {message, type, code}}`.
 */

function usageOf(turn: ScriptedTurn): { prompt_tokens: number; completion_tokens: number; total_tokens: number } {
  const input = turn.usage?.input ?? 0;
  const output = turn.usage?.output ?? 0;
  return { prompt_tokens: input, completion_tokens: output, total_tokens: input + output };
}

function errorBody(status: number): unknown {
  const type = status === 429 ? "rate_limit_exceeded" : status === 401 ? "invalid_request_error" : "server_error";
  return { error: { message: `fake openai-chat: scripted ${status}`, type, param: null, code: type } };
}

/** Splits `s` into pieces of `size` characters (at least one piece, possibly empty). */
function split(s: string, size: number): string[] {
  if (s.length === 0) return [""];
  const out: string[] = [];
  for (let i = 0; i < s.length; i += size) out.push(s.slice(i, i + size));
  return out;
}

/** Answers one chat request with `turn`, streamed or not as the request asks. */
async function respond(res: ServerResponse, body: unknown, server: FakeModelServer, turn: ScriptedTurn): Promise<void> {
  if (await server.answeredSpecially({ ...turn, errorBody: turn.errorBody ?? (turn.status ? errorBody(turn.status) : undefined) }, res)) return;
  const id = `chatcmpl-${Date.now().toString(36)}`;
  const created = Math.floor(Date.now() / 1000);
  const m = modelOf(body);
  const calls = (turn.toolCalls ?? []).map((c) => ({ id: c.id ?? server.callId(), name: c.name, arguments: JSON.stringify(c.arguments) }));
  const finish = calls.length > 0 ? "tool_calls" : "stop";
  const streamed = (body as { stream?: unknown } | undefined)?.stream === true;

  if (!streamed) {
    const text = turn.text ?? turn.chunks?.join("") ?? "";
    const payload = JSON.stringify({
      id,
      object: "chat.completion",
      created,
      model: m,
      system_fingerprint: null,
      choices: [
        {
          index: 0,
          message: {
            role: "assistant",
            content: text === "" && calls.length > 0 ? null : text,
            ...(turn.reasoning ? { reasoning_content: turn.reasoning } : {}),
            ...(calls.length > 0 ? { tool_calls: calls.map((c) => ({ id: c.id, type: "function", function: { name: c.name, arguments: c.arguments } })) } : {}),
          },
          logprobs: null,
          finish_reason: finish,
        },
      ],
      usage: usageOf(turn),
    });
    return sendWhole(res, turn, payload);
  }

  const sse = sseWriter(res);
  const budget = chunkBudget(res, turn);
  /** Sends one chunk; false once the scripted break has happened. */
  const chunk = (choices: unknown[], extra: Record<string, unknown> = {}): boolean => {
    if (res.destroyed) return false;
    sse.send({ id, object: "chat.completion.chunk", created, model: m, system_fingerprint: null, choices, ...extra });
    return budget.sent();
  };
  const delta = (d: Record<string, unknown>, finishReason: string | null = null) =>
    chunk([{ index: 0, delta: d, logprobs: null, finish_reason: finishReason }]);

  if (budget.spent()) return cut(res);
  if (!delta({ role: "assistant", content: "" })) return;
  if (turn.reasoning) {
    for (const piece of split(turn.reasoning, server.chunkSize)) if (!delta({ reasoning_content: piece })) return;
  }
  for (const piece of server.pieces(turn)) if (!delta({ content: piece })) return;
  for (const [index, c] of calls.entries()) {
    if (!delta({ tool_calls: [{ index, id: c.id, type: "function", function: { name: c.name, arguments: "" } }] })) return;
    for (const piece of split(c.arguments, server.chunkSize)) if (!delta({ tool_calls: [{ index, function: { arguments: piece } }] })) return;
  }
  if (!delta({}, finish)) return;
  if (!chunk([], { usage: usageOf(turn) })) return;
  sse.send("[DONE]");
  sse.end();
}

function models({ res }: { res: ServerResponse }): void {
  res
    .writeHead(200, { "content-type": "application/json" })
    .end(JSON.stringify({ object: "list", data: [{ id: "fake-model", object: "model", created: 1_700_000_000, owned_by: "fake" }] }));
}

/**
 * Side requests: the model listing (a probe), and — unless `toolless` is off — chat requests that
 * carry no tools (a CLI's title generation and similar calls beside the agent's turns).
 */
function sideRequests(toolless: boolean): (path: string, body: unknown) => boolean {
  return (path, body) => {
    if (path === "/v1/models") return true;
    if (!toolless || path !== "/v1/chat/completions") return false;
    const tools = (body as { tools?: unknown } | undefined)?.tools;
    return !Array.isArray(tools) || tools.length === 0;
  };
}

export const openAiChatFormat: WireFormat = {
  name: "openai-chat",
  routes: {
    "POST /v1/chat/completions": ({ res, body, server }) => {
      const side = server.format.isSideRequest?.("/v1/chat/completions", body) ?? false;
      return respond(res, body, server, side ? { text: server.sideText } : server.nextTurn());
    },
    "GET /v1/models": models,
  },
  isSideRequest: sideRequests(true),
};

export interface FakeOpenAiChatOptions {
  /**
   * Whether chat requests without `tools` are side requests answered with `sideText` (true, for
   * coding-agent CLIs that generate titles on the side), or model turns like any other (false, for
   * clients that legitimately call without tools, such as the local LLM executor with no allowlist).
   */
  sideRequests?: boolean;
}

/** A fake OpenAI-compatible chat server (start it, script it, point the client at `${url}/v1`). */
export function fakeOpenAiChat(opts: FakeOpenAiChatOptions = {}): FakeModelServer {
  return new FakeModelServer(opts.sideRequests === false ? { ...openAiChatFormat, isSideRequest: sideRequests(false) } : openAiChatFormat);
}
