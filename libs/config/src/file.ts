import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, extname, join } from "node:path";
import { parse as parseToml } from "smol-toml";
import { parse as parseYaml } from "yaml";

/**
 * The configuration file: settings that are not secrets, in TOML (seed 003's `config.toml`), YAML or
 * JSON. Each key maps to one environment variable, and the environment wins over the file, so the
 * services still validate one schema over one flat set of names.
 *
 * Which file: `ORCH_CONFIG` (or seed 003's `ORCHESTRATOR_CONFIG`); created with the defaults when it
 * names a file that does not exist (seed 003's first run). Unset: `~/.config/orchestrator/config.toml`,
 * which the launchers (`npm start`, `orch start`) create with the defaults on first run; a service
 * started on its own reads it when it exists. `ORCH_CONFIG=none` reads no file.
 */

type Kind = "string" | "bool" | "int" | "list" | "secs" | "json";

/** Dotted file key → environment variable. */
export const FILE_KEYS: Readonly<Record<string, { env: string; kind: Kind }>> = Object.freeze({
  // seed 003's top level
  workspace: { env: "ORCH_WORKSPACE", kind: "string" },
  worktrees_root: { env: "ORCH_WORKTREES_ROOT", kind: "string" },
  harness_provider: { env: "ORCH_AGENT_EXECUTOR", kind: "string" },
  ticketing_provider: { env: "ORCH_TICKETING_PROVIDER", kind: "string" },
  vcs_provider: { env: "ORCH_VCS_PROVIDER", kind: "string" },
  // seed 003's [git]
  "git.binary": { env: "ORCH_GIT_BINARY", kind: "string" },
  "git.allow_force_push": { env: "ORCH_GIT_ALLOW_FORCE_PUSH", kind: "bool" },
  "git.allow_delete_unmerged_branches": { env: "ORCH_GIT_ALLOW_DELETE_UNMERGED_BRANCHES", kind: "bool" },
  "git.allow_destructive_automation": { env: "ORCH_GIT_ALLOW_DESTRUCTIVE_AUTOMATION", kind: "bool" },
  "git.author_name": { env: "ORCH_GIT_AUTHOR_NAME", kind: "string" },
  "git.author_email": { env: "ORCH_GIT_AUTHOR_EMAIL", kind: "string" },
  "git.keep_failed_worktrees": { env: "ORCH_KEEP_FAILED_WORKTREES", kind: "bool" },
  // seed 003's repository hosts
  vcs_repo_provider: { env: "ORCH_VCS_REPO_PROVIDER", kind: "string" },
  "github.binary": { env: "ORCH_GH_BINARY", kind: "string" },
  "github.api_url": { env: "ORCH_GITHUB_API_URL", kind: "string" },
  "gitlab.api_url": { env: "ORCH_GITLAB_API_URL", kind: "string" },
  // seed 003's [linear] and [shortcut]: ticket intake (the core's policy; the agent hub's API URLs)
  "linear.api_url": { env: "ORCH_LINEAR_API_URL", kind: "string" },
  "linear.sync_interval_secs": { env: "ORCH_LINEAR_SYNC_INTERVAL_SECS", kind: "int" },
  "linear.fetch_limit": { env: "ORCH_LINEAR_FETCH_LIMIT", kind: "int" },
  "linear.sync_assigned_to_me": { env: "ORCH_LINEAR_SYNC_ASSIGNED_TO_ME", kind: "bool" },
  "linear.sync_states": { env: "ORCH_LINEAR_SYNC_STATES", kind: "list" },
  "linear.workflow_comment_summaries": { env: "ORCH_LINEAR_WORKFLOW_COMMENT_SUMMARIES", kind: "bool" },
  "linear.workflow_attach_pr_links": { env: "ORCH_LINEAR_WORKFLOW_ATTACH_PR_LINKS", kind: "bool" },
  "linear.workflow_state_map": { env: "ORCH_LINEAR_WORKFLOW_STATE_MAP", kind: "json" },
  "shortcut.api_url": { env: "ORCH_SHORTCUT_API_URL", kind: "string" },
  "shortcut.fetch_limit": { env: "ORCH_SHORTCUT_FETCH_LIMIT", kind: "int" },
  // GitHub's and GitLab's issues as trackers: which repository, and the label and/or assignee that select its issues
  "github_issues.repository": { env: "ORCH_GITHUB_ISSUES_REPOSITORY", kind: "string" },
  "github_issues.label": { env: "ORCH_GITHUB_ISSUES_LABEL", kind: "string" },
  "github_issues.assignee": { env: "ORCH_GITHUB_ISSUES_ASSIGNEE", kind: "string" },
  "gitlab_issues.project": { env: "ORCH_GITLAB_ISSUES_PROJECT", kind: "string" },
  "gitlab_issues.label": { env: "ORCH_GITLAB_ISSUES_LABEL", kind: "string" },
  "gitlab_issues.assignee": { env: "ORCH_GITLAB_ISSUES_ASSIGNEE", kind: "string" },
  // seed 003's event store: JetStream's, on the embedded nats-server (`npm start`, `orch start`)
  event_store_path: { env: "ORCH_NATS_STORE_DIR", kind: "string" },
  "database.synchronous": { env: "ORCH_NATS_SYNC", kind: "string" },
  "database.chunk_event_flush_ms": { env: "ORCH_SESSION_DELTA_FLUSH_MS", kind: "int" },
  // ticket intake beyond seed 003: where its runs go, its backoff, circuit breaker and quarantine
  "intake.enabled": { env: "ORCH_TICKET_INTAKE_ENABLED", kind: "bool" },
  "intake.project": { env: "ORCH_TICKET_INTAKE_PROJECT", kind: "string" },
  "intake.definition": { env: "ORCH_TICKET_INTAKE_DEFINITION", kind: "string" },
  "intake.accept_event": { env: "ORCH_TICKET_INTAKE_ACCEPT_EVENT", kind: "string" },
  "intake.backoff_ms": { env: "ORCH_TICKET_INTAKE_BACKOFF_MS", kind: "int" },
  "intake.backoff_max_ms": { env: "ORCH_TICKET_INTAKE_BACKOFF_MAX_MS", kind: "int" },
  "intake.breaker_failures": { env: "ORCH_TICKET_INTAKE_BREAKER_FAILURES", kind: "int" },
  "intake.breaker_cooldown_ms": { env: "ORCH_TICKET_INTAKE_BREAKER_COOLDOWN_MS", kind: "int" },
  "intake.quarantine_after": { env: "ORCH_TICKET_INTAKE_QUARANTINE_AFTER", kind: "int" },
  "intake.write_abandon_after": { env: "ORCH_TICKET_INTAKE_WRITE_ABANDON_AFTER", kind: "int" },
  "intake.update_tries": { env: "ORCH_TICKET_UPDATE_TRIES", kind: "int" },
  "intake.update_backoff_ms": { env: "ORCH_TICKET_UPDATE_BACKOFF_MS", kind: "int" },
  // seed 003's [runtime]
  "runtime.allow_unsafe_command_paths": { env: "ORCH_ALLOW_UNSAFE_COMMAND_PATHS", kind: "bool" },
  "runtime.harness_server_startup_timeout_secs": { env: "ORCH_HARNESS_STARTUP_TIMEOUT_MS", kind: "secs" },
  "runtime.harness_log_raw_events": { env: "ORCH_HARNESS_LOG_RAW_EVENTS", kind: "bool" },
  "runtime.harness_log_normalized_events": { env: "ORCH_HARNESS_LOG_NORMALIZED_EVENTS", kind: "bool" },
  "runtime.codex_binary": { env: "ORCH_CODEX_BINARY", kind: "string" },
  "runtime.opencode_binary": { env: "ORCH_OPENCODE_BINARY", kind: "string" },
  "runtime.claude_binary": { env: "ORCH_CLAUDE_BINARY", kind: "string" },
  "runtime.harness_timeout_secs": { env: "ORCH_HARNESS_TIMEOUT_MS", kind: "secs" },
  "runtime.pr_pipeline_poll_interval_secs": { env: "ORCH_PR_POLL_INTERVAL_SECS", kind: "int" },
  // agents and routing
  "agents.executor": { env: "ORCH_AGENT_EXECUTOR", kind: "string" },
  "agents.concurrency": { env: "ORCH_AGENT_CONCURRENCY", kind: "int" },
  "agents.roles.architect": { env: "ORCH_AGENT_EXECUTOR_ARCHITECT", kind: "string" },
  "agents.roles.implementer": { env: "ORCH_AGENT_EXECUTOR_IMPLEMENTER", kind: "string" },
  "agents.roles.reviewer": { env: "ORCH_AGENT_EXECUTOR_REVIEWER", kind: "string" },
  "agents.roles.tester": { env: "ORCH_AGENT_EXECUTOR_TESTER", kind: "string" },
  "agents.roles.maintainer": { env: "ORCH_AGENT_EXECUTOR_MAINTAINER", kind: "string" },
  "agents.roles.qa": { env: "ORCH_AGENT_EXECUTOR_QA", kind: "string" },
  "agents.executor_concurrency": { env: "ORCH_EXECUTOR_CONCURRENCY", kind: "string" },
  "agents.provider_concurrency": { env: "ORCH_PROVIDER_CONCURRENCY", kind: "string" },
  // the local LLM
  "llm.api": { env: "LOCAL_LLM_API", kind: "string" },
  "llm.url": { env: "LOCAL_LLM_URL", kind: "string" },
  "llm.model": { env: "LOCAL_LLM_MODEL", kind: "string" },
  "llm.models.architect": { env: "LOCAL_LLM_MODEL_ARCHITECT", kind: "string" },
  "llm.models.implementer": { env: "LOCAL_LLM_MODEL_IMPLEMENTER", kind: "string" },
  "llm.models.reviewer": { env: "LOCAL_LLM_MODEL_REVIEWER", kind: "string" },
  "llm.models.tester": { env: "LOCAL_LLM_MODEL_TESTER", kind: "string" },
  "llm.models.maintainer": { env: "LOCAL_LLM_MODEL_MAINTAINER", kind: "string" },
  "llm.models.qa": { env: "LOCAL_LLM_MODEL_QA", kind: "string" },
  "llm.timeout_ms": { env: "LOCAL_LLM_TIMEOUT_MS", kind: "int" },
  "llm.error_mode": { env: "LOCAL_LLM_ERROR_MODE", kind: "string" },
  "llm.policy": { env: "ORCH_LLM_POLICY", kind: "string" },
  "llm.allow_hosted": { env: "ALLOW_HOSTED_LLM", kind: "bool" },
  "llm.allowed_hosts": { env: "LOCAL_LLM_ALLOWED_HOSTS", kind: "list" },
  "llm.response_format": { env: "ORCH_LLM_RESPONSE_FORMAT", kind: "string" },
  "llm.check": { env: "ORCH_CHECK_LLM", kind: "bool" },
  // tools
  "tools.allowlist": { env: "ORCH_TOOL_ALLOWLIST", kind: "list" },
  "tools.max_iterations": { env: "ORCH_TOOL_MAX_ITERATIONS", kind: "int" },
  "tools.cwd": { env: "ORCH_TOOL_CWD", kind: "string" },
  "tools.allowed_roots": { env: "ORCH_TOOL_ALLOWED_ROOTS", kind: "list" },
  "tools.timeout_ms": { env: "ORCH_TOOL_TIMEOUT_MS", kind: "int" },
  "tools.max_output_bytes": { env: "ORCH_TOOL_MAX_OUTPUT_BYTES", kind: "int" },
  // harnesses' model servers (their keys stay in the environment)
  "harness.codex.base_url": { env: "ORCH_CODEX_BASE_URL", kind: "string" },
  "harness.codex.model": { env: "ORCH_CODEX_MODEL", kind: "string" },
  "harness.codex.api_key_env": { env: "ORCH_CODEX_API_KEY_ENV", kind: "string" },
  "harness.claude.base_url": { env: "ORCH_CLAUDE_BASE_URL", kind: "string" },
  "harness.claude.model": { env: "ORCH_CLAUDE_MODEL", kind: "string" },
  "harness.claude.api_key_env": { env: "ORCH_CLAUDE_API_KEY_ENV", kind: "string" },
  "harness.opencode.base_url": { env: "ORCH_OPENCODE_BASE_URL", kind: "string" },
  "harness.opencode.model": { env: "ORCH_OPENCODE_MODEL", kind: "string" },
  "harness.opencode.api_key_env": { env: "ORCH_OPENCODE_API_KEY_ENV", kind: "string" },
  // the supervisor (seed 003's [supervisor]; its key stays in the environment)
  "supervisor.model": { env: "ORCH_SUPERVISOR_MODEL", kind: "string" },
  "supervisor.base_url": { env: "ORCH_SUPERVISOR_BASE_URL", kind: "string" },
  "supervisor.openrouter_base_url": { env: "ORCH_SUPERVISOR_BASE_URL", kind: "string" },
  "supervisor.timeout_ms": { env: "ORCH_SUPERVISOR_TIMEOUT_MS", kind: "int" },
  // seed 003's [ui]: the terminal UI's (orch tui)
  "ui.theme": { env: "ORCH_UI_THEME", kind: "string" },
  "ui.ticket_picker_priority_states": { env: "ORCH_UI_TICKET_PICKER_PRIORITY_STATES", kind: "list" },
  "ui.transcript_line_limit": { env: "ORCH_UI_TRANSCRIPT_LINE_LIMIT", kind: "int" },
  "ui.background_session_refresh_secs": { env: "ORCH_UI_BACKGROUND_SESSION_REFRESH_SECS", kind: "int" },
  "ui.session_info_background_refresh_secs": { env: "ORCH_UI_SESSION_INFO_REFRESH_SECS", kind: "int" },
  // sessions
  "sessions.heartbeat_ms": { env: "ORCH_SESSION_HEARTBEAT_MS", kind: "int" },
  "sessions.timeout_ms": { env: "ORCH_SESSION_TIMEOUT_MS", kind: "int" },
  "sessions.kill_grace_ms": { env: "ORCH_SESSION_KILL_GRACE_MS", kind: "int" },
});

