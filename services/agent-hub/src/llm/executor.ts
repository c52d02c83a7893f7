import type { AgentHubConfig } from "@orch/config";
import { SessionEventType, StepErrorCode, type StepError, type WorkItem } from "@orch/contracts";
import type { Logger } from "@orch/logging";
import { SessionAbortedError, type Executor, type ExecutorResult, type ReadinessCheck, type SessionContext } from "../executors/types.js";
import { buildPrompt } from "../prompts.js";
import { Toolbox, type ToolOutcome, type ToolSession } from "../tools/index.js";
import { displayUrl, type ChatApi, type ChatMessage, type ChatTurn, type StreamSink, type ToolCall, type ToolSpec } from "./chat.js";
import { LlmError } from "./errors.js";
import { OllamaChat } from "./ollama.js";
import { OpenAiChat } from "./openai.js";
import { checkEndpoint, policyFromConfig, type LlmPolicy } from "./policy.js";
import { fromAgentResponse, fromText, parseAgentResponse, repairPrompt } from "./response.js";

/**
 * Seed 001's LocalLLMExecutor: a role step answered by a local open-source model (Ollama's native
 * API, or any OpenAI-compatible server), optionally with tools, streamed into session events.
 *
 * One step is a conversation: the prompt (prompts.ts), then model turns; while the model asks for
 * tools (at most `ORCH_TOOL_MAX_ITERATIONS` rounds) their results go back to it. The last turn is
 * the answer: free text (`ORCH_LLM_RESPONSE_FORMAT=text`), or an AgentResponseSchema object
 * (`structured-json`) with one repair request when it does not validate.
 *
 * Failures are results, never crashes: a refused endpoint is LLM_POLICY_REFUSED (no request made);
 * a failed model call is LLM_ERROR, retryable under `LOCAL_LLM_ERROR_MODE=throw` when it was
 * transient (unreachable, 5xx, 429, timeout, broken stream) so the core's backoff retries it, and
 * recorded as final under `return`. Only the session's abort is thrown (SessionAbortedError).
 *
 * With tools offered, answers are not constrained to JSON (Ollama's `format`, OpenAI's
 * `response_format`): constrained decoding would keep the model from calling tools. The
 * instructions ask for JSON all the same, and the repair request is constrained.
 */

const ROLE_MODEL_KEYS = {
  architect: "LOCAL_LLM_MODEL_ARCHITECT",
  implementer: "LOCAL_LLM_MODEL_IMPLEMENTER",
  reviewer: "LOCAL_LLM_MODEL_REVIEWER",
  tester: "LOCAL_LLM_MODEL_TESTER",
  maintainer: "LOCAL_LLM_MODEL_MAINTAINER",
  qa: "LOCAL_LLM_MODEL_QA",
} as const satisfies Record<string, keyof AgentHubConfig>;

/** The local model a role uses: `LOCAL_LLM_MODEL_<ROLE>`, else `LOCAL_LLM_MODEL`. */
export function localModelFor(config: Pick<AgentHubConfig, (typeof ROLE_MODEL_KEYS)[keyof typeof ROLE_MODEL_KEYS] | "LOCAL_LLM_MODEL">, role: string): string {
  const key = (ROLE_MODEL_KEYS as Partial<Record<string, (typeof ROLE_MODEL_KEYS)[keyof typeof ROLE_MODEL_KEYS]>>)[role];
  return (key && config[key]) || config.LOCAL_LLM_MODEL;
}

/** Tool output and arguments in a session event are capped harder than what the model gets: events stay small. */
const EVENT_OUTPUT_MAX = 16_384;
/** A whole message in one event stays well under NATS's default 1 MiB payload (the deltas carry all of it). */
const EVENT_MESSAGE_MAX = 262_144;
/** Heartbeats while data streams in, at most this often. */
const HEARTBEAT_EVERY_MS = 1_000;
/** An error's message fits the session record's limits. */
const NOTE_MAX = 10_000;

