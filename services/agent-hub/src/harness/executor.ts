import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AgentHubConfig } from "@orch/config";
import { SessionEventType, StepErrorCode, type SessionEventInput, type StepError } from "@orch/contracts";
import type { Logger } from "@orch/logging";
import { SessionAbortedError, type Executor, type ExecutorResult, type ReadinessCheck, type SessionContext } from "../executors/types.js";
import { checkEndpoint, policyFromConfig, type LlmPolicy, type PolicyVerdict } from "../llm/policy.js";
import { firstLine, fromAgentResponse, fromText, parseAgentResponse } from "../llm/response.js";
import { buildPrompt } from "../prompts.js";
import { HarnessError } from "./errors.js";
import { cap } from "./events.js";
import { createHarnessProvider } from "./factory.js";
import { resolveBinary, runChild, type ChildEnd } from "./process.js";
import { redactor } from "./redact.js";
import type { HarnessName, HarnessProvider, HarnessOutcome } from "./types.js";

/**
 * A coding-agent CLI as an executor (`codex`, `claude`, `opencode`): one run of the CLI per session,
 * in the session's worktree, its JSON lines normalized into session events as they come, its last
 * answer the step's result. The executor does not commit: the session runner commits what the CLI
 * left in the worktree, with `commitMessage`.
 *
 * A run, in order: the LLM policy judges the model server the CLI would call (`locked` refuses every
 * run; `oss` refuses a hosted one, and an unset base URL means the CLI's hosted default); the binary
 * is found; a temporary HOME is made and the provider writes the CLI's configuration into it; the
 * CLI runs with an environment built from nothing (PATH, LANG, LC_ALL, TERM=dumb, HOME, TMPDIR, the
 * API key and the provider's own variables), so none of the hub's secrets reach it; the HOME is
 * removed afterwards, whatever happened.
 *
 * Failures are results (HARNESS_ERROR, LLM_POLICY_REFUSED), never crashes; only the session's abort
 * is thrown (SessionAbortedError), after the CLI's process group is gone. Retryable: a CLI that did
 * not start in time, ran out of time, exited non-zero or reported failure. Not: a binary that is not
 * there, a missing key or model, a refused endpoint.
 *
 * With `ORCH_LLM_RESPONSE_FORMAT=structured-json` the prompt asks for an AgentResponseSchema object
 * as the final answer; a CLI run cannot be asked again, so an answer that is not one is taken as
 * free text (with a note saying so) rather than failing work that is already in the worktree.
 */

export interface HarnessExecutorOptions {
  /** Where API keys are read from: the hub's environment by default. Nothing else of it reaches the CLI. */
  env?: NodeJS.ProcessEnv;
}

/** A prompt fits one command-line argument (Linux allows 128 KiB per argument). */
const MAX_PROMPT_BYTES = 100_000;
/** stderr lines kept for the error message of a failed run. */
const STDERR_TAIL = 20;
/** A line the CLI printed, as logged when it is not JSON. */
const LOG_LINE_MAX = 2_000;
const NOTE_MAX = 10_000;
const VERSION_TIMEOUT_MS = 15_000;

const INSTALL_HINT: Record<HarnessName, string> = {
  codex: "npm install -g @openai/codex",
  claude: "npm install -g @anthropic-ai/claude-code",
  opencode: "npm install -g opencode-ai",
};
const BINARY_KEY: Record<HarnessName, string> = { codex: "ORCH_CODEX_BINARY", claude: "ORCH_CLAUDE_BINARY", opencode: "ORCH_OPENCODE_BINARY" };
const BASE_URL_KEY: Record<HarnessName, string> = { codex: "ORCH_CODEX_BASE_URL", claude: "ORCH_CLAUDE_BASE_URL", opencode: "ORCH_OPENCODE_BASE_URL" };

function fitPrompt(system: string, user: string): string {
  const room = MAX_PROMPT_BYTES - Buffer.byteLength(system);
  if (Buffer.byteLength(user) <= room) return user;
  const note = "\n… (the rest of the task was cut to fit a command line)";
  return (
    Buffer.from(user)
      .subarray(0, Math.max(0, room - note.length))
      .toString("utf8")
      .replace(/\uFFFD$/, "") + note
  );
}