/**
 * Seed 003 keys that name a part this design does not have: a file with them loads (seed 003's
 * example does), each is refused (not applied) and the reason is logged at start. Never silent.
 */
export const NOT_APPLICABLE: Readonly<Record<string, string>> = Object.freeze({
  "database.max_connections": "there is no database connection pool: each service holds one NATS connection, and NATS JetStream is the store (ORCH_NATS_URL)",
  "database.busy_timeout_ms": "there is no SQLite file to wait on a lock for: JetStream orders concurrent writes itself (compare-and-set on a run's revision)",
  "database.wal_enabled": "JetStream's file store is always an append-only log; there is nothing to switch",
  "runtime.opencode_server_base_url":
    "each OpenCode session runs its own `opencode run` process in its worktree (no shared `opencode serve`); its model server is harness.opencode.base_url",
});

/** A key of the file that was read and not applied, and why. */
export interface RefusedKey {
  key: string;
  reason: string;
}

export interface ConfigFile {
  path: string;
  /** Environment variables the file sets. */
  values: Record<string, string>;
  /** Keys read and not applied, each with its reason (logged at start). */
  refused: RefusedKey[];
  /** What is wrong with the file's keys (unknown, wrong type): reported with the schema's problems, in one message. */
  problems: string[];
  /** Whether the file was created with the defaults just now. */
  created: boolean;
}

