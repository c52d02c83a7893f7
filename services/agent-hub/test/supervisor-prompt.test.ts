import { describe, expect, it } from "vitest";
import { emptyTotals, type RunEvent, type RunView, type SessionEvent, type SessionRecord, type StepView } from "@orch/contracts";
import {
  buildSupervisorPrompt,
  isSecretKey,
  pickSessions,
  PROMPT_MAX_CHARS,
  REDACTED,
  secretRedactor,
  supervisorEndpoint,
  SYSTEM_PROMPT,
  transcriptLines,
  type SupervisorConfig,
} from "../src/supervisor/index.js";

/** The supervisor's prompt: what the model is given of a run, bounded, with every secret removed. */

const T0 = Date.UTC(2025, 0, 1, 12, 0, 0);
const SECRET = "hub-env-secret-4f9a2c";

const step = (id: string, over: Partial<StepView> = {}): StepView => ({
  id,
  index: 0,
  status: "completed",
  role: "implementer",
  type: id,
  stage: "implement",
  maxAttempts: 3,
  attempt: 1,
  retries: 0,
  reworks: 0,
  iteration: 0,
  ...over,
});

const run = (over: Partial<RunView> = {}): RunView => ({
  runId: "run-1",
  projectId: "_default",
  definition: { id: "task", version: 1 },
  view: "generic",
  mode: "live",
  labels: {},
  status: "failed",
  createdAt: T0,
  updatedAt: T0 + 60_000,
  seq: 10,
  stepsRun: 1,
  input: { goal: "ship it" },
  steps: [step("plan"), step("build", { index: 1, status: "failed", attempt: 3, error: "npm ERR! build failed: exit code 2", errorCode: "AGENT_FAILED" })],
  facts: {},
  usage: emptyTotals(),
  usageBy: { phase: {}, role: {}, model: {} },
  error: "step build failed",
  ...over,
});

const event = (seq: number, type: string, data?: Record<string, unknown>): RunEvent => ({
  seq,
  type,
  at: T0 + seq * 1000,
  runId: "run-1",
  projectId: "_default",
  ...(data ? { data } : {}),
});

const session = (id: string, over: Partial<SessionRecord> = {}): SessionRecord => ({
  v: 1,
  sessionId: id,
  runId: "run-1",
  projectId: "_default",
  stepId: "build",
  attemptId: `a-${id}`,
  attempt: 1,
  kind: "execute",
  role: "implementer",
  type: "build",
  executor: "local",
  hub: "hub-1",
  status: "failed",
  snapshot: {},
  createdAt: T0,
  heartbeatAt: T0,
  deadlineAt: T0,
  seq: 3,
  ...over,
});

const sevent = (seq: number, type: string, data: Record<string, unknown>): SessionEvent => ({
  sessionId: "s1",
  runId: "run-1",
  projectId: "_default",
  stepId: "build",
  attemptId: "a-s1",
  seq,
  type,
  at: T0 + seq,
  data,
});

const redact = secretRedactor([SECRET]);
const userOf = (m: ReturnType<typeof buildSupervisorPrompt>) => m[1]!.content;

