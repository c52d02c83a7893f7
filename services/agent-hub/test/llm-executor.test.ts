import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { StepErrorCode } from "@orch/contracts";
import { fakeOllama, fakeOpenAiChat, freePort, type FakeModelServer } from "@orch/testing";
import { SessionAbortedError } from "../src/executors/types.js";
import { LocalLlmExecutor, llmReadiness, openAiBase } from "../src/llm/index.js";
import { hubConfig, sessionContext, tempRepo, testLogger } from "./llm-helpers.js";

/** Both wire APIs, against fake servers speaking them over real HTTP on 127.0.0.1. */
const APIS = [
  { api: "ollama", fake: () => fakeOllama(), chatPath: "/api/chat", readyPath: "/api/tags" },
  { api: "openai", fake: () => fakeOpenAiChat({ sideRequests: false }), chatPath: "/v1/chat/completions", readyPath: "/v1/models" },
] as const;

let repo: ReturnType<typeof tempRepo>;
beforeEach(() => {
  repo = tempRepo();
});
afterEach(() => repo.cleanup());

describe.each(APIS)("LocalLlmExecutor over $api", ({ api, fake, chatPath, readyPath }) => {
  let server: FakeModelServer;
  beforeEach(async () => {
    server = await fake().start();
  });
  afterEach(() => server.stop());

  const executor = (env: Record<string, string> = {}) => {
    const log = testLogger();
    return { exec: new LocalLlmExecutor(hubConfig({ LOCAL_LLM_API: api, LOCAL_LLM_URL: server.url, LOCAL_LLM_MODEL: "base-model", ...env }), log.logger), log };
  };

  it("answers a plain text step: the text as summary, notes and output, deltas in order, usage and model", async () => {
    server.script({ chunks: ["Added ", "the greeting", " in src/hello.ts.\n", "Tests pass."], usage: { input: 120, output: 17 } });
    const { exec } = executor();
    const ctx = sessionContext(repo.path);
    const r = await exec.run(ctx);

    expect(r).toMatchObject({
      ok: true,
      summary: "Added the greeting in src/hello.ts.",
      model: "base-model",
      usage: { tokensIn: 120, tokensOut: 17, costUsd: 0 },
    });
    expect(r.output).toEqual({ text: "Added the greeting in src/hello.ts.\nTests pass." });
    expect(r.notes).toEqual(["Added the greeting in src/hello.ts.\nTests pass."]);
    expect(ctx.of("agent.delta").map((d) => d.text)).toEqual(["Added ", "the greeting", " in src/hello.ts.\n", "Tests pass."]);
    expect(ctx.of("agent.message")).toEqual([{ role: "assistant", text: "Added the greeting in src/hello.ts.\nTests pass." }]);
    expect(ctx.of("agent.usage")).toEqual([{ tokensIn: 120, tokensOut: 17, model: "base-model" }]);
    expect(ctx.heartbeats).toBeGreaterThan(0);

    expect(server.turnRequests).toHaveLength(1);
    const req = server.turnRequests[0]!;
    expect(req.path).toBe(chatPath);
    expect(req.headers.authorization).toBeUndefined();
    const body = req.body as Record<string, any>;
    expect(body.model).toBe("base-model");
    expect(body.stream).toBe(true);
    expect(body.tools).toBeUndefined();
    expect(body.messages.map((m: { role: string }) => m.role)).toEqual(["system", "user"]);
    expect(body.messages[0].content).toContain("You are the implementer");
    expect(body.messages[1].content).toContain("Goal of the run: say hello");
    if (api === "openai") expect(body.stream_options).toEqual({ include_usage: true });
    expect(body.format ?? body.response_format).toBeUndefined();
  });

  it("picks the model: the session's, else the step's, else LOCAL_LLM_MODEL_<ROLE>, else LOCAL_LLM_MODEL", async () => {
    const { exec } = executor({ LOCAL_LLM_MODEL_REVIEWER: "reviewer-model" });
    const cases: Array<[Parameters<typeof sessionContext>[1], string]> = [
      [{ item: { role: "reviewer" } }, "reviewer-model"],
      [{ item: { role: "implementer" } }, "base-model"],
      [{ item: { role: "reviewer", model: "step-model" } }, "step-model"],
      [{ item: { role: "reviewer", model: "step-model" }, model: "session-model" }, "session-model"],
    ];
    for (const [over, expected] of cases) {
      server.script({ text: "done", usage: { input: 1, output: 1 } });
      const r = await exec.run(sessionContext(repo.path, over));
      expect(r.ok).toBe(true);
      expect((server.turnRequests.at(-1)!.body as { model: string }).model).toBe(expected);
      expect(r.model).toBe(expected);
    }
  });

  describe("a failing model server", () => {
    const failures = [
      { what: "a 500", turn: { status: 500 }, transient: true },
      { what: "a 429", turn: { status: 429, errorBody: { error: { message: "slow down" } } }, transient: true },
      { what: "a broken stream", turn: { text: "this answer is cut short somewhere", breakAfterChunks: 2 }, transient: true },
      { what: "a 401", turn: { status: 401 }, transient: false },
      { what: "an error inside a 200 answer", turn: { raw: JSON.stringify({ error: { message: "model crashed" } }) }, transient: true },
      { what: "a garbled answer", turn: { raw: "<html>proxy error</html>" }, transient: true },
    ];
    for (const { what, turn, transient } of failures) {
      it(`${what}: LLM_ERROR, retryable under LOCAL_LLM_ERROR_MODE=throw${transient ? "" : " only when transient (it is not)"}, final under return`, async () => {
        for (const mode of ["throw", "return"] as const) {
          server.script(turn);
          const { exec } = executor({ LOCAL_LLM_ERROR_MODE: mode });
          const r = await exec.run(sessionContext(repo.path));
          expect(r.ok).toBe(false);
          expect(r.error).toMatchObject({ code: StepErrorCode.LlmError, retryable: mode === "throw" && transient });
          if ("status" in turn) expect(r.error!.message).toContain(String(turn.status));
          else if (turn.raw?.includes("crashed")) expect(r.error!.message).toContain("model crashed");
          else expect(r.error!.message).toMatch(/broke/);
        }
        expect(server.remaining).toBe(0);
      });
    }

    it("a 429's message carries the server's reason", async () => {
      server.script({ status: 429, errorBody: api === "ollama" ? { error: "too many requests" } : { error: { message: "too many requests" } } });
      const r = await executor().exec.run(sessionContext(repo.path));
      expect(r.error?.message).toContain("429: too many requests");
    });

    it("a request past LOCAL_LLM_TIMEOUT_MS is a timeout, retryable under throw only", { timeout: 20_000 }, async () => {
      for (const mode of ["throw", "return"] as const) {
        server.script({ text: "late", delayMs: 4_000 });
        const { exec } = executor({ LOCAL_LLM_ERROR_MODE: mode, LOCAL_LLM_TIMEOUT_MS: "1000" });
        const started = Date.now();
        const r = await exec.run(sessionContext(repo.path));
        expect(Date.now() - started).toBeLessThan(3_500);
        expect(r.error).toMatchObject({ code: StepErrorCode.LlmError, retryable: mode === "throw" });
        expect(r.error!.message).toContain("LOCAL_LLM_TIMEOUT_MS");
      }
    });

    it("nothing listening: a retryable LLM_ERROR under throw, never a crash", async () => {
      const port = await freePort();
      for (const mode of ["throw", "return"] as const) {
        const exec = new LocalLlmExecutor(
          hubConfig({ LOCAL_LLM_API: api, LOCAL_LLM_URL: `http://127.0.0.1:${port}`, LOCAL_LLM_ERROR_MODE: mode }),
          testLogger().logger,
        );
        const r = await exec.run(sessionContext(repo.path));
        expect(r.error).toMatchObject({ code: StepErrorCode.LlmError, retryable: mode === "throw" });
        expect(r.error!.message).toMatch(/cannot reach .*ECONNREFUSED/);
      }
    });
  });

  it("aborting the session's signal stops the request at once with SessionAbortedError", async () => {
    server.script({ text: "never seen", delayMs: 10_000 });
    const { exec } = executor();
    const ctx = sessionContext(repo.path);
    const running = exec.run(ctx);
    while (server.requests.length === 0) await new Promise((r) => setTimeout(r, 10));
    const started = Date.now();
    ctx.controller.abort();
    await expect(running).rejects.toBeInstanceOf(SessionAbortedError);
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it("an already aborted session makes no request", async () => {
    const { exec } = executor();
    const ctx = sessionContext(repo.path);
    ctx.controller.abort();
    await expect(exec.run(ctx)).rejects.toBeInstanceOf(SessionAbortedError);
    expect(server.requests).toHaveLength(0);
  });

  it("check() reports the server ready with what it serves, and not ready when it is gone", async () => {
    const { exec } = executor();
    const ok = await exec.check();
    expect(ok.ok).toBe(true);
    expect(ok.detail).toContain("fake-model");
    expect(server.requests.map((r) => `${r.method} ${r.path}`)).toEqual([`GET ${readyPath}`]);
    await server.stop();
    const down = await exec.check();
    expect(down.ok).toBe(false);
    expect(down.detail).toMatch(/cannot reach/);
  });
});

describe("defaults and readiness wiring", () => {
  it("calls Ollama at localhost:11434 and an OpenAI-compatible server at localhost:8000/v1 by default", () => {
    const log = testLogger().logger;
    expect(new LocalLlmExecutor(hubConfig({}), log)).toMatchObject({ name: "local", provider: "ollama", endpoint: "http://localhost:11434" });
    expect(new LocalLlmExecutor(hubConfig({ LOCAL_LLM_API: "openai" }), log)).toMatchObject({ provider: "openai", endpoint: "http://localhost:8000/v1" });
    expect(openAiBase("http://gpu.lan:1234/api/")).toBe("http://gpu.lan:1234/api/v1");
  });

  it("refuses an allowlist that would allow anything, at construction", () => {
    expect(() => new LocalLlmExecutor(hubConfig({ ORCH_TOOL_ALLOWLIST: "ls,bash" }), testLogger().logger)).toThrow(/bash/);
  });

  it("llmReadiness asks the server only with ORCH_CHECK_LLM=true", async () => {
    const server = await fakeOllama().start();
    try {
      const off = hubConfig({ LOCAL_LLM_URL: server.url });
      expect(await llmReadiness(off, new LocalLlmExecutor(off, testLogger().logger))).toBeUndefined();
      expect(server.requests).toHaveLength(0);
      const on = hubConfig({ LOCAL_LLM_URL: server.url, ORCH_CHECK_LLM: "true" });
      expect(await llmReadiness(on, new LocalLlmExecutor(on, testLogger().logger))).toMatchObject({ ok: true });
      expect(server.requests.map((r) => r.path)).toEqual(["/api/tags"]);
    } finally {
      await server.stop();
    }
  });
});

describe("LocalLlmExecutor over an OpenAI-compatible server: URL and key", () => {
  let server: FakeModelServer;
  beforeEach(async () => {
    server = await fakeOpenAiChat({ sideRequests: false }).start();
  });
  afterEach(() => server.stop());

  it("adds /v1 to LOCAL_LLM_URL when missing and keeps it when given", async () => {
    for (const url of [server.url, `${server.url}/`, `${server.url}/v1`, `${server.url}/v1/`]) {
      server.script({ text: "ok" });
      const r = await new LocalLlmExecutor(hubConfig({ LOCAL_LLM_API: "openai", LOCAL_LLM_URL: url }), testLogger().logger).run(sessionContext(repo.path));
      expect(r.ok).toBe(true);
      expect(server.requests.at(-1)!.path).toBe("/v1/chat/completions");
    }
  });

  it("sends LOCAL_LLM_API_KEY as a bearer token, and never puts it in events, logs or messages", async () => {
    const key = "sk-local-0123456789-secret";
    server.script({ text: "fine", usage: { input: 3, output: 1 } }, { status: 401, errorBody: { error: { message: `bad key ${key}` } } });
    const log = testLogger();
    const exec = new LocalLlmExecutor(hubConfig({ LOCAL_LLM_API: "openai", LOCAL_LLM_URL: server.url, LOCAL_LLM_API_KEY: key }), log.logger);
    const ctx1 = sessionContext(repo.path, { logger: log.logger });
    expect((await exec.run(ctx1)).ok).toBe(true);
    const ctx2 = sessionContext(repo.path, { logger: log.logger });
    const failed = await exec.run(ctx2);
    expect(failed.error?.message).toContain("bad key [redacted]");
    expect(server.turnRequests.every((r) => r.headers.authorization === `Bearer ${key}`)).toBe(true);
    const seen = JSON.stringify([ctx1.events, ctx2.events, failed, log.lines]);
    expect(seen).not.toContain(key);
    expect((await exec.check()).ok).toBe(true);
    expect(server.requests.at(-1)!.headers.authorization).toBe(`Bearer ${key}`);
  });
});

/** A server that sends the first piece, then waits for the test's go before the rest. */
async function gatedServer(api: "ollama" | "openai", release: Promise<void>): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res: ServerResponse) => {
    req.resume();
    req.on("end", async () => {
      if (api === "ollama") {
        res.writeHead(200, { "content-type": "application/x-ndjson" });
        res.write(`${JSON.stringify({ model: "m", message: { role: "assistant", content: "first " }, done: false })}\n`);
        await release;
        res.write(`${JSON.stringify({ model: "m", message: { role: "assistant", content: "second" }, done: false })}\n`);
        res.end(`${JSON.stringify({ model: "m", message: { role: "assistant", content: "" }, done: true, prompt_eval_count: 5, eval_count: 2 })}\n`);
      } else {
        res.writeHead(200, { "content-type": "text/event-stream" });
        const chunk = (delta: object, finish: string | null = null) =>
          `data: ${JSON.stringify({ model: "m", choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
        res.write(chunk({ role: "assistant", content: "first " }));
        await release;
        res.write(chunk({ content: "second" }));
        res.write(chunk({}, "stop"));
        res.write(`data: ${JSON.stringify({ model: "m", choices: [], usage: { prompt_tokens: 5, completion_tokens: 2 } })}\n\n`);
        res.end("data: [DONE]\n\n");
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

describe.each(["ollama", "openai"] as const)("streaming over %s", (api) => {
  it("emits each piece while the model is still answering", async () => {
    let go!: () => void;
    const release = new Promise<void>((r) => (go = r));
    const { url, server } = await gatedServer(api, release);
    try {
      const exec = new LocalLlmExecutor(hubConfig({ LOCAL_LLM_API: api, LOCAL_LLM_URL: url }), testLogger().logger);
      let sawFirstWhileOpen = false;
      // The server sends the rest only once the first piece reached a watcher: a buffering executor would hang here.
      const ctx = sessionContext(repo.path, {
        onEmit: (e) => {
          if (e.type === "agent.delta" && e.data.text === "first ") {
            sawFirstWhileOpen = true;
            go();
          }
        },
      });
      const r = await exec.run(ctx);
      expect(sawFirstWhileOpen).toBe(true);
      expect(ctx.of("agent.delta").map((d) => d.text)).toEqual(["first ", "second"]);
      expect(r).toMatchObject({ ok: true, summary: "first second", usage: { tokensIn: 5, tokensOut: 2 } });
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});
