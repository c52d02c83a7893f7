import type { ServerResponse } from "node:http";
import { chunkBudget, cut, FakeModelServer, modelOf, sendWhole, sseWriter, type ScriptedTurn, type WireFormat } from "../fake-models.js";

/**
 * The OpenAI Responses API (`POST /v1/responses`), as Codex CLI speaks it (`wire_api = "responses"`).
 *
 * Streamed (`stream: true`): Server-Sent Events, each `event: <type>` with `data: {type, …,
 * sequence_number}` — `response.created`, `response.in_progress`, then per output item
 * `response.output_item.added`, its pieces and `response.output_item.done`, then
 * `response.completed` with `response.usage {input_tokens, input_tokens_details.cached_tokens,
 * output_tokens, output_tokens_details.reasoning_tokens, total_tokens}`. Output items, in order:
 * a `reasoning` item (`summary: [{type: "summary_text", text}]`) when the turn has reasoning, a
 * `message` item (`content: [{type: "output_text", text}]`, its text streamed as
 * `response.output_text.delta` pieces) when it has text, and one `function_call` item
 * (`call_id`, `name`, `arguments` as a JSON string, streamed as
 * `response.function_call_arguments.delta`) per tool call. Not streamed: the `response` object.
 * Errors: the scripted status with `{error: {message, type, code}}`.
 */

interface Item {
  type: "reasoning" | "message" | "function_call";
  [k: string]: unknown;
}

function usageOf(turn: ScriptedTurn): Record<string, unknown> {
  const input = turn.usage?.input ?? 0;
  const output = turn.usage?.output ?? 0;
  return {
    input_tokens: input,
    input_tokens_details: { cached_tokens: 0 },
    output_tokens: output,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: input + output,
  };
}

function errorBody(status: number): unknown {
  const type = status === 429 ? "rate_limit_exceeded" : status >= 500 ? "server_error" : "invalid_request_error";
  return { error: { message: `fake responses: scripted ${status}`, type, param: null, code: type } };
}

function split(s: string, size: number): string[] {
  if (s.length === 0) return [""];
  const out: string[] = [];
  for (let i = 0; i < s.length; i += size) out.push(s.slice(i, i + size));
  return out;
}

/** The turn's output items, complete (what `response.output_item.done` and the final response carry). */
function itemsOf(turn: ScriptedTurn, server: FakeModelServer, seq: string): Item[] {
  const items: Item[] = [];
  if (turn.reasoning) items.push({ type: "reasoning", id: `rs_${seq}`, summary: [{ type: "summary_text", text: turn.reasoning }] });
  const text = turn.text ?? turn.chunks?.join("");
  if (text !== undefined && text !== "") {
    items.push({ type: "message", id: `msg_${seq}`, status: "completed", role: "assistant", content: [{ type: "output_text", text, annotations: [] }] });
  }
  for (const [i, c] of (turn.toolCalls ?? []).entries()) {
    items.push({
      type: "function_call",
      id: `fc_${seq}_${i}`,
      status: "completed",
      call_id: c.id ?? server.callId(),
      name: c.name,
      arguments: JSON.stringify(c.arguments),
    });
  }
  return items;
}

async function respond(res: ServerResponse, body: unknown, server: FakeModelServer, turn: ScriptedTurn): Promise<void> {
  if (await server.answeredSpecially({ ...turn, errorBody: turn.errorBody ?? (turn.status ? errorBody(turn.status) : undefined) }, res)) return;
  const seq = Date.now().toString(36);
  const id = `resp_${seq}`;
  const createdAt = Math.floor(Date.now() / 1000);
  const items = itemsOf(turn, server, seq);
  const base = { id, object: "response", created_at: createdAt, model: modelOf(body), error: null, incomplete_details: null };
  const final = { ...base, status: "completed", output: items, usage: usageOf(turn) };
  const streamed = (body as { stream?: unknown } | undefined)?.stream === true;

  if (!streamed) return sendWhole(res, turn, JSON.stringify(final));

  const budget = chunkBudget(res, turn);
  if (budget.spent()) return cut(res);
  const sse = sseWriter(res);
  /** Sends one event; false once the scripted break has happened. */
  const send = (type: string, data: Record<string, unknown>): boolean => {
    if (res.destroyed) return false;
    sse.send({ type, ...data, sequence_number: budget.count }, type);
    return budget.sent();
  };

  if (!send("response.created", { response: { ...base, status: "in_progress", output: [], usage: null } })) return;
  if (!send("response.in_progress", { response: { ...base, status: "in_progress", output: [], usage: null } })) return;
  for (const [outputIndex, item] of items.entries()) {
    const at = { output_index: outputIndex, item_id: item.id };
    if (item.type === "message") {
      if (!send("response.output_item.added", { output_index: outputIndex, item: { ...item, status: "in_progress", content: [] } })) return;
      if (!send("response.content_part.added", { ...at, content_index: 0, part: { type: "output_text", text: "", annotations: [] } })) return;
      for (const piece of server.pieces(turn)) if (!send("response.output_text.delta", { ...at, content_index: 0, delta: piece })) return;
      const text = (item.content as Array<{ text: string }>)[0]!.text;
      if (!send("response.output_text.done", { ...at, content_index: 0, text })) return;
      if (!send("response.content_part.done", { ...at, content_index: 0, part: { type: "output_text", text, annotations: [] } })) return;
    } else if (item.type === "function_call") {
      if (!send("response.output_item.added", { output_index: outputIndex, item: { ...item, status: "in_progress", arguments: "" } })) return;
      for (const piece of split(item.arguments as string, server.chunkSize)) {
        if (!send("response.function_call_arguments.delta", { ...at, delta: piece })) return;
      }
      if (!send("response.function_call_arguments.done", { ...at, arguments: item.arguments })) return;
    } else {
      if (!send("response.output_item.added", { output_index: outputIndex, item: { ...item, summary: [] } })) return;
    }
    if (!send("response.output_item.done", { output_index: outputIndex, item })) return;
  }
  if (!send("response.completed", { response: final })) return;
  sse.end();
}

/** Whether a request carries no tools (a side call such as a title or a summary). */
function withoutTools(path: string, body: unknown): boolean {
  if (path !== "/v1/responses") return false;
  const tools = (body as { tools?: unknown } | undefined)?.tools;
  return !Array.isArray(tools) || tools.length === 0;
}

export const responsesFormat: WireFormat = {
  name: "responses",
  routes: {
    "POST /v1/responses": ({ res, body, server }) => {
      const side = server.format.isSideRequest?.("/v1/responses", body) ?? false;
      return respond(res, body, server, side ? { text: server.sideText } : server.nextTurn());
    },
    "GET /v1/models": ({ res }) => {
      res
        .writeHead(200, { "content-type": "application/json" })
        .end(JSON.stringify({ object: "list", data: [{ id: "fake-model", object: "model", created: 1_700_000_000, owned_by: "fake" }] }));
    },
  },
  isSideRequest: withoutTools,
};

export interface FakeResponsesOptions {
  /** Whether requests without `tools` are side requests answered with `sideText` (default true). */
  sideRequests?: boolean;
}

/** A fake Responses API server (start it, script it, point the client at `${url}/v1`). */
export function fakeResponses(opts: FakeResponsesOptions = {}): FakeModelServer {
  if (opts.sideRequests === false) {
    const { isSideRequest: _ignored, ...format } = responsesFormat;
    return new FakeModelServer(format);
  }
  return new FakeModelServer(responsesFormat);
}