function cap(s: string, max: number): string {
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

export class LocalLlmExecutor implements Executor {
  readonly name = "local";
  readonly provider: "ollama" | "openai";
  readonly #api: ChatApi;
  readonly #policy: LlmPolicy;
  readonly #tools: Toolbox | undefined;

  /** Throws on an unusable `ORCH_TOOL_ALLOWLIST` (a boot-time configuration error). */
  constructor(
    private readonly config: AgentHubConfig,
    private readonly logger: Logger,
  ) {
    const http = { timeoutMs: config.LOCAL_LLM_TIMEOUT_MS, ...(config.LOCAL_LLM_API_KEY ? { apiKey: config.LOCAL_LLM_API_KEY } : {}) };
    this.#api = config.LOCAL_LLM_API === "openai" ? new OpenAiChat(config.LOCAL_LLM_URL, http) : new OllamaChat(config.LOCAL_LLM_URL, http);
    this.provider = this.#api.provider;
    this.#policy = policyFromConfig(config);
    this.#tools =
      config.ORCH_TOOL_ALLOWLIST.length > 0
        ? new Toolbox({
            allowlist: config.ORCH_TOOL_ALLOWLIST,
            roots: config.ORCH_TOOL_ALLOWED_ROOTS,
            timeoutMs: config.ORCH_TOOL_TIMEOUT_MS,
            maxOutputBytes: config.ORCH_TOOL_MAX_OUTPUT_BYTES,
            ...(config.ORCH_TOOL_CWD ? { cwd: config.ORCH_TOOL_CWD } : {}),
          })
        : undefined;
  }

  /** The model server this executor calls (without credentials). */
  get endpoint(): string {
    return displayUrl(this.#api.baseUrl);
  }

  /** The session's model, else the step's, else `LOCAL_LLM_MODEL_<ROLE>`, else `LOCAL_LLM_MODEL`. */
  modelFor(item: WorkItem, sessionModel?: string): string {
    return sessionModel || item.model || localModelFor(this.config, item.role);
  }

  async run(ctx: SessionContext): Promise<ExecutorResult> {
    const model = this.modelFor(ctx.item, ctx.model);
    const log = ctx.logger.child({ executor: this.name, provider: this.provider, model });
    if (ctx.signal.aborted) throw new SessionAbortedError("the session was aborted before the model was asked");
    const usage = { tokensIn: 0, tokensOut: 0, costUsd: 0 };
    let answeredBy = model;
    const fail = (code: string, message: string, retryable: boolean): ExecutorResult => {
      const error: StepError = { code, message: cap(this.#redact(message), NOTE_MAX), retryable };
      return { ok: false, summary: cap(error.message.split("\n")[0]!, 500), notes: [error.message], error, usage, model: answeredBy };
    };

    const verdict = checkEndpoint(this.#api.baseUrl, this.#policy);
    if (!verdict.ok) {
      log.warn({ endpoint: this.endpoint }, `model call refused: ${verdict.reason}`);
      return fail(StepErrorCode.LlmPolicyRefused, verdict.reason, false);
    }

    const tools: ToolSession | undefined = this.#tools?.session(ctx.worktree.path);
    const specs: ToolSpec[] = this.#tools?.specs(tools?.cwd ?? ctx.worktree.path) ?? [];
    const structured = this.config.ORCH_LLM_RESPONSE_FORMAT === "structured-json";
    const prompt = buildPrompt(ctx.item, { cwd: tools?.cwd ?? ctx.worktree.path, structured, tools: specs.map((s) => s.name) });
    const messages: ChatMessage[] = [
      { role: "system", content: prompt.system },
      { role: "user", content: prompt.user },
    ];

    let lastBeat = 0;
    const beat = () => {
      const now = Date.now();
      if (now - lastBeat >= HEARTBEAT_EVERY_MS) {
        lastBeat = now;
        ctx.heartbeat();
      }
    };
    const sink: StreamSink = {
      delta: (text, channel) => ctx.emit({ type: SessionEventType.Delta, data: channel ? { text, channel } : { text } }),
      alive: beat,
    };
    const ask = async (msgs: readonly ChatMessage[], withTools: boolean, json: boolean): Promise<ChatTurn> => {
      log.debug({ endpoint: this.endpoint, messages: msgs.length, tools: withTools ? specs.length : 0, json }, "model request");
      const turn = await this.#api.chat({ model, messages: msgs, tools: withTools ? specs : [], json }, sink, ctx.signal);
      usage.tokensIn += turn.tokensIn;
      usage.tokensOut += turn.tokensOut;
      answeredBy = turn.model;
      ctx.emit({ type: SessionEventType.Usage, data: { tokensIn: turn.tokensIn, tokensOut: turn.tokensOut, model: turn.model } });
      if (turn.text) ctx.emit({ type: SessionEventType.Message, data: { role: "assistant", text: cap(turn.text, EVENT_MESSAGE_MAX) } });
      return turn;
    };

    log.info({ endpoint: this.endpoint, tools: specs.map((s) => s.name), format: this.config.ORCH_LLM_RESPONSE_FORMAT }, "asking the local model");
    try {
      const max = this.config.ORCH_TOOL_MAX_ITERATIONS;
      let turn = await ask(messages, specs.length > 0, structured && specs.length === 0);
      for (let round = 1; turn.toolCalls.length > 0; round++) {
        if (round > max) {
          return fail(
            StepErrorCode.AgentFailed,
            `the model was still calling tools after ${max} rounds (ORCH_TOOL_MAX_ITERATIONS=${max}) without answering`,
            false,
          );
        }
        messages.push({ role: "assistant", content: turn.text, toolCalls: turn.toolCalls });
        for (const call of turn.toolCalls) {
          const outcome = await this.#callTool(ctx, tools, call);
          messages.push({ role: "tool", callId: call.id, name: call.name, content: outcome.content });
        }
        turn = await ask(messages, specs.length > 0, structured && specs.length === 0);
      }

      if (!structured) return { ...fromText(turn.text), usage, model: answeredBy };

      let parsed = parseAgentResponse(turn.text);
      if (!parsed.ok) {
        log.info({ problem: parsed.error }, "the model's answer is not a valid response object: asking once for a repair");
        const repair = await ask([...messages, { role: "assistant", content: turn.text }, { role: "user", content: repairPrompt(parsed.error) }], false, true);
        parsed = parseAgentResponse(repair.text);
        if (!parsed.ok) {
          return fail(
            StepErrorCode.InvalidAgentResponse,
            `the model's answer is not a valid AgentResponseSchema object, even after a repair request: ${parsed.error}`,
            false,
          );
        }
      }
      return { ...fromAgentResponse(parsed.value), usage, model: answeredBy };
    } catch (err) {
      if (err instanceof SessionAbortedError) throw err;
      if (ctx.signal.aborted) throw new SessionAbortedError("the session was aborted", { cause: err });
      if (err instanceof LlmError) {
        const retryable = this.config.LOCAL_LLM_ERROR_MODE === "throw" && err.transient;
        log.warn({ failure: err.failure, status: err.status, retryable }, this.#redact(err.message));
        return fail(StepErrorCode.LlmError, err.message, retryable);
      }
      throw err;
    }
  }

  /** Runs one tool call (or refuses it), with its events; the outcome goes back to the model. */
  async #callTool(ctx: SessionContext, tools: ToolSession | undefined, call: ToolCall): Promise<ToolOutcome> {
    const args = call.args
      ? Object.fromEntries(Object.entries(call.args).map(([k, v]) => [k, typeof v === "string" ? cap(v, EVENT_OUTPUT_MAX) : v]))
      : cap(call.raw, EVENT_OUTPUT_MAX);
    ctx.emit({ type: SessionEventType.ToolCall, data: { callId: call.id, name: call.name, args } });
    const outcome: ToolOutcome = tools
      ? await tools.call(call.name, call.args, ctx.signal)
      : { ok: false, refused: true, error: "no tools are allowed (ORCH_TOOL_ALLOWLIST is empty)", content: "refused: no tools are allowed" };
    if (ctx.signal.aborted) throw new SessionAbortedError("the session was aborted during a tool call");
    ctx.heartbeat();
    ctx.emit({
      type: SessionEventType.ToolResult,
      data: {
        callId: call.id,
        name: call.name,
        ok: outcome.ok,
        ...(outcome.output !== undefined ? { output: cap(outcome.output, EVENT_OUTPUT_MAX) } : {}),
        ...(outcome.error !== undefined ? { error: outcome.error } : {}),
        ...(outcome.refused ? { refused: true } : {}),
      },
    });
    if (outcome.edit) ctx.emit({ type: SessionEventType.FileEdit, data: { path: outcome.edit.path, change: outcome.edit.change } });
    if (outcome.refused) ctx.logger.warn({ tool: call.name, callId: call.id }, `tool call refused: ${outcome.error}`);
    return outcome;
  }

  /** Whether the model server answers (`ORCH_CHECK_LLM`); the policy first, so `locked` calls nothing. */
  async check(signal: AbortSignal = new AbortController().signal): Promise<ReadinessCheck> {
    const verdict = checkEndpoint(this.#api.baseUrl, this.#policy);
    if (!verdict.ok) return { ok: false, detail: verdict.reason };
    try {
      return { ok: true, detail: await this.#api.ready(signal) };
    } catch (err) {
      const detail = this.#redact((err as Error).message);
      this.logger.warn({ endpoint: this.endpoint }, `model server not ready: ${detail}`);
      return { ok: false, detail };
    }
  }

  /** The API key never leaves in a message, whatever a server echoed. */
  #redact(message: string): string {
    const key = this.config.LOCAL_LLM_API_KEY;
    return key ? message.split(key).join("[redacted]") : message;
  }
}

/** The LLM part of the hub's readiness: asked only with `ORCH_CHECK_LLM=true`, else undefined (not part of it). */
export async function llmReadiness(
  config: Pick<AgentHubConfig, "ORCH_CHECK_LLM">,
  executor: Pick<Executor, "check">,
  signal?: AbortSignal,
): Promise<ReadinessCheck | undefined> {
  if (!config.ORCH_CHECK_LLM || !executor.check) return undefined;
  return executor.check(signal);
}
