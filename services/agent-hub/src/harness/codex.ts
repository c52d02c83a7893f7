import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { AgentHubConfig } from "@orch/config";
import type { SessionEventInput } from "@orch/contracts";
import { ev, FileList, inWorktree, num, obj, str, type FileChange } from "./events.js";
import { ConfiguredProvider, type HarnessOutcome, type HarnessProvider, type Invocation, type Normalizer, type PrepareInput } from "./types.js";

/**
 * Codex CLI (`@openai/codex`): `codex exec --json` in a sandbox that may write the worktree only.
 *
 * Configuration is `$CODEX_HOME/config.toml`: one model provider, `orch`, speaking the Responses
 * API (the only wire protocol Codex accepts) at `ORCH_CODEX_BASE_URL`, or OpenAI's own API when that
 * is unset, with its key in the variable `ORCH_CODEX_API_KEY_ENV` names (Codex reads it itself; left
 * out when the hub has no value, for servers that need none). Everything that would call anywhere
 * else is off: the plugin marketplace (a `git clone` from GitHub at start), remote model metadata,
 * the hosted web search tool, update checks, analytics. A failing model server is retried twice
 * (Codex's default is several times with backoff, and forever while it cannot connect): the
 * core retries the step with its own backoff.
 *
 * It prints `thread.started`, `turn.started`, `item.started` / `item.completed` (items
 * `agent_message`, `reasoning`, `command_execution`, `file_change`, `mcp_tool_call`, `web_search`,
 * `todo_list`, `error`), then `turn.completed` with the turn's usage, or `turn.failed`; `error`
 * lines come on their own. Usage is reported only in `turn.completed`.
 */

/** A TOML basic string (JSON's escapes are TOML's). */
const toml = (s: string): string => JSON.stringify(s);

export function codexConfigToml(input: Pick<PrepareInput, "model" | "baseUrl" | "hasApiKey" | "apiKeyEnv">, defaultBaseUrl: string): string {
  return [
    ...(input.model ? [`model = ${toml(input.model)}`] : []),
    'model_provider = "orch"',
    "check_for_update_on_startup = false",
    'web_search = "disabled"',
    "",
    "[analytics]",
    "enabled = false",
    "",
    "[features]",
    "plugins = false",
    "remote_plugin = false",
    "plugin_sharing = false",
    "remote_models = false",
    "",
    "[model_providers.orch]",
    'name = "orch"',
    `base_url = ${toml(input.baseUrl ?? defaultBaseUrl)}`,
    ...(input.hasApiKey ? [`env_key = ${toml(input.apiKeyEnv)}`] : []),
    'wire_api = "responses"',
    "request_max_retries = 2",
    "stream_max_retries = 2",
    "",
  ].join("\n");
}

const CHANGE: Record<string, FileChange> = { add: "add", update: "modify", delete: "delete" };

/** The tool names session events use for Codex's item types. */
function toolOf(item: Record<string, unknown>): { name: string; args: unknown } | undefined {
  switch (item.type) {
    case "command_execution":
      return { name: "shell", args: { command: item.command } };
    case "file_change":
      return { name: "apply_patch", args: { changes: item.changes } };
    case "mcp_tool_call":
      return { name: `${str(item.server) ?? "mcp"}.${str(item.tool) ?? "tool"}`, args: item.arguments ?? {} };
    case "web_search":
      return { name: "web_search", args: { query: item.query } };
    default:
      return undefined;
  }
}

export class CodexNormalizer implements Normalizer {
  readonly #cwd: string;
  readonly #called = new Set<string>();
  readonly #files = new FileList();
  readonly #notes: string[] = [];
  #final = "";
  #tokensIn = 0;
  #tokensOut = 0;
  #completed = false;
  #failure: string | undefined;
  #lastError: string | undefined;

  constructor(cwd: string) {
    this.#cwd = cwd;
  }