export class HarnessExecutor implements Executor {
  readonly name: HarnessName;
  /** Each CLI is its own model provider for concurrency (`ORCH_PROVIDER_CONCURRENCY`). */
  readonly provider: HarnessName;
  readonly #harness: HarnessProvider;
  readonly #policy: LlmPolicy;
  readonly #env: NodeJS.ProcessEnv;

  constructor(
    private readonly config: AgentHubConfig,
    private readonly logger: Logger,
    harness: HarnessName | HarnessProvider,
    opts: HarnessExecutorOptions = {},
  ) {
    this.#harness = typeof harness === "string" ? createHarnessProvider(harness, config) : harness;
    this.name = this.#harness.name;
    this.provider = this.#harness.name;
    this.#policy = policyFromConfig(config);
    this.#env = opts.env ?? process.env;
  }

  /** The model server the CLI calls: the configured one, else its hosted default. */
  get endpoint(): string {
    return this.#harness.baseUrl ?? this.#harness.defaultBaseUrl;
  }

  #verdict(): PolicyVerdict {
    const v = checkEndpoint(this.endpoint, this.#policy);
    if (v.ok || this.#harness.baseUrl !== undefined || this.#policy.policy === "locked") return v;
    return { ok: false, reason: `${BASE_URL_KEY[this.name]} is unset, so ${this.name} would call its hosted default (${this.endpoint}): ${v.reason}` };
  }

  #notInstalled(): string {
    const h = this.#harness;
    return `the ${h.name} CLI was not found: ${JSON.stringify(h.binary)} is not an executable file${h.binary.includes("/") ? "" : " on the PATH"}; install it (${INSTALL_HINT[h.name]}) or point ${BINARY_KEY[h.name]} at it`;
  }

