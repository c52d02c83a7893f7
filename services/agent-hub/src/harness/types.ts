import type { AgentHubConfig } from "@orch/config";
import type { SessionEventInput } from "@orch/contracts";

/**
 * The harness contract (seed 003's `orchestrator-harness`): a coding-agent CLI run once per session
 * as a child process, unattended, in the session's worktree, printing JSON lines that a normalizer
 * turns into session events. A provider knows one CLI: how to configure it (files in a temporary
 * HOME, a few environment variables), how to call it, and how to read what it prints. Everything
 * else (process control, the environment, timeouts, redaction, the step's result) is the
 * executor's and is the same for every CLI.
 */

export const HARNESS_NAMES = ["codex", "claude", "opencode"] as const;
export type HarnessName = (typeof HARNESS_NAMES)[number];

/** What a run's configuration step gets. */
export interface PrepareInput {
  /** The run's temporary HOME (already created, removed after the run). */
  home: string;
  /** The worktree the CLI runs in. */
  cwd: string;
  /** The step's prompt; the system part separately for CLIs that take one. */
  system: string;
  user: string;
  /** A one-line name for the run (the step's title). */
  title: string;
  model?: string;
  /** The model server's base URL, when one is configured (else the CLI's hosted default). */
  baseUrl?: string;
  /** Whether the hub has a value for the provider's API key variable. */
  hasApiKey: boolean;
  /** The API key variable's name (`ORCH_<X>_API_KEY_ENV`). */
  apiKeyEnv: string;
}

export interface Invocation {
  args: string[];
  /** Variables the provider adds to the base environment (PATH, LANG, LC_ALL, TERM, HOME, TMPDIR). */
  env: Record<string, string>;
}

/** The outcome the CLI reported, once its output ended. */
export interface HarnessOutcome {
  /** Whether the CLI said it finished the task (its exit code is judged separately). */
  ok: boolean;
  /** The agent's final answer. */
  finalText: string;
  /** Why it failed, in the CLI's words, when it did. */
  error?: string;
  usage: { tokensIn: number; tokensOut: number; costUsd: number };
  model?: string;
  /** Files the agent created, changed or deleted, relative to the worktree, in order, once each. */
  files: string[];
  /** Things worth keeping in the step's notes (refused tool calls, the CLI's warnings). */
  notes: string[];
}

/**
 * Reads one CLI's JSON lines. Pure: it sees events and returns session events, nothing else, so it
 * is tested against recorded output. One instance per run.
 */
export interface Normalizer {
  /** One parsed line → the session events it stands for (possibly none). */
  push(event: Record<string, unknown>): SessionEventInput[];
  /** What the run amounted to, after the last line. */
  outcome(): HarnessOutcome;
}

export interface HarnessProvider {
  readonly name: HarnessName;
  /** The binary to run (a name looked up on PATH, or a path). */
  readonly binary: string;
  /** The npm package the CLI ships in, for the "not installed" message. */
  readonly packageName: string;
  /** The variable the API key is read from, in the hub's environment. */
  readonly apiKeyEnv: string;
  /** The variable the CLI gets it in (the same name, unless the CLI reads only fixed names). */
  readonly childKeyEnv: string;
  /** The configured model server, if any. */
  readonly baseUrl: string | undefined;
  /** The hosted API the CLI calls when no base URL is configured (what the LLM policy judges then). */
  readonly defaultBaseUrl: string;
  /** The model when neither the session nor the step names one. */
  readonly defaultModel: string | undefined;
  /** Whether a run cannot start without the API key (a CLI that refuses to start unauthenticated). */
  readonly requiresApiKey: boolean;
  /** Writes the run's configuration into `home` and says how to call the CLI. */
  prepare(input: PrepareInput): Promise<Invocation>;
  normalizer(cwd: string): Normalizer;
}

/**
 * What every provider reads from the configuration, by its key prefix (`ORCH_CODEX_BINARY`,
 * `ORCH_CLAUDE_API_KEY_ENV`, `ORCH_OPENCODE_MODEL`, …): the fields of `HarnessProvider` that are
 * settings rather than the CLI's own behaviour.
 */
export abstract class ConfiguredProvider {
  readonly binary: string;
  readonly apiKeyEnv: string;
  readonly childKeyEnv: string;
  readonly baseUrl: string | undefined;
  readonly defaultModel: string | undefined;

  protected constructor(config: AgentHubConfig, key: "CODEX" | "CLAUDE" | "OPENCODE", childKeyEnv?: (apiKeyEnv: string) => string) {
    this.binary = config[`ORCH_${key}_BINARY`];
    this.apiKeyEnv = config[`ORCH_${key}_API_KEY_ENV`];
    this.childKeyEnv = childKeyEnv ? childKeyEnv(this.apiKeyEnv) : this.apiKeyEnv;
    this.baseUrl = config[`ORCH_${key}_BASE_URL`];
    this.defaultModel = config[`ORCH_${key}_MODEL`];
  }
}
