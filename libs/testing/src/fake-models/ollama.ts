import type { ServerResponse } from "node:http";
import { chunkBudget, cut, FakeModelServer, modelOf, ndjsonWriter, sendWhole, type ScriptedTurn, type WireFormat } from "../fake-models.js";

/**
 * Ollama's native API (`POST /api/chat`, `GET /api/tags`).
 *
 * `/api/chat` streams unless the request says `stream: false` (Ollama's default is to stream):
 * newline-delimited JSON objects `{model, created_at, message: {role: "assistant", content}, done:
 * false}` — `message.thinking` pieces first when the turn has reasoning, then the content pieces,
 * then one chunk carrying `message.tool_calls` (`[{id, function: {index, name, arguments}}]`,
 * arguments as an object, not a string) — and a last object with `done: true`, `done_reason`,
 * `prompt_eval_count`, `eval_count` and the durations. Not streamed: that last object with the
 * whole message. Errors: the scripted status with `{error: "<message>"}`.
 */

function split(s: string, size: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < s.length; i += size) out.push(s.slice(i, i + size));
  return out;
}

async function chat({ res, body, server }: { res: ServerResponse; body: unknown; server: FakeModelServer }): Promise<void> {
  const turn: ScriptedTurn = server.nextTurn();
  if (
    await server.answeredSpecially({ ...turn, errorBody: turn.errorBody ?? (turn.status ? { error: `fake ollama: scripted ${turn.status}` } : undefined) }, res)
  )
    return;
  const m = modelOf(body);
  const createdAt = () => new Date().toISOString();
  const calls = (turn.toolCalls ?? []).map((c, index) => ({ id: c.id ?? server.callId(), function: { index, name: c.name, arguments: c.arguments } }));
  const final = (message: Record<string, unknown>) => ({
    model: m,
    created_at: createdAt(),
    message: { role: "assistant", content: "", ...message },
    done: true,
    done_reason: "stop",
    total_duration: 1_000_000,
    load_duration: 100_000,
    prompt_eval_count: turn.usage?.input ?? 0,
    prompt_eval_duration: 200_000,
    eval_count: turn.usage?.output ?? 0,
    eval_duration: 700_000,
  });

  if ((body as { stream?: unknown } | undefined)?.stream === false) {
    const payload = JSON.stringify(
      final({
        content: turn.text ?? turn.chunks?.join("") ?? "",
        ...(turn.reasoning ? { thinking: turn.reasoning } : {}),
        ...(calls.length > 0 ? { tool_calls: calls } : {}),
      }),
    );
    return sendWhole(res, turn, payload, "application/json; charset=utf-8");
  }

  const out = ndjsonWriter(res);
  const budget = chunkBudget(res, turn);
  if (budget.spent()) return cut(res);
  /** Sends one object; false once the scripted break has happened. */
  const send = (message: Record<string, unknown>): boolean => {
    if (res.destroyed) return false;
    out.send({ model: m, created_at: createdAt(), message: { role: "assistant", content: "", ...message }, done: false });
    return budget.sent();
  };
  if (turn.reasoning) for (const piece of split(turn.reasoning, server.chunkSize)) if (!send({ thinking: piece })) return;
  for (const piece of server.pieces(turn)) if (!send({ content: piece })) return;
  if (calls.length > 0 && !send({ tool_calls: calls })) return;
  out.send(final({}));
  out.end();
}

function tags({ res }: { res: ServerResponse }): void {
  res.writeHead(200, { "content-type": "application/json; charset=utf-8" }).end(
    JSON.stringify({
      models: [
        {
          name: "fake-model:latest",
          model: "fake-model:latest",
          modified_at: "2025-01-01T00:00:00Z",
          size: 1,
          digest: "0".repeat(64),
          details: { parent_model: "", format: "gguf", family: "fake", families: ["fake"], parameter_size: "1B", quantization_level: "Q4_0" },
        },
      ],
    }),
  );
}

export const ollamaFormat: WireFormat = {
  name: "ollama",
  routes: { "POST /api/chat": chat, "GET /api/tags": tags },
  /** The model listing is a probe, not a turn; every chat request is a turn. */
  isSideRequest: (path) => path === "/api/tags",
};

/** A fake Ollama server (start it, script it, point the client at `url`). */
export function fakeOllama(): FakeModelServer {
  return new FakeModelServer(ollamaFormat);
}