  push(event: Record<string, unknown>): SessionEventInput[] {
    switch (event.type) {
      case "item.started":
      case "item.updated":
      case "item.completed":
        return this.#item(obj(event.item), event.type === "item.completed");
      case "turn.completed": {
        const u = obj(event.usage);
        const tokensIn = num(u.input_tokens);
        const tokensOut = num(u.output_tokens);
        this.#tokensIn += tokensIn;
        this.#tokensOut += tokensOut;
        this.#completed = true;
        return [ev.usage(tokensIn, tokensOut)];
      }
      case "turn.failed":
        this.#failure = str(obj(event.error).message) ?? "the turn failed";
        return [ev.log("error", this.#failure)];
      case "error":
        this.#lastError = str(event.message) ?? "error";
        return [ev.log("warn", this.#lastError)];
      default:
        return [];
    }
  }

  #item(item: Record<string, unknown>, done: boolean): SessionEventInput[] {
    const id = str(item.id) ?? "item";
    const out: SessionEventInput[] = [];
    const tool = toolOf(item);
    if (tool) {
      if (!this.#called.has(id)) {
        this.#called.add(id);
        out.push(ev.toolCall(id, tool.name, tool.args));
      }
      if (!done) return out;
      const status = str(item.status);
      if (item.type === "command_execution") {
        const ok = status === "completed" && (item.exit_code === 0 || item.exit_code === undefined);
        out.push(ev.toolResult(id, tool.name, ok, str(item.aggregated_output), ok ? undefined : `exit code ${String(item.exit_code ?? status)}`));
      } else if (item.type === "file_change") {
        const ok = status === "completed";
        out.push(ev.toolResult(id, tool.name, ok, undefined, ok ? undefined : `patch ${status ?? "failed"}`));
        if (ok) {
          for (const c of Array.isArray(item.changes) ? item.changes : []) {
            const path = str(obj(c).path);
            if (!path) continue;
            const rel = inWorktree(this.#cwd, path);
            this.#files.add(rel);
            out.push(ev.fileEdit(rel, CHANGE[str(obj(c).kind) ?? ""] ?? "modify"));
          }
        }
      } else if (item.type === "mcp_tool_call") {
        const error = str(obj(item.error).message);
        out.push(ev.toolResult(id, tool.name, status === "completed" && !error, item.result === undefined ? undefined : JSON.stringify(item.result), error));
      } else {
        out.push(ev.toolResult(id, tool.name, status !== "failed"));
      }
      return out;
    }
    if (!done) return out;
    switch (item.type) {
      case "agent_message": {
        const text = str(item.text) ?? "";
        this.#final = text;
        return [ev.message(text)];
      }
      case "reasoning":
        return str(item.text) ? [ev.delta(str(item.text)!, "reasoning")] : [];
      case "error": {
        const msg = str(item.message) ?? "error";
        this.#notes.push(msg);
        return [ev.log("warn", msg)];
      }
      default:
        return [];
    }
  }

  outcome(): HarnessOutcome {
    const ok = this.#completed && this.#failure === undefined;
    const error = ok ? undefined : (this.#failure ?? this.#lastError ?? "codex ended without finishing its turn");
    return {
      ok,
      finalText: this.#final,
      ...(error ? { error } : {}),
      usage: { tokensIn: this.#tokensIn, tokensOut: this.#tokensOut, costUsd: 0 },
      files: this.#files.list,
      notes: this.#notes,
    };
  }
}

export class CodexProvider extends ConfiguredProvider implements HarnessProvider {
  readonly name = "codex";
  readonly packageName = "@openai/codex";
  readonly defaultBaseUrl = "https://api.openai.com/v1";
  readonly requiresApiKey = false;

  constructor(config: AgentHubConfig) {
    super(config, "CODEX");
  }

  async prepare(input: PrepareInput): Promise<Invocation> {
    await writeFile(join(input.home, "config.toml"), codexConfigToml(input, this.defaultBaseUrl));
    return {
      // `exec` never asks for approval; the sandbox lets it write the worktree (and temp dirs) only.
      args: ["exec", "--json", "--sandbox", "workspace-write", "--skip-git-repo-check", "--", `${input.system}\n\n${input.user}`],
      env: { CODEX_HOME: input.home },
    };
  }

  normalizer(cwd: string): Normalizer {
    return new CodexNormalizer(cwd);
  }
}
