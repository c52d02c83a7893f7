import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { AgentHubConfig } from "@orch/config";
import type { SessionEventInput } from "@orch/contracts";
import { HarnessError } from "./errors.js";
import { ev, FileList, inWorktree, num, obj, str } from "./events.js";
import { ConfiguredProvider, type HarnessOutcome, type HarnessProvider, type Invocation, type Normalizer, type PrepareInput } from "./types.js";

/**
 * OpenCode (`opencode-ai`): `opencode run --format json`.
 *
 * Configuration is `$HOME/.config/opencode/opencode.json`: one provider, `orch`, through the
 * OpenAI-compatible SDK built into the binary, at `ORCH_OPENCODE_BASE_URL` (OpenAI's API when
 * unset), its key read from the variable `ORCH_OPENCODE_API_KEY_ENV` names, serving the one model
 * the run uses (OpenCode knows no model it is not told about, so a model is required). Edits and
 * shell commands are allowed (`ask` would be refused unattended), web fetches are not; sharing and
 * autoupdate are off. Environment: `OPENCODE_DISABLE_MODELS_FETCH`, `OPENCODE_DISABLE_AUTOUPDATE`,
 * `OPENCODE_DISABLE_LSP_DOWNLOAD` (no downloads from models.dev, GitHub or npm at run time), and
 * `npm_config_offline=true`: OpenCode installs `@opencode-ai/plugin` into each of its config
 * directories in the background, from the npm registry; offline, that fails at once and quietly.
 * `--title` names the session, which saves the side request that would generate a title;
 * `--print-logs` sends its log to stderr (proof of life while it starts, which takes seconds).
 *
 * It prints `step_start`, `tool_use` (a finished call: `part.tool`, `part.callID`, `part.state
 * {status, input, output | error, metadata}`), `text` and `reasoning` parts, `step_finish` (the
 * step's `tokens {input, output, reasoning, cache {read, write}}` and `cost`) and `error`. There is
 * no final event: the run ends when the process exits. Usage is the sum over `step_finish`.
 */

/** What the `orch` provider declares about its model (OpenCode needs limits to budget its context). */
const MODEL_LIMITS = { context: 128_000, output: 16_384 };

export function opencodeConfig(
  input: Pick<PrepareInput, "baseUrl" | "hasApiKey" | "apiKeyEnv">,
  model: string,
  defaultBaseUrl: string,
): Record<string, unknown> {
  return {
    $schema: "https://opencode.ai/config.json",
    model: `orch/${model}`,
    small_model: `orch/${model}`,
    autoupdate: false,
    share: "disabled",
    permission: { edit: "allow", bash: "allow", webfetch: "deny" },
    provider: {
      orch: {
        npm: "@ai-sdk/openai-compatible",
        name: "orch",
        options: { baseURL: input.baseUrl ?? defaultBaseUrl, ...(input.hasApiKey ? { apiKey: `{env:${input.apiKeyEnv}}` } : {}) },
        models: { [model]: { name: model, tool_call: true, limit: MODEL_LIMITS } },
      },
    },
  };
}

/** Tools that write a file (`filePath` in their input). */
const FILE_TOOLS = new Set(["write", "edit", "multiedit"]);

export class OpenCodeNormalizer implements Normalizer {
  readonly #cwd: string;
  readonly #files = new FileList();
  #final = "";
  #tokensIn = 0;
  #tokensOut = 0;
  #cost = 0;
  #error: string | undefined;

  constructor(cwd: string) {
    this.#cwd = cwd;
  }

  push(event: Record<string, unknown>): SessionEventInput[] {
    const part = obj(event.part);
    switch (event.type) {
      case "tool_use":
        return this.#tool(part);
      case "text": {
        const text = str(part.text) ?? "";
        if (!text) return [];
        this.#final = text;
        return [ev.message(text)];
      }
      case "reasoning":
        return str(part.text) ? [ev.delta(str(part.text)!, "reasoning")] : [];
      case "step_finish": {
        const t = obj(part.tokens);
        const cache = obj(t.cache);
        const tokensIn = num(t.input) + num(cache.read) + num(cache.write);
        const tokensOut = num(t.output) + num(t.reasoning);
        const cost = num(part.cost);
        this.#tokensIn += tokensIn;
        this.#tokensOut += tokensOut;
        this.#cost += cost;
        return [ev.usage(tokensIn, tokensOut, cost)];
      }
      case "error": {
        const e = obj(event.error);
        this.#error = str(obj(e.data).message) ?? str(e.message) ?? str(e.name) ?? "opencode reported an error";
        return [ev.log("error", this.#error)];
      }
      default:
        return [];
    }
  }

  #tool(part: Record<string, unknown>): SessionEventInput[] {
    const state = obj(part.state);
    const id = str(part.callID) ?? str(part.id) ?? "tool";
    const name = str(part.tool) ?? "tool";
    const input = obj(state.input);
    const out: SessionEventInput[] = [ev.toolCall(id, name, state.input ?? {})];
    const ok = state.status === "completed";
    out.push(
      ok
        ? ev.toolResult(id, name, true, str(state.output))
        : ev.toolResult(id, name, false, undefined, str(state.error) ?? `the tool ${str(state.status) ?? "failed"}`),
    );
    const path = str(input.filePath);
    if (ok && FILE_TOOLS.has(name) && path) {
      const rel = inWorktree(this.#cwd, path);
      this.#files.add(rel);
      out.push(ev.fileEdit(rel, name === "write" && obj(state.metadata).exists === false ? "add" : "modify"));
    }
    return out;
  }

  outcome(): HarnessOutcome {
    return {
      ok: this.#error === undefined,
      finalText: this.#final,
      ...(this.#error ? { error: this.#error } : {}),
      usage: { tokensIn: this.#tokensIn, tokensOut: this.#tokensOut, costUsd: this.#cost },
      files: this.#files.list,
      notes: [],
    };
  }
}

export class OpenCodeProvider extends ConfiguredProvider implements HarnessProvider {
  readonly name = "opencode";
  readonly packageName = "opencode-ai";
  readonly defaultBaseUrl = "https://api.openai.com/v1";
  readonly requiresApiKey = false;

  constructor(config: AgentHubConfig) {
    super(config, "OPENCODE");
  }

  async prepare(input: PrepareInput): Promise<Invocation> {
    if (!input.model) throw new HarnessError("opencode needs a model: set ORCH_OPENCODE_MODEL (or the step's model)", false);
    const dir = join(input.home, ".config", "opencode");
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, "opencode.json"), JSON.stringify(opencodeConfig(input, input.model, this.defaultBaseUrl), null, 2));
    return {
      args: [
        "run",
        "--format",
        "json",
        "--print-logs",
        "--log-level",
        "INFO",
        "--thinking",
        "--model",
        `orch/${input.model}`,
        `--title=${input.title}`,
        "--",
        `${input.system}\n\n${input.user}`,
      ],
      env: {
        OPENCODE_DISABLE_MODELS_FETCH: "1",
        OPENCODE_DISABLE_AUTOUPDATE: "1",
        OPENCODE_DISABLE_LSP_DOWNLOAD: "1",
        npm_config_offline: "true",
      },
    };
  }

  normalizer(cwd: string): Normalizer {
    return new OpenCodeNormalizer(cwd);
  }
}
