import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  AgentHubConfig,
  ConfigError,
  DEFAULT_CONFIG_TOML,
  GatewayConfig,
  OrchestratorConfig,
  EventBusConfig,
  FILE_KEYS,
  NOT_APPLICABLE,
  RunnerConfig,
  SchedulerConfig,
  configFileUsed,
  defaultConfigPath,
  loadConfig,
  readConfigFile,
} from "../src/index.js";

/** The configuration file under the environment: seed 003's config.toml, YAML, JSON. */

const dir = () => mkdtempSync(join(tmpdir(), "orch-config-"));

/** Seed 003's example config.toml, as its README prints it. */
const SEED_003 = `
workspace = "/home/user/.local/share/orchestrator/workspace"
worktrees_root = "/home/user/.local/share/orchestrator/workspace"
event_store_path = "/home/user/.local/share/orchestrator/orchestrator-events.db"
ticketing_provider = "ticketing.linear"
harness_provider = "harness.codex"
vcs_provider = "vcs.git_cli"
vcs_repo_provider = "vcs_repos.github_gh_cli"

[supervisor]
model = "c/claude-haiku-4.5"
openrouter_base_url = "https://openrouter.ai/api/v1"

[linear]
api_url = "https://api.linear.app/graphql"
sync_interval_secs = 60
fetch_limit = 100
sync_assigned_to_me = true
sync_states = []
workflow_comment_summaries = false
workflow_attach_pr_links = true
workflow_state_map = [
  { workflow_state = "Implementing", linear_state = "In Progress" },
  { workflow_state = "PRDrafted", linear_state = "In Review" },
  { workflow_state = "AwaitingYourReview", linear_state = "In Review" },
  { workflow_state = "ReadyForReview", linear_state = "In Review" },
  { workflow_state = "InReview", linear_state = "In Review" },
  { workflow_state = "PendingMerge", linear_state = "In Review" },
  { workflow_state = "Done", linear_state = "Done" },
  { workflow_state = "Abandoned", linear_state = "Canceled" },
]

[shortcut]
api_url = "https://api.app.shortcut.com/api/v3"
fetch_limit = 100

[git]
binary = "git"
allow_delete_unmerged_branches = false
allow_destructive_automation = false
allow_force_push = false

[github]
binary = "gh"

[runtime]
allow_unsafe_command_paths = false
harness_server_startup_timeout_secs = 10
harness_log_raw_events = false
harness_log_normalized_events = false
opencode_binary = "opencode"
opencode_server_base_url = "http://127.0.0.1:8787"
codex_binary = "codex"
pr_pipeline_poll_interval_secs = 15

[database]
max_connections = 8
busy_timeout_ms = 5000
wal_enabled = true
synchronous = "NORMAL"
chunk_event_flush_ms = 250

[ui]
theme = "nord"
ticket_picker_priority_states = ["In Progress", "Final Approval", "Todo", "Backlog"]
transcript_line_limit = 100
background_session_refresh_secs = 15
session_info_background_refresh_secs = 15
`;

