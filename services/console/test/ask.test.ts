import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ApiError, ask } from "../src/api.js";

/**
 * The supervisor's panel reads `POST /api/v1/runs/{id}/ask` as the contract says: a JSON refusal
 * before streaming, or `delta` frames then `done`, or an `error` frame mid-stream; an answer cut
 * off before `done` is an error too. Frames may arrive split anywhere.
 */

const store = new Map<string, string>();
beforeEach(() => {
  vi.stubGlobal("localStorage", {
    getItem: (k: string) => store.get(k) ?? null,
    setItem: (k: string, v: string) => void store.set(k, v),
    removeItem: (k: string) => void store.delete(k),
  });
  store.set("orch.console.token", "secret-token");
});
afterEach(() => vi.unstubAllGlobals());

function streamOf(chunks: string[]): ReadableStream<Uint8Array> {
  const enc = new TextEncoder();
  return new ReadableStream({
    start(c) {
      for (const x of chunks) c.enqueue(enc.encode(x));
      c.close();
    },
  });
}

async function run(res: Response) {
  const calls: { url: string; init: RequestInit }[] = [];
  vi.stubGlobal("fetch", async (url: string, init: RequestInit) => {
    calls.push({ url, init });
    return res;
  });
  let text = "";
  let model: string | undefined;
  let error: ApiError | undefined;
  let done = false;
  await ask("run-1", { question: "why?" }, { onDelta: (t) => (text += t), onDone: (m) => ((model = m), (done = true)), onError: (e) => (error = e) });
  return { calls, text, model, error, done };
}

const sse = (chunks: string[]) => new Response(streamOf(chunks), { status: 200, headers: { "content-type": "text/event-stream" } });

describe("ask()", () => {
  it("posts the question with the bearer token and joins the streamed text", async () => {
    const r = await run(
      sse([
        'event: delta\ndata: {"text":"The run "}\n\n',
        "event: del",
        'ta\ndata: {"text":"waits."}\n',
        "\n: ping\n\n",
        'event: done\ndata: {"model":"m-1"}\n\n',
      ]),
    );
    expect(r.calls[0]!.url).toBe("/api/v1/runs/run-1/ask");
    expect(r.calls[0]!.init.method).toBe("POST");
    expect(JSON.parse(String(r.calls[0]!.init.body))).toEqual({ question: "why?" });
    expect((r.calls[0]!.init.headers as Record<string, string>).authorization).toBe("Bearer secret-token");
    expect(r).toMatchObject({ text: "The run waits.", model: "m-1", done: true, error: undefined });
  });

  it("shows a refusal before streaming with its code and message", async () => {
    const body = JSON.stringify({ error: { code: "SUPERVISOR_UNAVAILABLE", message: "No supervisor is configured" } });
    const r = await run(new Response(body, { status: 503, headers: { "content-type": "application/json" } }));
    expect(r.error).toMatchObject({ status: 503, code: "SUPERVISOR_UNAVAILABLE", message: "No supervisor is configured" });
    expect(r.done).toBe(false);
  });

  it("shows an error frame mid-stream, and an answer cut off before done", async () => {
    const failed = await run(
      sse(['event: delta\ndata: {"text":"Par"}\n\n', 'event: error\ndata: {"error":{"code":"LLM_POLICY_REFUSED","message":"hosted models are off"}}\n\n']),
    );
    expect(failed.text).toBe("Par");
    expect(failed.error).toMatchObject({ code: "LLM_POLICY_REFUSED", message: "hosted models are off" });
    const cut = await run(sse(['event: delta\ndata: {"text":"Par"}\n\n']));
    expect(cut.error?.code).toBe("INCOMPLETE");
    const notSse = await run(new Response("{}", { status: 200, headers: { "content-type": "application/json" } }));
    expect(notSse.error?.code).toBe("BAD_ANSWER");
  });
});
