import type { AgentHubConfig } from "@orch/config";
import type { SessionEventInput } from "@orch/contracts";
import { ev, FileList, inWorktree, num, obj, str, type FileChange } from "./events.js";
import { ConfiguredProvider, type HarnessOutcome, type HarnessProvider, type Invocation, type Normalizer, type PrepareInput } from "./types.js";

/**
 * Claude Code (`@anthropic-ai/claude-code`): `claude -p --output-format stream-json --verbose`.
 *
 * Configured by environment only: `ANTHROPIC_BASE_URL` (`ORCH_CLAUDE_BASE_URL`; unset, Anthropic's
 * API), the key (Claude Code reads `ANTHROPIC_API_KEY` or `ANTHROPIC_AUTH_TOKEN` and nothing else,
 * so a key kept under another name is handed over as `ANTHROPIC_API_KEY`),
 * `CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1` (no telemetry, update checks or DNS look-ups) and
 * `CLAUDE_CODE_MAX_RETRIES=0` (a failed model call fails the run at once; the core's backoff retries
 * the step). Permissions: edits are accepted (`acceptEdits`), the listed tools run without asking,
 * the web tools never; so `--dangerously-skip-permissions`, and with it `IS_SANDBOX=1` as root, are
 * not needed. A refused tool call does not fail the run: it is in `result.permission_denials`.
 *
 * It prints `system` (`init`), `stream_event` (the model's raw stream, with
 * `--include-partial-messages`: text and thinking deltas), `assistant` (content blocks `text`,
 * `thinking`, `tool_use`), `user` (`tool_result` blocks, and `tool_use_result` with what a file tool
 * did), and one `result` with the run's usage and cost, which are the ones to trust (per-message
 * usage is not).
 */

/** Tools that run without a prompt besides the edits `acceptEdits` allows. */
const ALLOWED_TOOLS = ["Bash", "Read", "Edit", "MultiEdit", "Write", "NotebookEdit", "Glob", "Grep", "LS", "TodoWrite", "Task"];
/** Tools that would reach the internet. */
const DISALLOWED_TOOLS = ["WebFetch", "WebSearch"];
/** Tools that write a file, and where their input names it. */
const FILE_TOOLS: Record<string, string> = { Write: "file_path", Edit: "file_path", MultiEdit: "file_path", NotebookEdit: "notebook_path" };

/** A tool result's content: a string, or text blocks. */
function contentText(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (!Array.isArray(v)) return undefined;
  return v
    .map((b) => str(obj(b).text))
    .filter((t): t is string => t !== undefined)
    .join("\n");
}

export class ClaudeNormalizer implements Normalizer {
  readonly #cwd: string;
  readonly #calls = new Map<string, { name: string; input: Record<string, unknown> }>();
  readonly #files = new FileList();
  readonly #notes: string[] = [];
  #streamed = false;
  #model: string | undefined;
  #result: Record<string, unknown> | undefined;
  #lastText = "";

  constructor(cwd: string) {
    this.#cwd = cwd;
  }

  push(event: Record<string, unknown>): SessionEventInput[] {
    switch (event.type) {
      case "system":
        if (event.subtype === "init" && str(event.model)) this.#model = str(event.model);
        return [];
      case "stream_event":
        return this.#partial(obj(event.event));
      case "assistant":
        return this.#assistant(obj(event.message));
      case "user":
        return this.#user(obj(event.message), obj(event.tool_use_result));
      case "result":
        return this.#finish(event);
      default:
        return [];
    }
  }