describe("configuration file", () => {
  it("loads seed 003's example file as written, in every service and the launcher", () => {
    const d = dir();
    const path = join(d, "config.toml");
    writeFileSync(path, SEED_003);
    for (const schema of [GatewayConfig, OrchestratorConfig, AgentHubConfig, SchedulerConfig, EventBusConfig, RunnerConfig])
      expect(() => loadConfig(schema as typeof GatewayConfig, { ORCHESTRATOR_CONFIG: path, HOME: d })).not.toThrow();
    // Every key has an effect, or is refused with its reason (logged at start); none is dropped.
    const used = configFileUsed()!;
    expect(used.refused.map((r) => r.key).sort()).toEqual([
      "database.busy_timeout_ms",
      "database.max_connections",
      "database.wal_enabled",
      "runtime.opencode_server_base_url",
    ]);
    for (const r of used.refused) expect(r.reason).toBe(NOT_APPLICABLE[r.key]);
    expect(used.problems).toEqual([]);
    const applied = Object.keys(FILE_KEYS);
    const keys = SEED_003.split("\n").reduce<{ section: string; keys: string[] }>(
      (acc, line) => {
        const sec = /^\[(\w+)\]$/.exec(line);
        const key = /^(\w+) =/.exec(line);
        if (sec) acc.section = sec[1]!;
        else if (key) acc.keys.push(acc.section ? `${acc.section}.${key[1]}` : key[1]!);
        return acc;
      },
      { section: "", keys: [] },
    ).keys;
    expect(keys).toHaveLength(42);
    for (const k of keys) expect(applied.includes(k) || NOT_APPLICABLE[k] !== undefined, k).toBe(true);
    // Seed 003's store settings that mean something for JetStream's.
    expect(used.values).toMatchObject({
      ORCH_NATS_STORE_DIR: "/home/user/.local/share/orchestrator/orchestrator-events.db",
      ORCH_NATS_SYNC: "NORMAL",
      ORCH_SESSION_DELTA_FLUSH_MS: "250",
      ORCH_ALLOW_UNSAFE_COMMAND_PATHS: "false",
    });
    expect(loadConfig(RunnerConfig, { ORCHESTRATOR_CONFIG: path })).toMatchObject({
      ORCH_NATS_STORE_DIR: "/home/user/.local/share/orchestrator/orchestrator-events.db",
      ORCH_NATS_SYNC: "NORMAL",
      ORCH_AGENT_EXECUTOR: "codex",
    });
    expect(loadConfig(AgentHubConfig, { ORCHESTRATOR_CONFIG: path })).toMatchObject({
      ORCH_SESSION_DELTA_FLUSH_MS: 250,
      ORCH_ALLOW_UNSAFE_COMMAND_PATHS: false,
    });
  });

  it("reports every problem of a file and of its values in one message", () => {
    const d = dir();
    const path = join(d, "bad.toml");
    writeFileSync(path, '[git]\nalow_force_push = true\nallow_force_push = "yes"\n[agents]\nexecutor = "gpt"\n[database]\nsynchronous = "SOMETIMES"\n');
    let err: ConfigError | undefined;
    try {
      loadConfig(RunnerConfig.extend(AgentHubConfig.shape), { ORCH_CONFIG: path });
    } catch (e) {
      err = e as ConfigError;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect(err!.problems).toEqual([
      `configuration file ${path}: unknown key "git.alow_force_push"`,
      `configuration file ${path}: git.allow_force_push must be true or false`,
      "ORCH_NATS_SYNC: must be one of OFF, NORMAL, FULL, EXTRA",
      "ORCH_AGENT_EXECUTOR: must be one of stub, local, codex, claude, opencode",
    ]);
  });

  it("refuses program paths that are not a bare name or a plain absolute path, unless allow_unsafe_command_paths", () => {
    const ok = loadConfig(AgentHubConfig, { ORCH_CONFIG: "none", ORCH_CODEX_BINARY: "/opt/tools/codex-0.169.0/bin/codex", ORCH_GIT_BINARY: "git" });
    expect(ok.ORCH_CODEX_BINARY).toBe("/opt/tools/codex-0.169.0/bin/codex");
    for (const bad of ["./bin/codex", "~/bin/codex", "/opt/../bin/codex", "/opt/my tools/codex", "codex; rm -rf /", "$(codex)"]) {
      expect(() => loadConfig(AgentHubConfig, { ORCH_CONFIG: "none", ORCH_CODEX_BINARY: bad }), bad).toThrow(
        /ORCH_CODEX_BINARY: .* is not a bare command name or a plain absolute path; use one, or set runtime\.allow_unsafe_command_paths/,
      );
      expect(loadConfig(AgentHubConfig, { ORCH_CONFIG: "none", ORCH_CODEX_BINARY: bad, ORCH_ALLOW_UNSAFE_COMMAND_PATHS: "true" }).ORCH_CODEX_BINARY).toBe(bad);
    }
    const d = dir();
    writeFileSync(join(d, "c.toml"), '[git]\nbinary = "./git"\n[runtime]\nallow_unsafe_command_paths = true\n');
    expect(loadConfig(AgentHubConfig, { ORCH_CONFIG: join(d, "c.toml") }).ORCH_GIT_BINARY).toBe("./git");
  });

  it("reads seed 003's config.toml: its settings become ours", () => {
    const d = dir();
    const path = join(d, "config.toml");
    writeFileSync(path, SEED_003);
    const c = loadConfig(AgentHubConfig, { ORCHESTRATOR_CONFIG: path });
    expect(c).toMatchObject({
      ORCH_WORKSPACE: "/home/user/.local/share/orchestrator/workspace",
      ORCH_WORKTREES_ROOT: "/home/user/.local/share/orchestrator/workspace",
      ORCH_AGENT_EXECUTOR: "codex",
      ORCH_GIT_BINARY: "git",
      ORCH_GIT_ALLOW_FORCE_PUSH: false,
      ORCH_HARNESS_STARTUP_TIMEOUT_MS: 10_000,
      ORCH_HARNESS_LOG_RAW_EVENTS: false,
      ORCH_OPENCODE_BINARY: "opencode",
      ORCH_CODEX_BINARY: "codex",
      ORCH_VCS_REPO_PROVIDER: "vcs_repos.github_gh_cli",
      ORCH_GH_BINARY: "gh",
      ORCH_TICKETING_PROVIDER: "linear",
      ORCH_VCS_PROVIDER: "git_cli",
      ORCH_SUPERVISOR_MODEL: "c/claude-haiku-4.5",
      ORCH_SUPERVISOR_BASE_URL: "https://openrouter.ai/api/v1",
    });
    const used = configFileUsed();
    expect(used?.values).toMatchObject({
      ORCH_UI_THEME: "nord",
      ORCH_UI_TICKET_PICKER_PRIORITY_STATES: "In Progress,Final Approval,Todo,Backlog",
      ORCH_UI_TRANSCRIPT_LINE_LIMIT: "100",
      ORCH_UI_BACKGROUND_SESSION_REFRESH_SECS: "15",
      ORCH_UI_SESSION_INFO_REFRESH_SECS: "15",
    });
    expect(used?.path).toBe(path);
    expect(c).toMatchObject({ ORCH_LINEAR_API_URL: "https://api.linear.app/graphql", ORCH_SHORTCUT_API_URL: "https://api.app.shortcut.com/api/v3" });
  });

  it("reads seed 003's [linear] and [shortcut] as ticket intake's policy, workflow_state_map as written", () => {
    const d = dir();
    const path = join(d, "config.toml");
    writeFileSync(path, SEED_003);
    const c = loadConfig(OrchestratorConfig, { ORCHESTRATOR_CONFIG: path });
    expect(c).toMatchObject({
      ORCH_TICKET_INTAKE_ENABLED: false,
      ORCH_LINEAR_SYNC_INTERVAL_SECS: 60,
      ORCH_LINEAR_FETCH_LIMIT: 100,
      ORCH_LINEAR_SYNC_ASSIGNED_TO_ME: true,
      ORCH_LINEAR_SYNC_STATES: [],
      ORCH_LINEAR_WORKFLOW_COMMENT_SUMMARIES: false,
      ORCH_LINEAR_WORKFLOW_ATTACH_PR_LINKS: true,
      ORCH_SHORTCUT_FETCH_LIMIT: 100,
    });
    expect(c.ORCH_LINEAR_WORKFLOW_STATE_MAP).toHaveLength(8);
    expect(c.ORCH_LINEAR_WORKFLOW_STATE_MAP).toContainEqual({ workflow_state: "Abandoned", linear_state: "Canceled" });
    // The environment: JSON, or Stage=State pairs; unset, seed 003's whole default table.
    const env = loadConfig(OrchestratorConfig, {
      ORCH_CONFIG: "none",
      ORCH_LINEAR_WORKFLOW_STATE_MAP: "Implementing=Doing, Done=Shipped",
      ORCH_LINEAR_SYNC_STATES: "Todo, In Progress",
    });
    expect(env.ORCH_LINEAR_WORKFLOW_STATE_MAP).toEqual([
      { workflow_state: "Implementing", linear_state: "Doing" },
      { workflow_state: "Done", linear_state: "Shipped" },
    ]);
    expect(env.ORCH_LINEAR_SYNC_STATES).toEqual(["Todo", "In Progress"]);
    expect(loadConfig(OrchestratorConfig, { ORCH_CONFIG: "none" }).ORCH_LINEAR_WORKFLOW_STATE_MAP).toHaveLength(8);
    expect(() => loadConfig(OrchestratorConfig, { ORCH_CONFIG: "none", ORCH_LINEAR_WORKFLOW_STATE_MAP: '[{"workflow_state":1}]' })).toThrow(
      /ORCH_LINEAR_WORKFLOW_STATE_MAP/,
    );
  });

  it("reads [github_issues] and [gitlab_issues]: the repository and the label or assignee that select its issues", () => {
    const d = dir();
    const path = join(d, "config.toml");
    writeFileSync(
      path,
      'ticketing_provider = "ticketing.github_issues"\n[github_issues]\nrepository = "acme/widgets"\nlabel = "orchestrate"\n[gitlab_issues]\nproject = "acme/platform/widgets"\nassignee = "orch-bot"\n',
    );
    expect(loadConfig(OrchestratorConfig, { ORCH_CONFIG: path })).toMatchObject({
      ORCH_TICKETING_PROVIDER: "github_issues",
      ORCH_GITHUB_ISSUES_REPOSITORY: "acme/widgets",
      ORCH_GITHUB_ISSUES_LABEL: "orchestrate",
      ORCH_GITLAB_ISSUES_PROJECT: "acme/platform/widgets",
      ORCH_GITLAB_ISSUES_ASSIGNEE: "orch-bot",
    });
    writeFileSync(path, '[github_issues]\nrepository = "not a repository"\n');
    expect(() => loadConfig(OrchestratorConfig, { ORCH_CONFIG: path })).toThrow(/ORCH_GITHUB_ISSUES_REPOSITORY/);
  });

  it("reads the intake's own [intake] table (where its runs go, backoff, breaker, quarantine); refuses a bad one", () => {
    const d = dir();
    const path = join(d, "config.toml");
    writeFileSync(
      path,
      [
        "[linear]",
        "sync_interval_secs = 1",
        "[intake]",
        "enabled = true",
        'project = "acme"',
        'definition = "ticket@1"',
        'accept_event = "none"',
        "backoff_ms = 250",
        "backoff_max_ms = 4000",
        "breaker_failures = 4",
        "breaker_cooldown_ms = 60000",
        "quarantine_after = 2",
        "",
      ].join("\n"),
    );
    const c = loadConfig(OrchestratorConfig, { ORCH_CONFIG: path });
    expect(c).toMatchObject({
      ORCH_TICKET_INTAKE_ENABLED: true,
      ORCH_LINEAR_SYNC_INTERVAL_SECS: 1,
      ORCH_TICKET_INTAKE_PROJECT: "acme",
      ORCH_TICKET_INTAKE_DEFINITION: "ticket@1",
      ORCH_TICKET_INTAKE_ACCEPT_EVENT: "none",
      ORCH_TICKET_INTAKE_BACKOFF_MS: 250,
      ORCH_TICKET_INTAKE_BACKOFF_MAX_MS: 4_000,
      ORCH_TICKET_INTAKE_BREAKER_FAILURES: 4,
      ORCH_TICKET_INTAKE_BREAKER_COOLDOWN_MS: 60_000,
      ORCH_TICKET_INTAKE_QUARANTINE_AFTER: 2,
    });
    expect(configFileUsed()).toMatchObject({ refused: [], problems: [] });
    expect(loadConfig(OrchestratorConfig, { ORCH_CONFIG: "none" })).toMatchObject({
      ORCH_TICKET_INTAKE_PROJECT: "_default",
      ORCH_TICKET_INTAKE_DEFINITION: "ticket",
    });
    expect(() =>
      loadConfig(OrchestratorConfig, { ORCH_CONFIG: "none", ORCH_TICKET_INTAKE_DEFINITION: "ticket@v2", ORCH_TICKET_INTAKE_PROJECT: "a b" }),
    ).toThrow(/ORCH_TICKET_INTAKE_DEFINITION[\s\S]*ORCH_TICKET_INTAKE_PROJECT|ORCH_TICKET_INTAKE_PROJECT[\s\S]*ORCH_TICKET_INTAKE_DEFINITION/);
  });

  it("reads the supervisor's keys under our names too; its key comes from the environment only", () => {
    const d = dir();
    const path = join(d, "c.toml");
    writeFileSync(path, '[supervisor]\nmodel = "qwen2.5:7b"\nbase_url = "http://gpu-box.lan:8000/v1"\ntimeout_ms = 30000\n');
    const c = loadConfig(AgentHubConfig, { ORCH_CONFIG: path, ORCH_SUPERVISOR_API_KEY: "sk-supervisor-key" });
    expect(c).toMatchObject({
      ORCH_SUPERVISOR_MODEL: "qwen2.5:7b",
      ORCH_SUPERVISOR_BASE_URL: "http://gpu-box.lan:8000/v1",
      ORCH_SUPERVISOR_TIMEOUT_MS: 30_000,
      ORCH_SUPERVISOR_API_KEY: "sk-supervisor-key",
    });
    writeFileSync(path, '[supervisor]\napi_key = "sk-in-a-file"\n');
    expect(() => loadConfig(AgentHubConfig, { ORCH_CONFIG: path })).toThrow(/unknown key "supervisor.api_key"/);
  });

  it("lets the environment win over the file", () => {
    const d = dir();
    const path = join(d, "c.toml");
    writeFileSync(
      path,
      '[agents]\nexecutor = "local"\n[agents.roles]\nimplementer = "claude-code"\n[llm]\nallowed_hosts = ["gpu-box.example.com"]\n[git]\nallow_force_push = true\n',
    );
    const c = loadConfig(AgentHubConfig, { ORCH_CONFIG: path, ORCH_AGENT_EXECUTOR: "stub" });
    expect(c.ORCH_AGENT_EXECUTOR).toBe("stub");
    expect(c.ORCH_AGENT_EXECUTOR_IMPLEMENTER).toBe("claude");
    expect(c.LOCAL_LLM_ALLOWED_HOSTS).toEqual(["gpu-box.example.com"]);
    expect(c.ORCH_GIT_ALLOW_FORCE_PUSH).toBe(true);
  });

  it("reads YAML and JSON too", () => {
    const d = dir();
    writeFileSync(join(d, "c.yaml"), "tools:\n  allowlist: [rg, ls, cat]\n  max_iterations: 3\n");
    expect(loadConfig(AgentHubConfig, { ORCH_CONFIG: join(d, "c.yaml") })).toMatchObject({
      ORCH_TOOL_ALLOWLIST: ["rg", "ls", "cat"],
      ORCH_TOOL_MAX_ITERATIONS: 3,
    });
    writeFileSync(join(d, "c.json"), JSON.stringify({ llm: { api: "openai", url: "http://127.0.0.1:8000/v1", response_format: "structured-json" } }));
    expect(loadConfig(AgentHubConfig, { ORCH_CONFIG: join(d, "c.json") })).toMatchObject({
      LOCAL_LLM_API: "openai",
      LOCAL_LLM_URL: "http://127.0.0.1:8000/v1",
      ORCH_LLM_RESPONSE_FORMAT: "structured-json",
    });
  });

  it("refuses unknown keys, wrong types and unparseable files, naming the file", () => {
    const d = dir();
    writeFileSync(join(d, "a.toml"), "[git]\nalow_force_push = true\n");
    expect(() => loadConfig(AgentHubConfig, { ORCH_CONFIG: join(d, "a.toml") })).toThrow(/a\.toml: unknown key "git\.alow_force_push"/);
    writeFileSync(join(d, "b.toml"), '[git]\nallow_force_push = "yes"\n');
    expect(() => loadConfig(AgentHubConfig, { ORCH_CONFIG: join(d, "b.toml") })).toThrow(/git\.allow_force_push must be true or false/);
    writeFileSync(join(d, "c.toml"), "[git\n");
    expect(() => loadConfig(AgentHubConfig, { ORCH_CONFIG: join(d, "c.toml") })).toThrow(ConfigError);
    // A value the schema refuses is reported like an environment variable's.
    writeFileSync(join(d, "d.toml"), '[agents]\nexecutor = "gpt"\n');
    expect(() => loadConfig(AgentHubConfig, { ORCH_CONFIG: join(d, "d.toml") })).toThrow(
      /ORCH_AGENT_EXECUTOR: must be one of stub, local, codex, claude, opencode/,
    );
  });

  it("creates a named file that does not exist with the defaults, which load", () => {
    const d = dir();
    const path = join(d, "sub", "config.toml");
    const c = loadConfig(AgentHubConfig, { ORCH_CONFIG: path });
    expect(readFileSync(path, "utf8")).toBe(DEFAULT_CONFIG_TOML);
    expect(configFileUsed()?.created).toBe(true);
    expect(c).toMatchObject({ ORCH_AGENT_EXECUTOR: "local", LOCAL_LLM_API: "ollama", ORCH_LLM_POLICY: "oss", ORCH_TOOL_ALLOWLIST: [] });
  });

  it("creates ~/.config/orchestrator/config.toml with the defaults for the launchers (seed 003's first run)", () => {
    const home = dir();
    const path = join(home, ".config", "orchestrator", "config.toml");
    expect(defaultConfigPath({ HOME: home })).toBe(path);
    expect(readConfigFile({ HOME: home })).toBeUndefined();
    const first = readConfigFile({ HOME: home }, { createDefault: true });
    expect(first).toMatchObject({ path, created: true, refused: [], problems: [] });
    expect(readFileSync(path, "utf8")).toBe(DEFAULT_CONFIG_TOML);
    expect(readConfigFile({ HOME: home }, { createDefault: true })).toMatchObject({ path, created: false });
    // The defaults change nothing: every schema reads the same as with no file.
    for (const schema of [GatewayConfig, OrchestratorConfig, AgentHubConfig, SchedulerConfig, EventBusConfig, RunnerConfig])
      expect(loadConfig(schema as typeof GatewayConfig, { HOME: home })).toEqual(loadConfig(schema as typeof GatewayConfig, { ORCH_CONFIG: "none" }));
    expect(readConfigFile({}, { createDefault: true })).toBeUndefined();
  });

  it("reads ~/.config/orchestrator/config.toml only when it exists, and nothing with ORCH_CONFIG=none", () => {
    const home = dir();
    expect(readConfigFile({ HOME: home })).toBeUndefined();
    const path = join(home, ".config", "orchestrator", "config.toml");
    loadConfig(GatewayConfig, { ORCH_CONFIG: path });
    expect(readConfigFile({ HOME: home })?.path).toBe(path);
    expect(readConfigFile({ HOME: home, ORCH_CONFIG: "none" })).toBeUndefined();
  });
});

describe("agent hub settings", () => {
  it("routes per role, normalises seed 003's harness names and parses limits", () => {
    const c = loadConfig(AgentHubConfig, {
      ORCH_AGENT_EXECUTOR: "harness.opencode",
      ORCH_AGENT_EXECUTOR_REVIEWER: "stub",
      ORCH_EXECUTOR_CONCURRENCY: "local=1, codex=3",
      ORCH_TOOL_ALLOWLIST: "rg, ls,,cat",
    });
    expect(c).toMatchObject({
      ORCH_AGENT_EXECUTOR: "opencode",
      ORCH_AGENT_EXECUTOR_REVIEWER: "stub",
      ORCH_EXECUTOR_CONCURRENCY: { local: 1, codex: 3 },
      ORCH_TOOL_ALLOWLIST: ["rg", "ls", "cat"],
    });
    expect(() => loadConfig(AgentHubConfig, { ORCH_EXECUTOR_CONCURRENCY: "local=0" })).toThrow(/"local=0" is not name=n/);
    expect(() => loadConfig(AgentHubConfig, { LOCAL_LLM_URL: "not a url" })).toThrow(/LOCAL_LLM_URL: must be a URL/);
  });

  it("defaults to the local executor and the oss policy", () => {
    expect(loadConfig(AgentHubConfig, {})).toMatchObject({
      ORCH_AGENT_EXECUTOR: "local",
      ORCH_LLM_POLICY: "oss",
      LOCAL_LLM_ERROR_MODE: "return",
      ORCH_LLM_RESPONSE_FORMAT: "text",
      ALLOW_HOSTED_LLM: false,
    });
  });
});