export const DEFAULT_CONFIG_TOML = `# Orchestrator configuration (non-secret settings; API keys stay in the environment).
# Every key maps to an environment variable, which wins over this file: see docs/configuration.md.

# workspace = "~/.local/share/orchestrator/workspace"   # ORCH_WORKSPACE
# worktrees_root = "<workspace>/worktrees"               # ORCH_WORKTREES_ROOT
# vcs_repo_provider = "vcs_repos.github_rest"            # ORCH_VCS_REPO_PROVIDER: github_rest | github_gh_cli (GitLab: gitlab_rest)
# ticketing_provider = "ticketing.linear"                # ORCH_TICKETING_PROVIDER: ticketing.linear | ticketing.shortcut | ticketing.github_issues | ticketing.gitlab_issues
# vcs_provider = "vcs.git_cli"                           # ORCH_VCS_PROVIDER: vcs.git_cli
# Forge tokens stay in the environment: GITHUB_TOKEN or GH_TOKEN, GITLAB_TOKEN.

# event_store_path = "~/.local/share/orchestrator/nats"  # ORCH_NATS_STORE_DIR: the embedded nats-server's JetStream store

[agents]
# executor = "local"            # ORCH_AGENT_EXECUTOR: stub (npm start's default: offline, no model) | local | codex | claude | opencode

[agents.roles]
# implementer = "codex"         # ORCH_AGENT_EXECUTOR_IMPLEMENTER, and so on per role

[llm]
api = "ollama"                  # LOCAL_LLM_API: ollama | openai
# url = "http://localhost:11434"
model = "llama3.1:8b"
policy = "oss"                  # ORCH_LLM_POLICY: oss | hosted | locked
response_format = "text"        # ORCH_LLM_RESPONSE_FORMAT: text | structured-json

[tools]
allowlist = []                  # ORCH_TOOL_ALLOWLIST, e.g. ["rg", "ls", "cat", "read_file", "write_file"]

[git]
binary = "git"
allow_delete_unmerged_branches = false
allow_destructive_automation = false
allow_force_push = false

[github]
binary = "gh"                   # ORCH_GH_BINARY, for vcs_repos.github_gh_cli
# api_url = "https://api.github.com"   # ORCH_GITHUB_API_URL (GitHub Enterprise: https://<host>/api/v3)

# [gitlab]
# api_url = "https://gitlab.com/api/v4" # ORCH_GITLAB_API_URL

[supervisor]
# The model you ask about a run (POST /api/v1/runs/{id}/ask, "orch ask"). Unset: the local LLM above
# (Ollama serves an OpenAI-compatible /v1). A hosted endpoint needs policy = "hosted" (or allow_hosted);
# its key stays in the environment: ORCH_SUPERVISOR_API_KEY, or OPENROUTER_API_KEY for openrouter.ai.
# model = "c/claude-haiku-4.5"                          # ORCH_SUPERVISOR_MODEL
# openrouter_base_url = "https://openrouter.ai/api/v1"  # ORCH_SUPERVISOR_BASE_URL

[runtime]
allow_unsafe_command_paths = false   # ORCH_ALLOW_UNSAFE_COMMAND_PATHS: programs below must be bare names or plain absolute paths
harness_server_startup_timeout_secs = 10
harness_log_raw_events = false
harness_log_normalized_events = false
codex_binary = "codex"
opencode_binary = "opencode"
claude_binary = "claude"

[database]                      # seed 003's store settings that apply to JetStream's
synchronous = "NORMAL"          # ORCH_NATS_SYNC: FULL | EXTRA fsync every write (embedded nats-server 2.10+); NORMAL | OFF do not
chunk_event_flush_ms = 100      # ORCH_SESSION_DELTA_FLUSH_MS: an agent's streamed text, gathered into one transcript event

[ui]                            # the terminal UI (orch tui)
theme = "nord"                  # ORCH_UI_THEME: nord | dark | light
ticket_picker_priority_states = ["In Progress", "Final Approval", "Todo", "Backlog"]
transcript_line_limit = 100
background_session_refresh_secs = 15
session_info_background_refresh_secs = 15
`;

