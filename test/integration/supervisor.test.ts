import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { request as httpRequest } from "node:http";
import { join } from "node:path";
import { fakeOpenAiChat, http, sse, Stack, waitFor, type FakeModelServer, type ServiceProcess } from "@orch/testing";

/**
 * The supervisor through the real services: `POST /api/v1/runs/{id}/ask` on the gateway, an agent
 * hub answering over NATS, and a model server (a local fake speaking OpenAI's streamed Chat
 * Completions, so the hub's real client reads real SSE chunks). By default the supervisor uses the
 * local LLM's endpoint, which is what this stack configures. The model is given the run's failure
 * and events, never a secret; its words come back as SSE deltas in order; refusals come before
 * anything is streamed; asking changes nothing in the run.
 */

const CLI = join(import.meta.dirname, "..", "..", "services", "cli", "dist", "main.js");
const SECRET = "planted-secret-value-7f3e9a";
const QUESTION = "Why did this run fail, and what should I do next?";

let stack: Stack;
let model: FakeModelServer;
let base: string;
let failedRun: string;

const HUB_ENV = (url: string) => ({
  LOCAL_LLM_API: "openai",
  LOCAL_LLM_URL: url,
  LOCAL_LLM_MODEL: "supervisor-model",
  // A secret the hub knows of (named like one): it must never reach the model.
  DEPLOY_SERVICE_TOKEN: SECRET,
});

const ask = (runId: string, body: unknown, headers: Record<string, string> = {}) =>
  http("POST", `${base}/api/v1/runs/${runId}/ask`, { json: body, headers: { accept: "application/json", ...headers } });