  async run(ctx: SessionContext): Promise<ExecutorResult> {
    const h = this.#harness;
    const { item } = ctx;
    const model = ctx.model ?? item.model ?? h.defaultModel;
    const log = ctx.logger.child({ executor: this.name, ...(model ? { model } : {}) });
    if (ctx.signal.aborted) throw new SessionAbortedError(`the session was aborted before ${this.name} started`);
    const key = this.#env[h.apiKeyEnv] || undefined;
    const redact = redactor([key]);
    const usage = { tokensIn: 0, tokensOut: 0, costUsd: 0 };
    const fail = (code: string, message: string, retryable: boolean, extra: Partial<ExecutorResult> = {}): ExecutorResult => {
      const error: StepError = { code, message: cap(redact(message), NOTE_MAX), retryable };
      log.warn({ code, retryable }, error.message);
      return {
        ok: false,
        summary: firstLine(error.message),
        notes: [error.message],
        error,
        usage,
        ...(model ? { model } : {}),
        commitMessage: `${item.role}: ${item.title ?? item.stepId} (unfinished: ${this.name} failed)`,
        ...extra,
      };
    };

    const verdict = this.#verdict();
    if (!verdict.ok) return fail(StepErrorCode.LlmPolicyRefused, verdict.reason, false);
    const binary = resolveBinary(h.binary, this.#env.PATH);
    if (!binary) return fail(StepErrorCode.HarnessError, this.#notInstalled(), false);
    if (h.requiresApiKey && !key)
      return fail(
        StepErrorCode.HarnessError,
        `${this.name} needs an API key and ${h.apiKeyEnv} is not set in the agent hub's environment (ORCH_${this.name.toUpperCase()}_API_KEY_ENV names the variable)`,
        false,
      );

    const structured = this.config.ORCH_LLM_RESPONSE_FORMAT === "structured-json";
    const prompt = buildPrompt(item, { cwd: ctx.worktree.path, structured });
    const home = await mkdtemp(join(tmpdir(), `orch-${this.name}-`));
    try {
      await mkdir(join(home, "tmp"));
      const invocation = await h.prepare({
        home,
        cwd: ctx.worktree.path,
        system: prompt.system,
        user: fitPrompt(prompt.system, prompt.user),
        title: cap(item.title ?? `${item.role} ${item.stepId}`, 100),
        ...(model ? { model } : {}),
        ...(h.baseUrl ? { baseUrl: h.baseUrl } : {}),
        hasApiKey: key !== undefined,
        apiKeyEnv: h.apiKeyEnv,
      });
      const env: Record<string, string> = {
        PATH: this.#env.PATH ?? "/usr/local/bin:/usr/bin:/bin",
        LANG: this.#env.LANG ?? "C.UTF-8",
        ...(this.#env.LC_ALL ? { LC_ALL: this.#env.LC_ALL } : {}),
        TERM: "dumb",
        HOME: home,
        // The CLI's scratch files go with its HOME.
        TMPDIR: join(home, "tmp"),
        ...invocation.env,
        ...(key ? { [h.childKeyEnv]: key } : {}),
      };
      const timeoutMs = Math.min(this.config.ORCH_HARNESS_TIMEOUT_MS, item.timeoutMs ?? Infinity);
      log.info({ binary, endpoint: this.endpoint, worktree: ctx.worktree.path, timeoutMs }, `starting ${this.name}`);

      const normalizer = h.normalizer(ctx.worktree.path);
      const stderrTail: string[] = [];
      const emit = (e: SessionEventInput) => {
        const safe = redact(e);
        ctx.emit(safe);
        if (this.config.ORCH_HARNESS_LOG_NORMALIZED_EVENTS) log.info({ event: safe }, `${this.name} event ${safe.type}`);
      };
      const onLine = (stream: "stdout" | "stderr", raw: string) => {
        ctx.heartbeat();
        const line = redact(raw);
        if (stream === "stderr") {
          stderrTail.push(cap(line, LOG_LINE_MAX));
          if (stderrTail.length > STDERR_TAIL) stderrTail.shift();
          log.debug({ stream }, cap(line, LOG_LINE_MAX));
          return;
        }
        let event: unknown;
        try {
          event = JSON.parse(line);
        } catch {
          log.warn({ line: cap(line, LOG_LINE_MAX) }, `${this.name} printed a line that is not JSON`);
          return;
        }
        if (!event || typeof event !== "object" || Array.isArray(event)) {
          log.warn({ line: cap(line, LOG_LINE_MAX) }, `${this.name} printed JSON that is not an event`);
          return;
        }
        if (this.config.ORCH_HARNESS_LOG_RAW_EVENTS) {
          ctx.emit({ type: SessionEventType.Raw, data: { provider: this.name, event } });
          log.info({ event }, `${this.name} raw event`);
        }
        try {
          for (const e of normalizer.push(event as Record<string, unknown>)) emit(e);
        } catch (err) {
          log.warn({ err, line: cap(line, LOG_LINE_MAX) }, `could not read a ${this.name} event`);
        }
      };

      const end = await runChild({
        binary,
        args: invocation.args,
        cwd: ctx.worktree.path,
        env,
        startupTimeoutMs: this.config.ORCH_HARNESS_STARTUP_TIMEOUT_MS,
        timeoutMs,
        killGraceMs: this.config.ORCH_SESSION_KILL_GRACE_MS,
        signal: ctx.signal,
        onSpawn: (pid) => {
          log.info({ pid }, `${this.name} started`);
          ctx.registerProcess(pid);
        },
        onLine,
      });

      const outcome = normalizer.outcome();
      Object.assign(usage, outcome.usage);
      const answeredBy = outcome.model ?? model;
      const more = { ...(answeredBy ? { model: answeredBy } : {}) };
      const tail = stderrTail.length > 0 ? `\n${stderrTail.join("\n")}` : "";
      return this.#result(end, outcome, { fail, more, tail, timeoutMs, structured, ctx, log });
    } catch (err) {
      if (err instanceof SessionAbortedError) throw err;
      if (err instanceof HarnessError) return fail(err.code, err.message, err.retryable);
      throw err;
    } finally {
      await rm(home, { recursive: true, force: true }).catch((err: unknown) => log.warn({ err, home }, "could not remove the harness's temporary HOME"));
    }
  }

  #result(
    end: ChildEnd,
    outcome: HarnessOutcome,
    o: {
      fail: (code: string, message: string, retryable: boolean, extra?: Partial<ExecutorResult>) => ExecutorResult;
      more: Partial<ExecutorResult>;
      tail: string;
      timeoutMs: number;
      structured: boolean;
      ctx: SessionContext;
      log: Logger;
    },
  ): ExecutorResult {
    const { fail, more, tail } = o;
    const code = StepErrorCode.HarnessError;
    switch (end.kind) {
      case "spawn_error":
        return end.error.code === "ENOENT"
          ? fail(code, this.#notInstalled(), false)
          : fail(code, `${this.name} could not be started: ${end.error.message}`, false);
      case "aborted":
        throw new SessionAbortedError(`the session was aborted; ${this.name} was stopped`);
      case "startup_timeout":
        return fail(
          code,
          `${this.name} printed nothing within ${this.config.ORCH_HARNESS_STARTUP_TIMEOUT_MS} ms of starting (ORCH_HARNESS_STARTUP_TIMEOUT_MS) and was stopped${tail}`,
          true,
          more,
        );
      case "timeout":
        return fail(code, `${this.name} was still running after ${o.timeoutMs} ms and was stopped${tail}`, true, more);
      case "exited":
        break;
    }
    if (end.code !== 0 || !outcome.ok) {
      const how = end.code === 0 ? "" : end.signal ? ` (killed by ${end.signal})` : ` (exit code ${end.code})`;
      return fail(code, `${outcome.error ?? `${this.name} failed`}${how}${tail}`, true, more);
    }

    const { item } = o.ctx;
    let part = fromText(outcome.finalText);
    const notes = [...outcome.notes];
    if (o.structured) {
      const parsed = parseAgentResponse(outcome.finalText);
      if (parsed.ok) part = fromAgentResponse(parsed.value);
      else notes.push(`the final answer is not an AgentResponseSchema object (${parsed.error}); taken as text`);
    }
    const output: Record<string, unknown> = { ...(part.output ?? {}) };
    if (outcome.files.length > 0 && output.files === undefined) output.files = outcome.files;
    const subject = cap(firstLine(part.summary || `${item.role}: ${item.title ?? item.stepId}`, 200), 72);
    o.log.info({ files: outcome.files.length, tokensIn: outcome.usage.tokensIn, tokensOut: outcome.usage.tokensOut, ok: part.ok }, `${this.name} finished`);
    return {
      ...part,
      notes: [...part.notes, ...notes.map((n) => cap(n, NOTE_MAX))],
      output,
      usage: outcome.usage,
      ...more,
      commitMessage: `${subject}\n\n${item.role} step ${item.stepId} of run ${item.runId}, by ${this.name}${more.model ? ` (${more.model})` : ""} in session ${o.ctx.sessionId}.`,
    };
  }

  /** Whether the binary runs (`--version`) and the policy allows the model server it would call. */
  async check(signal: AbortSignal = new AbortController().signal): Promise<ReadinessCheck> {
    const verdict = this.#verdict();
    if (!verdict.ok) return { ok: false, detail: verdict.reason };
    const binary = resolveBinary(this.#harness.binary, this.#env.PATH);
    if (!binary) return { ok: false, detail: this.#notInstalled() };
    const home = await mkdtemp(join(tmpdir(), `orch-${this.name}-check-`));
    try {
      const version = await new Promise<string>((resolve, reject) => {
        execFile(
          binary,
          ["--version"],
          {
            env: { PATH: this.#env.PATH ?? "/usr/local/bin:/usr/bin:/bin", HOME: home, TMPDIR: home, TERM: "dumb", LANG: this.#env.LANG ?? "C.UTF-8" },
            timeout: VERSION_TIMEOUT_MS,
            signal,
            encoding: "utf8",
          },
          (err, stdout, stderr) =>
            err ? reject(new Error(`${binary} --version failed: ${(stderr || err.message).trim()}`)) : resolve(stdout.trim() || stderr.trim()),
        );
      });
      return { ok: true, detail: `${this.name} ${firstLine(version, 100)} (${binary}), model server ${this.endpoint}` };
    } catch (err) {
      this.logger.warn({ binary }, (err as Error).message);
      return { ok: false, detail: (err as Error).message };
    } finally {
      await rm(home, { recursive: true, force: true }).catch(() => undefined);
    }
  }
}