export class ConfigFileError extends Error {
  override readonly name = "ConfigFileError";
  readonly code = "INVALID_CONFIG_FILE";
  constructor(
    readonly path: string,
    readonly problems: string[],
  ) {
    super(`${path}: ${problems.join("; ")}`);
  }
}

function flatten(o: unknown, prefix = "", out: Record<string, unknown> = {}): Record<string, unknown> {
  if (o && typeof o === "object" && !Array.isArray(o) && !(o instanceof Date)) {
    for (const [k, v] of Object.entries(o)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else if (prefix) out[prefix] = o;
  return out;
}

function convert(key: string, kind: Kind, v: unknown): string {
  switch (kind) {
    case "bool":
      if (typeof v === "boolean") return String(v);
      throw new Error(`${key} must be true or false`);
    case "int":
      if (typeof v === "number" && Number.isInteger(v)) return String(v);
      if (typeof v === "bigint") return v.toString();
      throw new Error(`${key} must be an integer`);
    case "secs":
      if (typeof v === "number" && v >= 0) return String(Math.round(v * 1000));
      if (typeof v === "bigint") return (v * 1000n).toString();
      throw new Error(`${key} must be a number of seconds`);
    case "json":
      // Tables in a list (seed 003's workflow_state_map): carried as JSON, validated by the schema.
      if (v !== null && typeof v === "object") return JSON.stringify(v);
      if (typeof v === "string") return v;
      throw new Error(`${key} must be a list of tables`);
    case "list":
      if (Array.isArray(v) && v.every((x) => typeof x === "string")) return v.join(",");
      if (typeof v === "string") return v;
      throw new Error(`${key} must be a list of strings`);
    default:
      if (typeof v === "string") return v;
      throw new Error(`${key} must be a string`);
  }
}

/** Settings that are paths: a leading `~` is the home directory. */
const PATH_VARIABLES = new Set(["ORCH_WORKSPACE", "ORCH_WORKTREES_ROOT", "ORCH_NATS_STORE_DIR"]);

function expandHome(p: string, home: string | undefined): string {
  return home && (p === "~" || p.startsWith("~/")) ? join(home, p.slice(1)) : p;
}

/** The default file's path (seed 003's), or undefined without a home directory. */
export function defaultConfigPath(env: Record<string, string | undefined>): string | undefined {
  return env.HOME ? join(env.HOME, ".config", "orchestrator", "config.toml") : undefined;
}

/**
 * Reads the configuration file the environment points at (see above), or undefined when there is
 * none. `createDefault`: the launchers' first run, which creates the default path's file too.
 */
export function readConfigFile(env: Record<string, string | undefined>, opts: { createDefault?: boolean } = {}): ConfigFile | undefined {
  const named = env.ORCH_CONFIG || env.ORCHESTRATOR_CONFIG;
  if (named === "none") return undefined;
  const home = env.HOME;
  let path: string;
  let created = false;
  if (named) path = expandHome(named, home);
  else {
    const p = defaultConfigPath(env);
    if (!p || (!existsSync(p) && !opts.createDefault)) return undefined;
    path = p;
  }
  if (!existsSync(path)) {
    mkdirSync(dirname(path), { recursive: true });
    try {
      writeFileSync(path, DEFAULT_CONFIG_TOML, { flag: "wx" });
      created = true;
    } catch (err) {
      // Another process of the same start wrote it first: read theirs.
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
  }
  const text = readFileSync(path, "utf8");
  let parsed: unknown;
  try {
    const ext = extname(path).toLowerCase();
    parsed = ext === ".json" ? JSON.parse(text) : ext === ".yaml" || ext === ".yml" ? parseYaml(text) : parseToml(text);
  } catch (err) {
    throw new ConfigFileError(path, [`cannot be parsed: ${(err as Error).message.split("\n")[0]}`]);
  }
  const values: Record<string, string> = {};
  const refused: RefusedKey[] = [];
  const problems: string[] = [];
  for (const [key, v] of Object.entries(flatten(parsed ?? {}))) {
    const known = FILE_KEYS[key];
    if (!known) {
      const reason = NOT_APPLICABLE[key];
      if (reason) refused.push({ key, reason });
      else problems.push(`unknown key "${key}"`);
      continue;
    }
    try {
      let s = convert(key, known.kind, v);
      if (PATH_VARIABLES.has(known.env)) s = expandHome(s, home);
      values[known.env] = s;
    } catch (err) {
      problems.push((err as Error).message);
    }
  }
  return { path, values, refused, problems, created };
}