describe("the supervisor's prompt", () => {
  it("gives the run, its failed step's error, its events and the session's transcript, then the question", () => {
    const messages = buildSupervisorPrompt(
      {
        run: run(),
        events: [
          event(1, "run.created"),
          event(2, "step.started", { stepId: "build" }),
          event(3, "step.failed", { stepId: "build", error: "npm ERR! build failed" }),
        ],
        sessions: [
          {
            record: session("s1", { error: { code: "AGENT_FAILED", message: "the build broke", retryable: false } }),
            events: [
              sevent(1, "session.running", { from: "starting", to: "running" }),
              sevent(2, "agent.tool_call", { callId: "c1", name: "npm", args: { args: ["run", "build"] } }),
              sevent(3, "agent.tool_result", { callId: "c1", name: "npm", ok: false, error: "exit code 2" }),
              sevent(4, "agent.delta", { text: "The build " }),
              sevent(5, "agent.delta", { text: "fails." }),
            ],
          },
        ],
        question: "Why did it fail?",
        now: T0 + 120_000,
      },
      redact,
    );
    expect(messages[0]).toEqual({ role: "system", content: SYSTEM_PROMPT });
    const user = userOf(messages);
    expect(user).toContain("status: failed");
    expect(user).toContain("error AGENT_FAILED: npm ERR! build failed: exit code 2");
    expect(user).toContain("#3 ");
    expect(user).toContain("step.failed");
    expect(user).toContain("tool call npm");
    expect(user).toContain("tool result npm FAILED");
    expect(user).toContain("agent (streaming, unfinished): The build fails.");
    expect(user.trimEnd().endsWith("## Question\nWhy did it fail?")).toBe(true);
  });

  it("never contains a secret: known values, values under secret keys, and credential-shaped text", () => {
    const leaky = run({
      input: { goal: `deploy with ${SECRET}`, apiKey: "plain-key-value", githubToken: "abcdefabcdef", maxTokens: 4096 },
      facts: { note: "push to https://bob:hunter2hunter2@git.example.com/r.git", auth: "Authorization: Bearer abcdefghijklmnop123" },
      steps: [step("build", { status: "failed", error: `login failed for ghp_${"a".repeat(36)} and sk-or-v1-${"b".repeat(40)}; password=letmein99` })],
    });
    const user = userOf(
      buildSupervisorPrompt(
        {
          run: leaky,
          events: [event(1, "step.failed", { error: `token ${SECRET} rejected`, credentials: { user: "x", pass: "y" } })],
          sessions: [{ record: session("s1"), events: [sevent(1, "agent.log", { level: "error", msg: `env has ${SECRET}` })] }],
          question: `is ${SECRET} the problem?`,
          now: T0,
        },
        redact,
      ),
    );
    for (const s of [SECRET, "plain-key-value", "abcdefabcdef", "hunter2hunter2", "abcdefghijklmnop123", `ghp_${"a".repeat(36)}`, "b".repeat(40), "letmein99"])
      expect(user).not.toContain(s);
    expect(user).toContain(REDACTED);
    expect(user).toContain('"maxTokens":4096');
  });

  it("stays within its bound however large the run, keeping the failures and the latest events", () => {
    const many = Array.from({ length: 5_000 }, (_, i) => event(i + 1, i === 10 ? "step.failed" : "step.progress", { stepId: "build", note: "x".repeat(300) }));
    const huge = run({
      steps: Array.from({ length: 500 }, (_, i) => step(`s${i}`, { index: i, output: "y".repeat(5_000), error: i % 7 === 0 ? "z".repeat(5_000) : undefined })),
      facts: { big: "f".repeat(100_000) },
    });
    const events = Array.from({ length: 2_000 }, (_, i) => sevent(i + 1, "agent.message", { role: "assistant", text: "w".repeat(3_000) }));
    const user = userOf(
      buildSupervisorPrompt(
        {
          run: huge,
          events: many,
          sessions: [1, 2, 3, 4].map((n) => ({ record: session(`s${n}`), events })),
          question: "q".repeat(4_000),
          now: T0,
        },
        redact,
      ),
    );
    expect(user.length).toBeLessThanOrEqual(PROMPT_MAX_CHARS);
    expect(user).toContain("#11 ");
    expect(user).toContain("#5000 ");
    expect(user).toMatch(/other events left out/);
    expect(user.endsWith("q".repeat(4_000))).toBe(true);
  });

  it("tells a key naming a secret from one counting tokens", () => {
    for (const k of ["apiKey", "API_KEY", "x-api-key", "githubToken", "password", "client_secret", "Authorization", "privateKey", "credentials"])
      expect(isSecretKey(k), k).toBe(true);
    for (const k of ["tokens", "tokensIn", "maxTokens", "keys", "author", "stepId"]) expect(isSecretKey(k), k).toBe(false);
  });

  it("shows reasoning nowhere, and a finished message instead of its deltas", () => {
    const lines = transcriptLines([
      sevent(1, "agent.delta", { text: "thinking hard", channel: "reasoning" }),
      sevent(2, "agent.delta", { text: "Done" }),
      sevent(3, "agent.message", { role: "assistant", text: "Done." }),
      sevent(4, "agent.usage", { tokensIn: 1, tokensOut: 2 }),
    ]);
    expect(lines).toEqual(["assistant: Done."]);
  });

  it("picks the focused step's sessions first, then failed ones, newest first", () => {
    const all = [
      session("old-ok", { stepId: "plan", status: "completed", createdAt: T0 }),
      session("failed", { stepId: "build", status: "failed", createdAt: T0 + 1 }),
      session("focus", { stepId: "test", status: "completed", createdAt: T0 + 2 }),
      session("new-ok", { stepId: "docs", status: "completed", createdAt: T0 + 3 }),
    ];
    expect(pickSessions(all, "test", 2).map((s) => s.sessionId)).toEqual(["focus", "failed"]);
    expect(pickSessions(all, undefined, 2).map((s) => s.sessionId)).toEqual(["new-ok", "failed"]);
  });
});