/** The real `orch ask …` (the model server runs in this process: the command must not block it). */
function orchAsk(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, "ask", ...args], { env: { ...process.env, ORCH_URL: base, ORCH_CONFIG: "none" } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

const promptOf = (i = -1) => {
  const reqs = model.turnRequests;
  const body = reqs.at(i)!.body as { messages: { role: string; content: string }[]; stream: boolean; model: string };
  return { body, text: body.messages.map((m) => m.content).join("\n") };
};

async function runState(id: string) {
  const run = (await http("GET", `${base}/api/v1/runs/${id}`)).json();
  const history = (await http("GET", `${base}/api/v1/runs/${id}/history`)).json();
  return { seq: run.seq, updatedAt: run.updatedAt, status: run.status, history };
}

beforeAll(async () => {
  model = await fakeOpenAiChat({ sideRequests: false }).start();
  stack = await Stack.start({ serviceEnv: { "agent-hub": HUB_ENV(model.url) } });
  base = stack.baseUrl;
  // A seed 000 job whose step fails for good, with the secret in its goal and in its error.
  const job = await http("POST", `${base}/api/orchestrator/jobs`, {
    json: {
      goal: `deploy the service with ${SECRET}`,
      steps: [{ type: "ci", payload: { mock: { failTimes: 9, error: `disk quota exceeded on /var/build (auth ${SECRET})` } } }],
      limits: { maxSteps: 3 },
    },
  });
  failedRun = job.json().job_id;
  await waitFor(async () => ((await http("GET", `${base}/api/v1/runs/${failedRun}`)).json().status === "failed" ? true : undefined), {
    timeoutMs: 30_000,
    what: "the job to fail",
  });
});

afterAll(async () => {
  await stack?.stop();
  await model?.stop();
});

describe("asking the supervisor about a run", () => {
  it("streams the model's answer about a failed run as SSE deltas, in order, then done; the model saw the failure and no secret; the run is unchanged", async () => {
    const before = await runState(failedRun);
    model.script({
      chunks: ["The ", "ci step ", "failed: the disk ", "quota was exceeded. ", "Free space, then retry it."],
      usage: { input: 900, output: 21 },
    });
    const conn = await sse(`${base}/api/v1/runs/${failedRun}/ask`, {}, { json: { question: QUESTION } });
    expect(conn.status).toBe(200);
    expect(String(conn.headers["content-type"])).toContain("text/event-stream");
    await conn.ended;

    const frames = conn.frames;
    expect(frames.map((f) => f.event)).toEqual(["delta", "delta", "delta", "delta", "delta", "done"]);
    expect(frames.filter((f) => f.event === "delta").map((f) => f.json.text)).toEqual([
      "The ",
      "ci step ",
      "failed: the disk ",
      "quota was exceeded. ",
      "Free space, then retry it.",
    ]);
    expect(frames.at(-1)!.json).toEqual({ model: "supervisor-model", usage: { tokensIn: 900, tokensOut: 21 } });

    // What the model was asked: streamed, the run's failure and its events, the question; no secret.
    const { body, text } = promptOf();
    expect(body.stream).toBe(true);
    expect(body.model).toBe("supervisor-model");
    expect(body.messages[0]!.role).toBe("system");
    expect(text).toContain(failedRun);
    expect(text).toContain("disk quota exceeded on /var/build");
    expect(text).toContain("step.failed");
    expect(text).toContain("run.finished");
    expect(text).toContain(QUESTION);
    expect(text).not.toContain(SECRET);
    expect(text).toContain("[REDACTED]");

    expect(await runState(failedRun)).toEqual(before);
  });

  it("answers `orch ask` in the terminal: the real command prints the deltas as they come and exits 0", async () => {
    model.script({ chunks: ["Step ci ", "ran out of disk. ", "Free space and retry."], usage: { input: 500, output: 9 } });
    const text = await orchAsk([failedRun, QUESTION]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain("Step ci ran out of disk. Free space and retry.");
    expect(promptOf().text).toContain(QUESTION);
    model.script({ chunks: ["In short: ", "free space."] });
    const json = await orchAsk([failedRun, QUESTION, "--json"]);
    expect(json.code, json.stderr).toBe(0);
    const frames = json.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(frames.at(-1)).toMatchObject({ event: "done" });
  });

  it("answers the whole text as JSON with Accept: application/json", async () => {
    model.script({ chunks: ["It is ", "failed."], usage: { input: 10, output: 3 } });
    const res = await ask(failedRun, { question: "Status?" });
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ answer: "It is failed.", model: "supervisor-model", usage: { tokensIn: 10, tokensOut: 3 } });
  });

  it("reads a run's agent sessions, and focuses on a step", async () => {
    const created = await http("POST", `${base}/api/v1/runs`, {
      json: { definition: "task", steps: [{ id: "code", role: "implementer", title: "Add a hello function" }] },
    });
    expect(created.status).toBe(201);
    const id = created.json().id;
    await waitFor(async () => ((await http("GET", `${base}/api/v1/runs/${id}`)).json().status === "completed" ? true : undefined), {
      timeoutMs: 30_000,
      what: "the task to complete",
    });
    model.script({ text: "The implementer finished." });
    const res = await ask(id, { question: "What did the implementer do?", stepId: "code" });
    expect(res.status).toBe(200);
    const { text } = promptOf();
    expect(text).toMatch(/### session \S+: step code/);
    expect(text).toContain("session completed");
    expect(text).toContain("The question is about step code");
  });

  it("refuses a bad body (400), an unknown run or step (404), before asking anyone", async () => {
    const asked = model.requests.length;
    for (const body of [{}, { question: "" }, { question: "   " }, { question: "x".repeat(4_001) }, { question: "ok", extra: 1 }, { question: 42 }]) {
      const res = await ask(failedRun, body);
      expect(res.status, JSON.stringify(body).slice(0, 50)).toBe(400);
      expect(res.json().error.code).toBe("BAD_REQUEST");
    }
    const missing = await ask("no-such-run", { question: "Why?" });
    expect(missing.status).toBe(404);
    expect(missing.json().error.code).toBe("NOT_FOUND");
    const step = await ask(failedRun, { question: "Why?", stepId: "nope" });
    expect(step.status).toBe(404);
    expect(step.json().error).toMatchObject({ code: "NOT_FOUND", message: expect.stringContaining("nope") });
    expect(model.requests.length).toBe(asked);
  });

  it("answers 502 LLM_ERROR when the model fails before saying anything, and ends the stream with an error event when it breaks midway", async () => {
    model.script({ status: 500 });
    const before = await ask(failedRun, { question: QUESTION });
    expect(before.status).toBe(502);
    expect(before.json().error).toMatchObject({ code: "LLM_ERROR", message: expect.stringContaining("500") });

    model.script({ status: 401 });
    const sseRefused = await http("POST", `${base}/api/v1/runs/${failedRun}/ask`, { json: { question: QUESTION }, headers: { accept: "text/event-stream" } });
    expect(sseRefused.status).toBe(502);
    expect(sseRefused.json().error.code).toBe("LLM_ERROR");

    // The role chunk, two pieces, then the connection drops.
    model.script({ chunks: ["Partial ", "answer ", "never finished"], breakAfterChunks: 3 });
    const conn = await sse(`${base}/api/v1/runs/${failedRun}/ask`, {}, { json: { question: QUESTION } });
    expect(conn.status).toBe(200);
    await conn.ended;
    expect(conn.frames.map((f) => f.event)).toEqual(["delta", "delta", "error"]);
    expect(conn.frames.at(-1)!.json.error).toMatchObject({ code: "LLM_ERROR", message: expect.stringContaining("broke") });
  });

  it("cancels the model request when the client goes away", async () => {
    const hub = stack.service("agent-hub");
    const from = hub.lines.length;
    model.script({ text: "too late", delayMs: 4_000 });
    const asked = model.turnRequests.length;
    const conn = await new Promise<{ destroy(): void }>((resolve) => {
      // The answer has not begun, so nothing is sent back: close the socket while the model thinks.
      const req = httpRequest(`${base}/api/v1/runs/${failedRun}/ask`, { method: "POST", headers: { "content-type": "application/json" } });
      req.on("error", () => undefined);
      req.end(JSON.stringify({ question: QUESTION }));
      resolve(req);
    });
    await waitFor(() => model.turnRequests.length > asked || undefined, { what: "the model to be asked" });
    conn.destroy();
    await hub.waitForLog((l) => l.msg === "supervisor ask cancelled: the model request was aborted", { from, timeoutMs: 10_000 });
  });
});

describe("the supervisor under the LLM policy, and without an agent hub", () => {
  let hub: ServiceProcess | undefined;

  const withHub = async (env: Record<string, string>) => {
    await stack.service("agent-hub").stop();
    await hub?.stop();
    hub = await stack.spawn("agent-hub", { ...HUB_ENV(model.url), ...env });
  };

  afterAll(async () => {
    await hub?.stop();
  });

  it("uses its own endpoint, model and key when they are configured", async () => {
    await withHub({
      ORCH_SUPERVISOR_BASE_URL: `${model.url}/v1`,
      ORCH_SUPERVISOR_MODEL: "haiku-like",
      ORCH_SUPERVISOR_API_KEY: "sk-supervisor-secret-key-123",
    });
    model.script({ text: "Fine." });
    const res = await ask(failedRun, { question: "Status?" });
    expect(res.status).toBe(200);
    expect(res.json()).toMatchObject({ answer: "Fine.", model: "haiku-like" });
    const last = model.turnRequests.at(-1)!;
    expect(last.headers.authorization).toBe("Bearer sk-supervisor-secret-key-123");
    expect(JSON.stringify(last.body)).not.toContain("sk-supervisor-secret-key-123");
    expect(stack.service("agent-hub").raw.concat(hub!.raw).join("\n")).not.toContain("sk-supervisor-secret-key-123");
  });

  it("refuses every ask under ORCH_LLM_POLICY=locked (403 LLM_POLICY_REFUSED), without a model request", async () => {
    await withHub({ ORCH_LLM_POLICY: "locked" });
    const asked = model.requests.length;
    const res = await ask(failedRun, { question: QUESTION });
    expect(res.status).toBe(403);
    expect(res.json().error).toMatchObject({ code: "LLM_POLICY_REFUSED", message: expect.stringContaining("locked") });
    const streamed = await http("POST", `${base}/api/v1/runs/${failedRun}/ask`, { json: { question: QUESTION }, headers: { accept: "text/event-stream" } });
    expect(streamed.status).toBe(403);
    expect(model.requests.length).toBe(asked);
  });

  it("refuses a hosted endpoint (seed 003's OpenRouter) under oss (403 LLM_POLICY_REFUSED), and never calls it", async () => {
    await withHub({ ORCH_LLM_POLICY: "oss", ORCH_SUPERVISOR_BASE_URL: "https://openrouter.ai/api/v1", ORCH_SUPERVISOR_MODEL: "c/claude-haiku-4.5" });
    const res = await ask(failedRun, { question: QUESTION });
    expect(res.status).toBe(403);
    expect(res.json().error).toMatchObject({ code: "LLM_POLICY_REFUSED", message: expect.stringContaining("openrouter.ai") });
  });

  it("answers 503 SUPERVISOR_UNAVAILABLE when no agent hub is running", async () => {
    await hub?.stop();
    await stack.service("agent-hub").stop();
    const res = await ask(failedRun, { question: QUESTION });
    expect(res.status).toBe(503);
    expect(res.json().error.code).toBe("SUPERVISOR_UNAVAILABLE");
  });
});
