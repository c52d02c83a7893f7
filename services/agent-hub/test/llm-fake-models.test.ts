import { afterEach, describe, expect, it } from "vitest";
import { fakeOllama, fakeOpenAiChat, type FakeModelServer } from "@orch/testing";

/**
 * The fake model servers' wire formats, read raw over HTTP as any client would (the OpenCode
 * harness tests drive a real CLI against `fakeOpenAiChat()`, so the format must be the real one).
 */

let server: FakeModelServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

const post = (path: string, body: unknown) =>
  fetch(`${server!.url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
const sseEvents = (text: string) =>
  text
    .split("\n\n")
    .filter((b) => b.startsWith("data: "))
    .map((b) => b.slice(6));

describe("fakeOpenAiChat", () => {
  const tools = [{ type: "function", function: { name: "bash", parameters: { type: "object" } } }];

  it("streams role, content pieces, tool calls with argument fragments, finish_reason, usage with no choices, then [DONE]", async () => {
    server = await fakeOpenAiChat().start();
    server.chunkSize = 4;
    server.script({ text: "Hi there", toolCalls: [{ id: "call_a", name: "bash", arguments: { command: "ls -la" } }], usage: { input: 11, output: 5 } });
    const res = await post("/v1/chat/completions", {
      model: "m1",
      stream: true,
      stream_options: { include_usage: true },
      tools,
      messages: [{ role: "user", content: "hi" }],
    });
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    const events = sseEvents(await res.text());
    expect(events.at(-1)).toBe("[DONE]");
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
    expect(chunks.every((c) => c.object === "chat.completion.chunk" && c.model === "m1")).toBe(true);
    expect(chunks[0].choices[0].delta).toEqual({ role: "assistant", content: "" });
    expect(chunks.flatMap((c) => c.choices.map((ch: any) => ch.delta.content ?? "")).join("")).toBe("Hi there");
    const calls = chunks.flatMap((c) => c.choices.flatMap((ch: any) => ch.delta.tool_calls ?? []));
    expect(calls[0]).toEqual({ index: 0, id: "call_a", type: "function", function: { name: "bash", arguments: "" } });
    expect(calls.length).toBeGreaterThan(2);
    expect(calls.map((c: any) => c.function.arguments).join("")).toBe(JSON.stringify({ command: "ls -la" }));
    expect(chunks.at(-2).choices[0]).toMatchObject({ delta: {}, finish_reason: "tool_calls" });
    expect(chunks.at(-1)).toMatchObject({ choices: [], usage: { prompt_tokens: 11, completion_tokens: 5, total_tokens: 16 } });
  });

  it("answers a non-streamed request with one chat.completion (arguments as a JSON string)", async () => {
    server = await fakeOpenAiChat().start();
    server.script({ toolCalls: [{ name: "bash", arguments: { command: "pwd" } }], usage: { input: 2, output: 3 } }, { text: "done" });
    const first = (await (await post("/v1/chat/completions", { model: "m", tools, messages: [] })).json()) as any;
    expect(first.object).toBe("chat.completion");
    expect(first.choices[0]).toMatchObject({
      finish_reason: "tool_calls",
      message: {
        role: "assistant",
        content: null,
        tool_calls: [{ id: "call_1", type: "function", function: { name: "bash", arguments: '{"command":"pwd"}' } }],
      },
    });
    expect(first.usage).toEqual({ prompt_tokens: 2, completion_tokens: 3, total_tokens: 5 });
    const second = (await (await post("/v1/chat/completions", { model: "m", tools, messages: [] })).json()) as any;
    expect(second.choices[0]).toMatchObject({ finish_reason: "stop", message: { content: "done" } });
  });

  it("answers requests without tools (title generation) with sideText, leaving the script alone — unless side requests are off", async () => {
    server = await fakeOpenAiChat().start();
    server.sideText = "A short title";
    server.script({ text: "the real turn" });
    const side = sseEvents(await (await post("/v1/chat/completions", { model: "m", stream: true, messages: [] })).text());
    expect(
      side
        .slice(0, -1)
        .map((e) => JSON.parse(e).choices[0]?.delta?.content ?? "")
        .join(""),
    ).toBe("A short title");
    expect(server.remaining).toBe(1);
    expect(server.requests[0]!.turn).toBe(false);
    await server.stop();

    server = await fakeOpenAiChat({ sideRequests: false }).start();
    server.script({ text: "the real turn" });
    const turn = (await (await post("/v1/chat/completions", { model: "m", messages: [] })).json()) as any;
    expect(turn.choices[0].message.content).toBe("the real turn");
    expect(server.turnRequests).toHaveLength(1);
  });

  it("errors carry the scripted status and an OpenAI error body; /v1/models lists a model", async () => {
    server = await fakeOpenAiChat().start();
    server.script({ status: 429 });
    const res = await post("/v1/chat/completions", { model: "m", tools, messages: [] });
    expect(res.status).toBe(429);
    expect(((await res.json()) as any).error).toMatchObject({ type: "rate_limit_exceeded", message: expect.any(String) });
    const models = (await (await fetch(`${server.url}/v1/models`)).json()) as any;
    expect(models).toMatchObject({ object: "list", data: [{ id: "fake-model", object: "model" }] });
    expect(server.requests.map((r) => r.turn)).toEqual([true, false]);
  });

  it("a broken stream delivers the pieces before the break and then drops the connection", async () => {
    server = await fakeOpenAiChat().start();
    server.script({ text: "0123456789abcdef0123456789", breakAfterChunks: 2 });
    const res = await post("/v1/chat/completions", { model: "m", stream: true, tools, messages: [] });
    const reader = res.body!.getReader();
    let got = "";
    await expect(
      (async () => {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return;
          got += new TextDecoder().decode(value);
        }
      })(),
    ).rejects.toThrow();
    expect(sseEvents(got)).toHaveLength(2);
  });
});

describe("fakeOllama", () => {
  it("streams NDJSON by default: content pieces, a tool_calls chunk with object arguments, then done with counts", async () => {
    server = await fakeOllama().start();
    server.script({ text: "Looking", toolCalls: [{ name: "ls", arguments: { args: ["-a"] } }], usage: { input: 9, output: 4 } });
    const res = await post("/api/chat", { model: "llama3.1:8b", messages: [] });
    expect(res.headers.get("content-type")).toContain("application/x-ndjson");
    const lines = (await res.text())
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(
      lines
        .filter((l) => !l.done)
        .map((l) => l.message.content)
        .join(""),
    ).toBe("Looking");
    expect(lines.find((l) => l.message.tool_calls)!.message.tool_calls).toEqual([
      { id: "call_1", function: { index: 0, name: "ls", arguments: { args: ["-a"] } } },
    ]);
    expect(lines.at(-1)).toMatchObject({ model: "llama3.1:8b", done: true, done_reason: "stop", prompt_eval_count: 9, eval_count: 4 });
  });

  it("answers stream: false with one object, errors as {error: string}, and lists models at /api/tags", async () => {
    server = await fakeOllama().start();
    server.script({ text: "whole", usage: { input: 1, output: 2 } }, { status: 500 });
    const whole = (await (await post("/api/chat", { model: "m", stream: false, messages: [] })).json()) as any;
    expect(whole).toMatchObject({ done: true, message: { role: "assistant", content: "whole" }, prompt_eval_count: 1, eval_count: 2 });
    const failed = await post("/api/chat", { model: "m", messages: [] });
    expect(failed.status).toBe(500);
    expect(((await failed.json()) as any).error).toEqual(expect.any(String));
    const tags = (await (await fetch(`${server.url}/api/tags`)).json()) as any;
    expect(tags.models[0]).toMatchObject({ name: "fake-model:latest", details: { format: "gguf" } });
    expect(server.turnRequests).toHaveLength(2);
  });
});
