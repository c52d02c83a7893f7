import { afterEach, describe, expect, it } from "vitest";
import { fakeAnthropic, fakeResponses, type FakeModelServer } from "@orch/testing";

/**
 * The wire formats the harness tier's fake model servers speak (the Responses API for Codex, the
 * Anthropic Messages API for Claude Code), read back here over real HTTP the way a client reads
 * them: the streams' event order, what their pieces add up to, errors, side requests.
 */

const servers: FakeModelServer[] = [];
async function start(s: FakeModelServer): Promise<FakeModelServer> {
  servers.push(s);
  return s.start();
}
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

interface Sse {
  event?: string;
  data: Record<string, any>;
}

async function post(url: string, body: unknown): Promise<{ status: number; events: Sse[]; json?: any }> {
  const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const text = await res.text();
  if (!(res.headers.get("content-type") ?? "").includes("event-stream")) return { status: res.status, events: [], json: JSON.parse(text) };
  const events = text
    .split("\n\n")
    .filter((b) => b.trim())
    .map((block) => {
      const event = /^event: (.*)$/m.exec(block)?.[1];
      const data = JSON.parse(/^data: (.*)$/m.exec(block)![1]!) as Record<string, any>;
      return event ? { event, data } : { data };
    });
  return { status: res.status, events };
}

const tools = [{ type: "function", name: "exec_command", parameters: {} }];

describe("fake Responses API", () => {
  it("streams a text turn: created, the message item and its deltas, completed with usage", async () => {
    const s = await start(fakeResponses());
    s.script({ text: "Hello, world", usage: { input: 11, output: 4 } });
    const { status, events } = await post(`${s.url}/v1/responses`, { model: "m", stream: true, input: [], tools });
    expect(status).toBe(200);
    expect(events.every((e) => e.event === e.data.type)).toBe(true);
    expect(events.map((e) => e.data.type)).toEqual([
      "response.created",
      "response.in_progress",
      "response.output_item.added",
      "response.content_part.added",
      "response.output_text.delta",
      "response.output_text.delta",
      "response.output_text.done",
      "response.content_part.done",
      "response.output_item.done",
      "response.completed",
    ]);
    expect(
      events
        .filter((e) => e.data.type === "response.output_text.delta")
        .map((e) => e.data.delta)
        .join(""),
    ).toBe("Hello, world");
    const done = events.at(-1)!.data.response;
    expect(done.output[0]).toMatchObject({ type: "message", role: "assistant", content: [{ type: "output_text", text: "Hello, world" }] });
    expect(done.usage).toMatchObject({ input_tokens: 11, output_tokens: 4, total_tokens: 15 });
    expect(events.map((e) => e.data.sequence_number)).toEqual(events.map((_, i) => i));
  });

  it("streams a tool call as a function_call item with its arguments", async () => {
    const s = await start(fakeResponses());
    s.script({ toolCalls: [{ name: "exec_command", arguments: { cmd: "ls -la" } }] });
    const { events } = await post(`${s.url}/v1/responses`, { stream: true, tools });
    const args = events
      .filter((e) => e.data.type === "response.function_call_arguments.delta")
      .map((e) => e.data.delta)
      .join("");
    expect(JSON.parse(args)).toEqual({ cmd: "ls -la" });
    const item = events.find((e) => e.data.type === "response.output_item.done")!.data.item;
    expect(item).toMatchObject({ type: "function_call", call_id: "call_1", name: "exec_command", arguments: args });
  });

  it("answers without streaming, with errors in OpenAI's shape, and side requests without taking a turn", async () => {
    const s = await start(fakeResponses());
    s.script({ text: "plain", usage: { input: 1, output: 1 } }, { status: 429 });
    const plain = await post(`${s.url}/v1/responses`, { tools });
    expect(plain.json).toMatchObject({ object: "response", status: "completed", output: [{ type: "message" }], usage: { input_tokens: 1 } });
    const side = await post(`${s.url}/v1/responses`, { stream: true });
    expect(side.events.at(-1)!.data.response.output[0].content[0].text).toBe(s.sideText);
    const limited = await post(`${s.url}/v1/responses`, { tools });
    expect(limited.status).toBe(429);
    expect(limited.json.error.type).toBe("rate_limit_exceeded");
    expect(s.turnRequests).toHaveLength(2);
  });
});

describe("fake Anthropic Messages API", () => {
  it("streams a tool_use turn: message_start, the block and its JSON deltas, message_delta with stop_reason", async () => {
    const s = await start(fakeAnthropic());
    s.script({ toolCalls: [{ name: "Write", arguments: { file_path: "/w/a.txt", content: "hi\n" } }], usage: { input: 20, output: 6 } });
    const { events } = await post(`${s.url}/v1/messages?beta=true`, { model: "m", stream: true, messages: [], tools: [{ name: "Write" }] });
    const types = events.map((e) => e.data.type);
    expect(types[0]).toBe("message_start");
    expect(types.slice(-3)).toEqual(["content_block_stop", "message_delta", "message_stop"]);
    expect(events[0]!.data.message.usage.input_tokens).toBe(20);
    expect(events[1]!.data.content_block).toMatchObject({ type: "tool_use", name: "Write", input: {} });
    const json = events
      .filter((e) => e.data.delta?.type === "input_json_delta")
      .map((e) => e.data.delta.partial_json)
      .join("");
    expect(JSON.parse(json)).toEqual({ file_path: "/w/a.txt", content: "hi\n" });
    expect(events.find((e) => e.data.type === "message_delta")!.data).toMatchObject({ delta: { stop_reason: "tool_use" }, usage: { output_tokens: 6 } });
  });

  it("streams text and thinking as their deltas, ending the turn", async () => {
    const s = await start(fakeAnthropic());
    s.script({ text: "All done here.", reasoning: "think", usage: { input: 3, output: 2 } });
    const { events } = await post(`${s.url}/v1/messages`, { stream: true, tools: [{ name: "Bash" }] });
    const deltas = (type: string, key: string) =>
      events
        .filter((e) => e.data.delta?.type === type)
        .map((e) => e.data.delta[key])
        .join("");
    expect(deltas("thinking_delta", "thinking")).toBe("think");
    expect(deltas("text_delta", "text")).toBe("All done here.");
    expect(events.find((e) => e.data.type === "message_delta")!.data.delta.stop_reason).toBe("end_turn");
  });

  it("answers the reachability probe, non-streamed requests, errors in Anthropic's shape, and title requests", async () => {
    const s = await start(fakeAnthropic());
    s.script({ text: "whole", usage: { input: 1, output: 1 } }, { status: 401 });
    expect((await fetch(`${s.url}/`, { method: "HEAD" })).status).toBe(200);
    const plain = await post(`${s.url}/v1/messages`, { tools: [{ name: "Bash" }] });
    expect(plain.json).toMatchObject({ type: "message", role: "assistant", content: [{ type: "text", text: "whole" }], stop_reason: "end_turn" });
    const title = await post(`${s.url}/v1/messages`, { messages: [] });
    expect(title.json.content[0].text).toBe(s.sideText);
    const denied = await post(`${s.url}/v1/messages`, { tools: [{ name: "Bash" }] });
    expect(denied.status).toBe(401);
    expect(denied.json).toMatchObject({ type: "error", error: { type: "authentication_error" } });
    expect(s.turnRequests).toHaveLength(2);
  });
});
