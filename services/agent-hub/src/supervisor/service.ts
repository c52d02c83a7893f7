import { decode, encode, type Bus } from "@orch/bus";
import {
  SUPERVISOR_ASK,
  SUPERVISOR_CANCEL,
  SUPERVISOR_PING_MS,
  SupervisorAsk,
  SupervisorCancel,
  SupervisorErrorCode,
  SupervisorFrame,
  type SupervisorUsage,
} from "@orch/contracts";
import type { Logger } from "@orch/logging";
import { SessionAbortedError } from "../executors/types.js";
import { displayUrl, type ChatApi } from "../llm/chat.js";
import { LlmError } from "../llm/errors.js";
import { OpenAiChat } from "../llm/openai.js";
import { readRunContext, type RunContext } from "./context.js";
import { supervisorEndpoint, type SupervisorConfig, type SupervisorEndpoint } from "./endpoint.js";
import { buildSupervisorPrompt } from "./prompt.js";
import type { Redact } from "./redact.js";

/**
 * The agent hub's side of the supervisor (protocol in @orch/contracts `supervisor.ts`): any hub of
 * the `agent-hub` queue group takes an ask, checks the LLM policy, reads the run, calls the model
 * (streaming) and publishes the answer as ordered frames to the asker's inbox. It only reads: no
 * command is sent, no run, session or repository touched. A cancellation (the asker went away)
 * aborts the model request.
 */

/** Asks one hub answers at once; more are refused as unavailable (another hub, or later). */
const MAX_OPEN_ASKS = 8;
/** Reading the run, its events and sessions. */
const READ_TIMEOUT_MS = 10_000;

export interface SupervisorDeps {
  bus: Bus;
  cfg: SupervisorConfig;
  logger: Logger;
  redact: Redact;
  /** The model client (tests may pass another); by default the configured OpenAI-compatible endpoint. */
  chat?: ChatApi;
}

type FrameBody = SupervisorFrame extends infer F ? (F extends SupervisorFrame ? Omit<F, "askId" | "seq"> : never) : never;

export class Supervisor {
  readonly endpoint: SupervisorEndpoint;
  readonly #chat: ChatApi;
  readonly #open = new Map<string, AbortController>();

  constructor(private readonly deps: SupervisorDeps) {
    this.endpoint = supervisorEndpoint(deps.cfg);
    this.#chat =
      deps.chat ??
      new OpenAiChat(
        this.endpoint.baseUrl,
        { timeoutMs: deps.cfg.ORCH_SUPERVISOR_TIMEOUT_MS, ...(this.endpoint.apiKey ? { apiKey: this.endpoint.apiKey } : {}) },
        { verbatim: this.endpoint.own },
      );
  }