describe("the supervisor's endpoint", () => {
  const base: SupervisorConfig = {
    ORCH_SUPERVISOR_TIMEOUT_MS: 120_000,
    LOCAL_LLM_API: "ollama",
    LOCAL_LLM_MODEL: "llama3.1:8b",
    ORCH_LLM_POLICY: "oss",
    ALLOW_HOSTED_LLM: false,
    LOCAL_LLM_ALLOWED_HOSTS: [],
  };

  it("is the local LLM's OpenAI-compatible endpoint when unset (Ollama's /v1), with its model and key", () => {
    expect(supervisorEndpoint(base)).toEqual({ baseUrl: "http://localhost:11434/v1", own: false, model: "llama3.1:8b", verdict: { ok: true } });
    const e = supervisorEndpoint({ ...base, LOCAL_LLM_API: "openai", LOCAL_LLM_URL: "http://gpu.lan:8000", LOCAL_LLM_API_KEY: "local-key" });
    expect(e).toMatchObject({ baseUrl: "http://gpu.lan:8000/v1", apiKey: "local-key", verdict: { ok: true } });
  });

  it("takes seed 003's OpenRouter settings, refused under oss and allowed when hosted models are", () => {
    const seed = {
      ...base,
      ORCH_SUPERVISOR_BASE_URL: "https://openrouter.ai/api/v1",
      ORCH_SUPERVISOR_MODEL: "c/claude-haiku-4.5",
      OPENROUTER_API_KEY: "or-key",
    };
    const oss = supervisorEndpoint(seed);
    expect(oss).toMatchObject({ baseUrl: "https://openrouter.ai/api/v1", own: true, model: "c/claude-haiku-4.5", apiKey: "or-key" });
    expect(oss.verdict).toMatchObject({ ok: false, reason: expect.stringContaining("ORCH_LLM_POLICY=oss") });
    expect(supervisorEndpoint({ ...seed, ORCH_LLM_POLICY: "hosted" }).verdict).toEqual({ ok: true });
    expect(supervisorEndpoint({ ...seed, ALLOW_HOSTED_LLM: true }).verdict).toEqual({ ok: true });
    expect(supervisorEndpoint({ ...base, ORCH_LLM_POLICY: "locked" }).verdict).toMatchObject({ ok: false, reason: expect.stringContaining("locked") });
  });

  it("sends OpenRouter's key to OpenRouter only; its own key wins", () => {
    expect(supervisorEndpoint({ ...base, ORCH_SUPERVISOR_BASE_URL: "https://llm.example.com/v1", OPENROUTER_API_KEY: "or-key" }).apiKey).toBeUndefined();
    expect(supervisorEndpoint({ ...base, ORCH_SUPERVISOR_BASE_URL: "https://llm.example.com/v1", ORCH_SUPERVISOR_API_KEY: "own" }).apiKey).toBe("own");
    expect(supervisorEndpoint({ ...base, LOCAL_LLM_API_KEY: "local", OPENROUTER_API_KEY: "or-key" }).apiKey).toBe("local");
  });
});