  #partial(e: Record<string, unknown>): SessionEventInput[] {
    if (e.type !== "content_block_delta") return [];
    const d = obj(e.delta);
    if (d.type === "text_delta" && str(d.text)) {
      this.#streamed = true;
      return [ev.delta(str(d.text)!)];
    }
    if (d.type === "thinking_delta" && str(d.thinking)) {
      this.#streamed = true;
      return [ev.delta(str(d.thinking)!, "reasoning")];
    }
    return [];
  }

  #assistant(message: Record<string, unknown>): SessionEventInput[] {
    if (str(message.model)) this.#model = str(message.model);
    const out: SessionEventInput[] = [];
    for (const block of Array.isArray(message.content) ? message.content : []) {
      const b = obj(block);
      if (b.type === "text" && str(b.text)) {
        this.#lastText = str(b.text)!;
        out.push(ev.message(this.#lastText));
      } else if (b.type === "thinking" && str(b.thinking) && !this.#streamed) {
        out.push(ev.delta(str(b.thinking)!, "reasoning"));
      } else if (b.type === "tool_use") {
        const id = str(b.id) ?? `tool_${this.#calls.size + 1}`;
        const name = str(b.name) ?? "tool";
        this.#calls.set(id, { name, input: obj(b.input) });
        out.push(ev.toolCall(id, name, b.input ?? {}));
      }
    }
    return out;
  }

  #user(message: Record<string, unknown>, toolUseResult: Record<string, unknown>): SessionEventInput[] {
    const out: SessionEventInput[] = [];
    for (const block of Array.isArray(message.content) ? message.content : []) {
      const b = obj(block);
      if (b.type !== "tool_result") continue;
      const id = str(b.tool_use_id) ?? "tool";
      const call = this.#calls.get(id);
      const name = call?.name ?? "tool";
      const ok = b.is_error !== true;
      const text = contentText(b.content);
      out.push(ok ? ev.toolResult(id, name, true, text) : ev.toolResult(id, name, false, undefined, text ?? "the tool failed"));
      const key = FILE_TOOLS[name];
      const path = key ? str(call?.input[key]) : undefined;
      if (ok && path) {
        const created = toolUseResult.type === "create" && (str(toolUseResult.filePath) ?? path) === path;
        const change: FileChange = created ? "add" : "modify";
        const rel = inWorktree(this.#cwd, path);
        this.#files.add(rel);
        out.push(ev.fileEdit(rel, change));
      }
    }
    return out;
  }

  #finish(event: Record<string, unknown>): SessionEventInput[] {
    this.#result = event;
    const modelUsage = Object.keys(obj(event.modelUsage));
    if (modelUsage.length > 0) this.#model = modelUsage[0];
    for (const d of Array.isArray(event.permission_denials) ? event.permission_denials : []) {
      this.#notes.push(`claude was not allowed to use ${str(obj(d).tool_name) ?? "a tool"}`);
    }
    const u = this.#usage();
    return [ev.usage(u.tokensIn, u.tokensOut, u.costUsd, this.#model)];
  }

  #usage(): HarnessOutcome["usage"] {
    const u = obj(this.#result?.usage);
    return {
      tokensIn: num(u.input_tokens) + num(u.cache_creation_input_tokens) + num(u.cache_read_input_tokens),
      tokensOut: num(u.output_tokens),
      costUsd: num(this.#result?.total_cost_usd),
    };
  }

  outcome(): HarnessOutcome {
    const r = this.#result;
    const ok = r !== undefined && r.is_error !== true && (r.subtype === undefined || r.subtype === "success");
    const finalText = str(r?.result) ?? this.#lastText;
    const why = [
      str(r?.terminal_reason) ?? (r?.subtype !== "success" ? str(r?.subtype) : undefined),
      r?.api_error_status ? `model API status ${String(r.api_error_status)}` : undefined,
    ]
      .filter(Boolean)
      .join(", ");
    const error = ok
      ? undefined
      : r === undefined
        ? "claude ended without a result"
        : `claude failed${finalText ? `: ${finalText}` : ""}${why ? ` (${why})` : ""}`;
    return {
      ok,
      finalText,
      ...(error ? { error } : {}),
      usage: this.#usage(),
      ...(this.#model ? { model: this.#model } : {}),
      files: this.#files.list,
      notes: this.#notes,
    };
  }
}

export class ClaudeProvider extends ConfiguredProvider implements HarnessProvider {
  readonly name = "claude";
  readonly packageName = "@anthropic-ai/claude-code";
  readonly defaultBaseUrl = "https://api.anthropic.com";
  readonly requiresApiKey = true;

  constructor(config: AgentHubConfig) {
    super(config, "CLAUDE", (k) => (k === "ANTHROPIC_AUTH_TOKEN" ? "ANTHROPIC_AUTH_TOKEN" : "ANTHROPIC_API_KEY"));
  }

  async prepare(input: PrepareInput): Promise<Invocation> {
    return {
      args: [
        "-p",
        "--output-format",
        "stream-json",
        "--verbose",
        "--include-partial-messages",
        "--permission-mode",
        "acceptEdits",
        // Variadic options take `=`: a following argument would be read as one more tool name.
        `--allowedTools=${ALLOWED_TOOLS.join(",")}`,
        `--disallowedTools=${DISALLOWED_TOOLS.join(",")}`,
        ...(input.model ? ["--model", input.model] : []),
        "--append-system-prompt",
        input.system,
        "--",
        input.user,
      ],
      env: {
        ...(input.baseUrl ? { ANTHROPIC_BASE_URL: input.baseUrl } : {}),
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
        CLAUDE_CODE_MAX_RETRIES: "0",
      },
    };
  }

  normalizer(cwd: string): Normalizer {
    return new ClaudeNormalizer(cwd);
  }
}