  /** Subscribes to asks and cancellations; `stop` aborts what is open. */
  start(): { stop(): void } {
    const { bus, logger } = this.deps;
    const s = bus.names.subjects;
    const asks = bus.nc.subscribe(s.query(SUPERVISOR_ASK), {
      queue: "agent-hub",
      callback: (_err, msg) => {
        if (!msg.reply) return;
        const reply = msg.reply;
        this.answer(msg.data, reply).catch((err: unknown) => logger.warn({ err }, "could not answer a supervisor ask"));
      },
    });
    const cancels = bus.nc.subscribe(s.ctl(SUPERVISOR_CANCEL), {
      callback: (_err, msg) => {
        const d = decode(SupervisorCancel, msg.data);
        if (d.ok) this.#open.get(d.value.askId)?.abort(new SessionAbortedError("the asker went away"));
      },
    });
    logger.info(
      { supervisor: displayUrl(this.endpoint.baseUrl), model: this.endpoint.model, policy: this.endpoint.verdict.ok ? "allowed" : "refused" },
      "supervisor ready",
    );
    return {
      stop: () => {
        asks.unsubscribe();
        cancels.unsubscribe();
        for (const ac of this.#open.values()) ac.abort(new SessionAbortedError("the agent hub is stopping"));
      },
    };
  }

  /** Answers one ask on `reply`; never throws for the asker's or the model's failures (they are frames). */
  async answer(data: Uint8Array, reply: string): Promise<void> {
    const { bus, logger, redact } = this.deps;
    const d = decode(SupervisorAsk, data);
    const rawId = (() => {
      try {
        const id = (JSON.parse(new TextDecoder().decode(data)) as { askId?: unknown }).askId;
        return typeof id === "string" && /^[A-Za-z0-9_-]{1,64}$/.test(id) ? id : "invalid";
      } catch {
        return "invalid";
      }
    })();
    const askId = d.ok ? d.value.askId : rawId;
    let seq = 0;
    let lastSent = Date.now();
    const send = (f: FrameBody) => {
      lastSent = Date.now();
      bus.nc.publish(reply, encode(SupervisorFrame, { ...f, askId, seq: seq++ } as SupervisorFrame));
    };
    const fail = (code: SupervisorErrorCode, message: string) => send({ kind: "error", error: { code, message: redact(message) } });

    if (!d.ok) return fail(SupervisorErrorCode.BadRequest, `The ask is invalid: ${d.error}`);
    const ask = d.value;
    const log = logger.child({ component: "supervisor", askId, runId: ask.runId, ...(ask.stepId ? { stepId: ask.stepId } : {}) });
    if (!this.endpoint.verdict.ok) {
      log.info({ reason: this.endpoint.verdict.reason }, "supervisor ask refused by the LLM policy");
      return fail(SupervisorErrorCode.PolicyRefused, `The supervisor's model server is refused: ${this.endpoint.verdict.reason}`);
    }
    if (this.#open.size >= MAX_OPEN_ASKS)
      return fail(SupervisorErrorCode.Unavailable, `This agent hub is answering ${MAX_OPEN_ASKS} questions already; ask again shortly`);

    // Taken: the asker waits briefly for this first frame, then as long as frames keep coming.
    send({ kind: "ping" });
    const ac = new AbortController();
    this.#open.set(askId, ac);
    const ping = setInterval(() => {
      if (Date.now() - lastSent >= SUPERVISOR_PING_MS - 250) send({ kind: "ping" });
    }, SUPERVISOR_PING_MS / 2);
    try {
      let context: RunContext | null;
      try {
        context = await readRunContext(bus, ask.runId, ask.stepId, AbortSignal.any([ac.signal, AbortSignal.timeout(READ_TIMEOUT_MS)]));
      } catch (err) {
        if (ac.signal.aborted) return;
        log.warn({ err }, "could not read the run for the supervisor");
        return fail(SupervisorErrorCode.Unavailable, "The run could not be read; try again shortly");
      }
      if (!context) return fail(SupervisorErrorCode.NotFound, `Run ${ask.runId} not found`);
      if (ask.stepId && !context.run.steps.some((s) => s.id === ask.stepId) && context.run.planning?.id !== ask.stepId)
        return fail(SupervisorErrorCode.NotFound, `Step ${ask.stepId} not found in run ${ask.runId}`);

      const messages = buildSupervisorPrompt({ ...context, question: ask.question, ...(ask.stepId ? { stepId: ask.stepId } : {}), now: Date.now() }, redact);
      send({ kind: "start", model: this.endpoint.model });
      log.info({ actor: ask.actor, model: this.endpoint.model, promptChars: messages.reduce((n, m) => n + m.content.length, 0) }, "supervisor asked");
      const turn = await this.#chat.chat(
        { model: this.endpoint.model, messages, tools: [], json: false },
        { delta: (text, channel) => channel !== "reasoning" && text && send({ kind: "delta", text }), alive: () => undefined },
        ac.signal,
      );
      const usage: SupervisorUsage = turn.tokensIn || turn.tokensOut ? { tokensIn: turn.tokensIn, tokensOut: turn.tokensOut } : null;
      send({ kind: "done", model: turn.model || this.endpoint.model, usage });
      log.info({ model: turn.model, usage }, "supervisor answered");
    } catch (err) {
      if (err instanceof SessionAbortedError || ac.signal.aborted) {
        log.info("supervisor ask cancelled: the model request was aborted");
        return;
      }
      if (err instanceof LlmError) {
        log.warn({ failure: err.failure, status: err.status, msg: err.message }, "the supervisor's model failed");
        return fail(SupervisorErrorCode.ModelError, `The supervisor's model failed: ${err.message}`);
      }
      log.error({ err }, "supervisor ask failed");
      return fail(SupervisorErrorCode.Unavailable, "The supervisor failed; try again shortly");
    } finally {
      clearInterval(ping);
      this.#open.delete(askId);
    }
  }
}
