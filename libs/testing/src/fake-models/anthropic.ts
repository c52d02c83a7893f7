import type { ServerResponse } from "node:http";
import { chunkBudget, cut, FakeModelServer, modelOf, sendWhole, sseWriter, type ScriptedTurn, type WireFormat } from "../fake-models.js";

/**
 * The Anthropic Messages API (`POST /v1/messages`; Claude Code adds `?beta=true`, which routing
 * ignores), as Claude Code speaks it with `ANTHROPIC_BASE_URL` pointing here.
 *
 * Streamed (`stream: true`): Server-Sent Events, each `event: <type>` with `data: {type, …}` —
 * `message_start` (the message with `usage.input_tokens`), then per content block
 * `content_block_start`, its deltas and `content_block_stop`, then `message_delta`
 * (`delta.stop_reason` `tool_use` or `end_turn`, `usage.output_tokens`) and `message_stop`.
 * Blocks, in order: `thinking` (`thinking_delta`, `signature_delta`) when the turn has reasoning,
 * `text` (`text_delta` pieces) when it has text, one `tool_use` (`id`, `name`, input streamed as
 * `input_json_delta` pieces) per tool call. Not streamed: the message object. Errors: the scripted
 * status with `{type: "error", error: {type, message}}`. `HEAD /` (Claude Code's reachability
 * probe) answers 200 with no body.
 */

interface Block {
  type: "thinking" | "text" | "tool_use";
  [k: string]: unknown;
}

function errorBody(status: number): unknown {
  const type =
    status === 429
      ? "rate_limit_error"
      : status === 401
        ? "authentication_error"
        : status === 529
          ? "overloaded_error"
          : status < 500
            ? "invalid_request_error"
            : "api_error";
  return { type: "error", error: { type, message: `fake anthropic: scripted ${status}` } };
}

function split(s: string, size: number): string[] {
  if (s.length === 0) return [""];
  const out: string[] = [];
  for (let i = 0; i < s.length; i += size) out.push(s.slice(i, i + size));
  return out;
}

function blocksOf(turn: ScriptedTurn, server: FakeModelServer): Block[] {
  const blocks: Block[] = [];
  if (turn.reasoning) blocks.push({ type: "thinking", thinking: turn.reasoning, signature: "fake-signature" });
  const text = turn.text ?? turn.chunks?.join("");
  if (text !== undefined && text !== "") blocks.push({ type: "text", text });
  for (const c of turn.toolCalls ?? []) blocks.push({ type: "tool_use", id: c.id ?? `toolu_${server.callId()}`, name: c.name, input: c.arguments });
  return blocks;
}

async function respond(res: ServerResponse, body: unknown, server: FakeModelServer, turn: ScriptedTurn): Promise<void> {
  if (await server.answeredSpecially({ ...turn, errorBody: turn.errorBody ?? (turn.status ? errorBody(turn.status) : undefined) }, res)) return;
  const id = `msg_${Date.now().toString(36)}`;
  const blocks = blocksOf(turn, server);
  const stop = blocks.some((b) => b.type === "tool_use") ? "tool_use" : "end_turn";
  const input = turn.usage?.input ?? 0;
  const output = turn.usage?.output ?? 0;
  const usage = { input_tokens: input, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: output };
  const message = { id, type: "message", role: "assistant", model: modelOf(body), content: blocks, stop_reason: stop, stop_sequence: null, usage };
  const streamed = (body as { stream?: unknown } | undefined)?.stream === true;

  if (!streamed) return sendWhole(res, turn, JSON.stringify(message));

  const budget = chunkBudget(res, turn);
  if (budget.spent()) return cut(res);
  const sse = sseWriter(res);
  /** Sends one event; false once the scripted break has happened. */
  const send = (type: string, data: Record<string, unknown>): boolean => {
    if (res.destroyed) return false;
    sse.send({ type, ...data }, type);
    return budget.sent();
  };

  if (!send("message_start", { message: { ...message, content: [], stop_reason: null, usage: { ...usage, output_tokens: 1 } } })) return;
  for (const [index, b] of blocks.entries()) {
    if (b.type === "thinking") {
      if (!send("content_block_start", { index, content_block: { type: "thinking", thinking: "", signature: "" } })) return;
      for (const piece of split(b.thinking as string, server.chunkSize)) {
        if (!send("content_block_delta", { index, delta: { type: "thinking_delta", thinking: piece } })) return;
      }
      if (!send("content_block_delta", { index, delta: { type: "signature_delta", signature: b.signature } })) return;
    } else if (b.type === "text") {
      if (!send("content_block_start", { index, content_block: { type: "text", text: "" } })) return;
      for (const piece of server.pieces(turn)) if (!send("content_block_delta", { index, delta: { type: "text_delta", text: piece } })) return;
    } else {
      if (!send("content_block_start", { index, content_block: { type: "tool_use", id: b.id, name: b.name, input: {} } })) return;
      for (const piece of split(JSON.stringify(b.input), server.chunkSize)) {
        if (!send("content_block_delta", { index, delta: { type: "input_json_delta", partial_json: piece } })) return;
      }
    }
    if (!send("content_block_stop", { index })) return;
  }
  if (!send("message_delta", { delta: { stop_reason: stop, stop_sequence: null }, usage: { output_tokens: output } })) return;
  if (!send("message_stop", {})) return;
  sse.end();
}

/** The reachability probe, and requests without tools (Claude Code's title generation and similar side calls). */
function withoutTools(path: string, body: unknown): boolean {
  if (path === "/") return true;
  if (path !== "/v1/messages") return false;
  const tools = (body as { tools?: unknown } | undefined)?.tools;
  return !Array.isArray(tools) || tools.length === 0;
}

export const anthropicFormat: WireFormat = {
  name: "anthropic",
  routes: {
    "POST /v1/messages": ({ res, body, server }) => {
      const side = server.format.isSideRequest?.("/v1/messages", body) ?? false;
      return respond(res, body, server, side ? { text: server.sideText } : server.nextTurn());
    },
    "HEAD /": ({ res }) => {
      res.writeHead(200).end();
    },
  },
  isSideRequest: withoutTools,
};

export interface FakeAnthropicOptions {
  /** Whether requests without `tools` are side requests answered with `sideText` (default true). */
  sideRequests?: boolean;
}

/** A fake Anthropic Messages server (start it, script it, point `ANTHROPIC_BASE_URL` at `url`). */
export function fakeAnthropic(opts: FakeAnthropicOptions = {}): FakeModelServer {
  if (opts.sideRequests === false) {
    const { isSideRequest: _ignored, ...format } = anthropicFormat;
    return new FakeModelServer(format);
  }
  return new FakeModelServer(anthropicFormat);
}
