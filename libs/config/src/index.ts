import { z } from "zod";
import { ConfigFileError, readConfigFile, type ConfigFile } from "./file.js";
import {
  AGENT_ROLES,
  DEFAULT_PROJECT,
  DEFAULT_WORKFLOW_STATE_MAP,
  FORGE_DEFAULT_API_URL,
  ForgeRepository,
  TRACKER_DEFAULT_API_URL,
  VCS_REPO_PROVIDERS,
  WorkflowStateMapping,
} from "@orch/contracts";
import { providerName, TICKETING_PROVIDERS, VCS_PROVIDERS } from "./providers.js";

export {
  readConfigFile,
  defaultConfigPath,
  DEFAULT_CONFIG_TOML,
  FILE_KEYS,
  NOT_APPLICABLE,
  ConfigFileError,
  type ConfigFile,
  type RefusedKey,
} from "./file.js";
export * from "./ui.js";
export { TICKETING_PROVIDERS, VCS_PROVIDERS, type TicketingProvider, type VcsProvider } from "./providers.js";

/**
 * Configuration: one zod schema per service over the environment, validated once at boot, frozen,
 * and reported as a single error listing every problem. Keys are the environment variable names,
 * so what a user sets is exactly what the code reads.
 */

export class ConfigError extends Error {
  override readonly name = "ConfigError";
  readonly code = "INVALID_CONFIG";
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
  }
}

const bool = (def: boolean) =>
  z
    .enum(["true", "false", "1", "0", "yes", "no", "on", "off"], {
      message: "must be true or false",
    })
    .default(def ? "true" : "false")
    .transform((v) => v === "true" || v === "1" || v === "yes" || v === "on");

const int = (def: number, min: number, max: number) => z.coerce.number().int().min(min).max(max).default(def);
/** A replica's name among its peers (logs, leases). */
const instanceId = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, "must be [A-Za-z0-9_.-]{1,64}");
const decimal = (def: number, min: number, max: number) => z.coerce.number().min(min).max(max).default(def);
/** Comma-separated names; empty: none. */
const list = () =>
  z
    .string()
    .default("")
    .transform((v) =>
      v
        .split(",")
        .map((x) => x.trim())
        .filter(Boolean),
    );

/** Seed 001's store/queue selectors: only NATS JetStream, which they may name; anything else is refused with `why`. */
const jetstreamOnly = (why: string) =>
  z
    .string()
    .optional()
    .superRefine((v, ctx) => {
      if (v === undefined || /^(jetstream|nats)$/i.test(v.trim())) return;
      ctx.addIssue({
        code: "custom",
        message: `${JSON.stringify(v)} is not supported: ${why}; unset it or set jetstream (point ORCH_NATS_URL at your NATS server)`,
      });
    })
    .transform((v) => (v === undefined ? undefined : ("jetstream" as const)));

/** Settings every service reads. */
export const CommonConfig = z.object({
  /** NATS server or cluster (comma-separated URLs). Unset under the dev runner, which spawns one. */
  ORCH_NATS_URL: z.string().min(1).default("nats://127.0.0.1:4222"),
  /** Prefix of every subject, stream and bucket: several installations can share one NATS. */
  ORCH_NATS_PREFIX: z
    .string()
    .regex(/^[a-z][a-z0-9_-]{0,31}$/, "must be lowercase letters, digits, _ or -, starting with a letter")
    .default("orch"),
  /**
   * `file` (default): JetStream file storage, durable. `memory`: JetStream memory storage, nothing
   * kept across a nats-server restart. `redis`: reserved by seed 000, not supported.
   */
  ORCH_BACKEND: z
    .enum(["file", "memory", "redis"], { message: "must be file or memory" })
    .default("file")
    .refine((v) => v !== "redis", {
      message: "redis is not supported: Orchestrator keeps its state in NATS JetStream; use ORCH_BACKEND=file (durable) or memory",
    }),
  /** seed 000: `mock` lets step payloads ask adapters to fail or take time; `live` ignores that. */
  ORCH_MODE: z.enum(["mock", "live"], { message: "must be mock or live" }).default("mock"),
  ORCH_LOG_LEVEL: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
  /** Replicas of every stream and bucket: 1 on one server, 3 on a 3-node cluster. */
  ORCH_NATS_REPLICAS: int(1, 1, 5),
  /**
   * JetStream's de-duplication window of every stream (a publish retried within it with the same
   * message id is stored once). Correctness never depends on it: past it, runs' transitions are
   * still written once (compare-and-set) and commands applied once (their ids, in the run).
   */
  ORCH_DUPLICATE_WINDOW_MS: int(120_000, 100, 86_400_000),
  /**
   * Seed 001's task store (`postgres` there) and task queue (`redis` there): here both are NATS
   * JetStream, the one system of record. `jetstream` or `nats` is accepted (and means what unset
   * does); anything else is refused, so no service starts believing it writes somewhere else.
   */
  ORCH_TASK_STORE: jetstreamOnly("tasks are stored in NATS JetStream (the run records), the one system of record here"),
  TASK_QUEUE: jetstreamOnly("tasks are queued in NATS JetStream (the queue is a projection of the runs' transitions)"),
  /** Seed 003's `ticketing_provider`: the tracker ticket intake reads (`linear`, `shortcut`, `github_issues`, `gitlab_issues`; `ticketing.linear` too). */
  ORCH_TICKETING_PROVIDER: providerName("ticketing", TICKETING_PROVIDERS).default("linear"),
  /** Seed 003's `vcs_provider`: local git operations, through the git CLI only (`git_cli`, `vcs.git_cli`). */
  ORCH_VCS_PROVIDER: providerName("vcs", VCS_PROVIDERS).default("git_cli"),
});
export type CommonConfig = z.output<typeof CommonConfig>;

export const GatewayConfig = CommonConfig.extend({
  PORT: int(8080, 0, 65535),
  /** Loopback unless told otherwise. */
  HOST: z.string().min(1).default("127.0.0.1"),
  /** seed 000: with false, every `/api/orchestrator/*` route answers 404. */
  ORCH_ENABLED: bool(true),
  ORCH_MAX_REQUEST_BYTES: int(32_768, 1, 64 * 1024 * 1024),
  /** POSTs allowed per client and route in one window. */
  ORCH_RATE_LIMIT_MAX: int(60, 1, 1_000_000),
  ORCH_RATE_LIMIT_WINDOW_MS: int(60_000, 1_000, 86_400_000),
  ORCH_SSE_HEARTBEAT_MS: int(15_000, 100, 300_000),
  /** Readiness includes the agent hub's LLM endpoint (asked over NATS). */
  ORCH_CHECK_LLM: bool(false),
  /**
   * The API token (`Authorization: Bearer …`) every route but /health, /metrics and the console
   * needs. Unset: auth is off and the gateway binds to loopback only (seed 004: TASKSGODZILLA_API_TOKEN).
   */
  ORCH_API_TOKEN: z.string().min(1).optional(),
  /** false: no route is rate limited (ORCH_RATE_LIMIT_MAX, seed 001's POST /tasks 20 per 60 s, the webhooks' ten times). */
  ORCH_RATE_LIMIT_ENABLED: bool(true),
  /** An SSE client this far behind (bytes not yet taken by its socket) is told to resume and disconnected. */
  ORCH_SSE_MAX_BUFFER_BYTES: int(1_048_576, 1_024, 1_073_741_824),
  /** Lifetime of the signed `access_token` an EventSource passes in the query. */
  ORCH_SSE_TOKEN_TTL_MS: int(300_000, 1_000, 86_400_000),
  /** GitHub webhooks: the secret `X-Hub-Signature-256` is made with (falls back to TASKSGODZILLA_WEBHOOK_TOKEN). */
  GITHUB_WEBHOOK_SECRET: z.string().min(1).optional(),
  /**
   * GitHub App webhooks: a delivery for a GitHub App (`X-GitHub-Hook-Installation-Target-Type:
   * integration`) must be for this app (`X-GitHub-Hook-Installation-Target-ID`); repository and
   * organization webhooks are unaffected.
   */
  GITHUB_APP_ID: z
    .string()
    .trim()
    .regex(/^[1-9][0-9]{0,19}$/, "must be the GitHub App's numeric id")
    .optional(),
  /** GitLab webhooks: the `X-Gitlab-Token` they must carry (falls back to TASKSGODZILLA_WEBHOOK_TOKEN). */
  GITLAB_WEBHOOK_TOKEN: z.string().min(1).optional(),
  /** Seed 004's one webhook secret for both providers. */
  TASKSGODZILLA_WEBHOOK_TOKEN: z.string().min(1).optional(),
  /**
   * A project's setup run asks its onboarding clarifications (recorded as a `setup_clarifications`
   * event either way) and, with this on, waits for them: a `clarifications` step that must be
   * approved before setup completes (seed 004: TASKSGODZILLA_REQUIRE_ONBOARDING_CLARIFICATIONS).
   */
  ORCH_REQUIRE_ONBOARDING_CLARIFICATIONS: bool(false),
  /** Seed 004's protocol steps start their QA as soon as their execution succeeds (TASKSGODZILLA_AUTO_QA_AFTER_EXEC). */
  ORCH_AUTO_QA_AFTER_EXEC: bool(false),
});
export type GatewayConfig = z.output<typeof GatewayConfig>;

/**
 * Seed 003's `workflow_state_map`: the file's list of `{ workflow_state, linear_state }` tables (as
 * JSON in the environment), or `Stage=Tracker state` pairs separated by commas.
 */
const stateMap = z
  .string()
  .optional()
  .transform((v, ctx): WorkflowStateMapping[] => {
    if (v === undefined || v.trim() === "") return DEFAULT_WORKFLOW_STATE_MAP.map((m) => ({ ...m }));
    let rows: unknown;
    if (v.trim().startsWith("[")) {
      try {
        rows = JSON.parse(v);
      } catch {
        ctx.addIssue({ code: "custom", message: "must be a list of { workflow_state, linear_state } (JSON)" });
        return z.NEVER;
      }
    } else {
      rows = v
        .split(",")
        .map((x) => x.trim())
        .filter(Boolean)
        .map((pair) => {
          const i = pair.indexOf("=");
          return i > 0 ? { workflow_state: pair.slice(0, i).trim(), linear_state: pair.slice(i + 1).trim() } : { pair };
        });
    }
    const r = z.array(WorkflowStateMapping).safeParse(rows);
    if (!r.success) {
      ctx.addIssue({ code: "custom", message: "each entry needs workflow_state and linear_state (Stage=Tracker state)" });
      return z.NEVER;
    }
    return r.data;
  });

/**
 * Ticket intake's policy (seed 003's `[linear]` and `[shortcut]`), the core's: whether it runs, how
 * often it syncs, what it asks for, and what it writes back. The trackers' keys stay in the agent
 * hub's environment (LINEAR_API_KEY, SHORTCUT_API_TOKEN); their API URLs are the hub's settings.
 */
const TICKET_INTAKE = {
  /** Intake runs (one intake run for ORCH_TICKETING_PROVIDER, syncing on an interval). Off by default. */
  ORCH_TICKET_INTAKE_ENABLED: bool(false),
  /** Between two syncs (seed 003: `[linear] sync_interval_secs`; Shortcut's too). */
  ORCH_LINEAR_SYNC_INTERVAL_SECS: int(60, 1, 86_400),
  /** Tickets one sync asks for, most recently updated first (seed 003: `[linear] fetch_limit`). */
  ORCH_LINEAR_FETCH_LIMIT: int(100, 1, 250),
  /** Only tickets assigned to the key's user (seed 003: `[linear] sync_assigned_to_me`). */
  ORCH_LINEAR_SYNC_ASSIGNED_TO_ME: bool(true),
  /** Only tickets in these states (comma-separated names); empty: any (seed 003: `[linear] sync_states`). */
  ORCH_LINEAR_SYNC_STATES: list(),
  /** A comment on the ticket for each stage its run enters (seed 003: `workflow_comment_summaries`). */
  ORCH_LINEAR_WORKFLOW_COMMENT_SUMMARIES: bool(false),
  /** The run's pull request attached to the ticket (seed 003: `workflow_attach_pr_links`). */
  ORCH_LINEAR_WORKFLOW_ATTACH_PR_LINKS: bool(true),
  /** Pipeline stage → tracker state (seed 003: `workflow_state_map`); its default is seed 003's table. */
  ORCH_LINEAR_WORKFLOW_STATE_MAP: stateMap,
  /** Shortcut's tickets per sync (seed 003: `[shortcut] fetch_limit`). */
  ORCH_SHORTCUT_FETCH_LIMIT: int(100, 1, 250),
  /** `ticketing.github_issues`: the repository (`owner/name`) whose open issues are tickets (`[github_issues] repository`). */
  ORCH_GITHUB_ISSUES_REPOSITORY: ForgeRepository.optional(),
  /** …those with this label (`[github_issues] label`), and/or assigned to this login (`assignee`); neither: the token's user's. */
  ORCH_GITHUB_ISSUES_LABEL: z.string().min(1).max(256).optional(),
  ORCH_GITHUB_ISSUES_ASSIGNEE: z.string().min(1).max(256).optional(),
  /** `ticketing.gitlab_issues`: the project (its path, `group/name`) whose opened issues are tickets (`[gitlab_issues] project`). */
  ORCH_GITLAB_ISSUES_PROJECT: ForgeRepository.optional(),
  /** …those with this label (`[gitlab_issues] label`), and/or assigned to this username (`assignee`); neither: the token's user's. */
  ORCH_GITLAB_ISSUES_LABEL: z.string().min(1).max(256).optional(),
  ORCH_GITLAB_ISSUES_ASSIGNEE: z.string().min(1).max(256).optional(),
  /** The project ticket runs are created in (its repository and forge are where their pull requests go). */
  ORCH_TICKET_INTAKE_PROJECT: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,128}$/, { message: "must match [A-Za-z0-9_-]{1,128}" })
    .default(DEFAULT_PROJECT),
  /** What each ticket's run is: a definition (`id` or `id@version`), and the stage event it is sent as it is created (`none`: none). */
  ORCH_TICKET_INTAKE_DEFINITION: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,128}(@[1-9][0-9]{0,5})?$/, { message: "must be a definition id, or id@version" })
    .default("ticket"),
  ORCH_TICKET_INTAKE_ACCEPT_EVENT: z
    .string()
    .regex(/^[A-Za-z][A-Za-z0-9_.-]{0,63}$/, { message: "must be a stage event name (or none)" })
    .default("TicketAccepted"),
  /** After a failed sync, the next one in this long, doubling with each failure in a row up to the max. */
  ORCH_TICKET_INTAKE_BACKOFF_MS: int(5_000, 100, 3_600_000),
  ORCH_TICKET_INTAKE_BACKOFF_MAX_MS: int(300_000, 100, 86_400_000),
  /** After this many failed syncs in a row (or one the tracker refuses), syncs pause for the cool-down. */
  ORCH_TICKET_INTAKE_BREAKER_FAILURES: int(5, 1, 100),
  ORCH_TICKET_INTAKE_BREAKER_COOLDOWN_MS: int(600_000, 100, 86_400_000),
  /** A ticket whose runs failed this many times is quarantined (never run again by the intake). */
  ORCH_TICKET_INTAKE_QUARANTINE_AFTER: int(3, 1, 100),
  /** A ticket's writes the tracker keeps failing wait in the intake, tried again with the backoff; after this many failed tries they are abandoned. */
  ORCH_TICKET_INTAKE_WRITE_ABANDON_AFTER: int(10, 1, 100),
};

export const OrchestratorConfig = CommonConfig.extend({
  ORCH_GRPC_PORT: int(50051, 0, 65535),
  ORCH_GRPC_HOST: z.string().min(1).default("127.0.0.1"),
  /** Runs the core transitions at once (commands of one run are always applied in order). */
  ORCH_CORE_CONCURRENCY: int(64, 1, 10_000),
  /** Run records kept in the core's memory (the KV bucket stays the system of record). */
  ORCH_CORE_CACHE_SIZE: int(10_000, 0, 10_000_000),
  /** …and the memory they may take, in MiB of stored JSON (a record takes about 1.6× that in the heap). */
  ORCH_CORE_CACHE_MB: int(32, 0, 1_000_000),
  /**
   * Directories ImportDefinitions may read workflow files from (comma-separated absolute paths);
   * the working directory when unset.
   */
  ORCH_IMPORT_ROOTS: z.string().optional(),
  /**
   * This replica's name among orchestrator replicas (the host name by default). A restarted replica
   * with the same name takes its partitions back at once instead of waiting for its leases to expire.
   */
  ORCH_INSTANCE_ID: instanceId.optional(),
  /** Default token budget of every step of every run (seed 004: TASKSGODZILLA_MAX_TOKENS_PER_STEP). */
  ORCH_MAX_TOKENS_PER_STEP: z.coerce.number().int().min(1).optional(),
  /** Default token budget of every run (seed 004: TASKSGODZILLA_MAX_TOKENS_PER_PROTOCOL). */
  ORCH_MAX_TOKENS_PER_RUN: z.coerce.number().int().min(1).optional(),
  /** How those defaults act: strict (gate the run), warn (an event), off (seed 004: TASKSGODZILLA_TOKEN_BUDGET_MODE). */
  ORCH_TOKEN_BUDGET_MODE: z.enum(["strict", "warn", "off"], { message: "must be strict, warn or off" }).default("strict"),
  /**
   * The defaults of CI policies (a definition's `ci`), for what a definition leaves out, recorded
   * with each run at its creation. A CI success starts the step's QA instead of completing it
   * (seed 004: TASKSGODZILLA_AUTO_QA_ON_CI).
   */
  ORCH_AUTO_QA_ON_CI: bool(false),
  /** A CI failure starts a bounded fix attempt: at most this many per run (0: never). */
  ORCH_CI_FIX_MAX_ATTEMPTS: int(0, 0, 100),
  /** …and no sooner than this after the previous one. */
  ORCH_CI_FIX_COOLDOWN_MS: int(600_000, 0, 86_400_000),
  /**
   * Seed 001's worker, as run policy: runs of tasks created while it is on start their queued tasks
   * by themselves (the core schedules them, each run's in the order they were queued) and retry a
   * failed attempt. Applied to a run at its creation and recorded with it (like the CI defaults).
   */
  ORCH_WORKER_ENABLED: bool(false),
  /** Retries of a task whose attempt failed (0: none). */
  ORCH_WORKER_MAX_RETRIES: int(3, 0, 100),
  /** Wait before retry n: this · 2^(n−1), at most 60 s (a retry timer the scheduler fires). */
  ORCH_WORKER_BACKOFF_MS: int(1_000, 0, 3_600_000),
  /**
   * Deprecated and ignored: nothing polls any more (the core starts a queued task in the transition
   * that queues it, and a retry when its timer fires). Accepted so a deployment that sets it still
   * starts; the core says so once at start.
   */
  ORCH_WORKER_POLL_INTERVAL_MS: z.coerce.number().int().min(10).max(3_600_000).optional(),
  /**
   * Seed 001's periodic runs: a run of type `scheduled` with one task per role every interval,
   * created by the core's schedule run when its tick timer fires, once per interval slot.
   */
  ORCH_SCHEDULER_ENABLED: bool(false),
  ORCH_SCHEDULE_INTERVAL_MS: int(60_000, 100, 30 * 86_400_000),
  /** Comma-separated roles (architect, implementer, reviewer, tester, maintainer). */
  ORCH_SCHEDULE_ROLES: z
    .string()
    .default(AGENT_ROLES.join(","))
    .transform((v) =>
      v
        .split(",")
        .map((x) => x.trim())
        .filter(Boolean),
    )
    .pipe(z.array(z.enum(AGENT_ROLES, { message: `must be one of ${AGENT_ROLES.join(", ")}` })).min(1, "needs at least one role")),
  ORCH_SCHEDULE_DESCRIPTION: z.string().min(1).max(10_000).default("Periodic run"),
  /**
   * Enterprise and self-managed forge hosts, `host=provider` comma-separated
   * (`ghe.example.com=github,gl.example.com=gitlab`): a project whose git URL is on one of them gets
   * that forge (github.com and gitlab.com are known).
   */
  ORCH_FORGE_HOSTS: z
    .string()
    .default("")
    .transform((v, ctx) => {
      const out: Record<string, "github" | "gitlab"> = {};
      for (const item of v
        .split(",")
        .map((x) => x.trim())
        .filter(Boolean)) {
        const m = /^([A-Za-z0-9.-]+(?::\d+)?)=(github|gitlab)$/.exec(item);
        if (!m) ctx.addIssue({ code: "custom", message: `${JSON.stringify(item)}: expected host=github or host=gitlab` });
        else out[m[1]!.toLowerCase()] = m[2] as "github" | "gitlab";
      }
      return out;
    }),
  /** Where the API is reached from outside: a pull request's body links back to its run there. Default: http://127.0.0.1:<PORT>. */
  ORCH_PUBLIC_URL: z.url({ protocol: /^https?$/ }).optional(),
  /** The gateway's port, for the default public URL. */
  PORT: int(8080, 0, 65535),
  /**
   * Seed 003's `pr_pipeline_poll_interval_secs`: while a run's pull request is open, the core asks an
   * agent hub to look at it (`pr.sync`) this often, a fallback for webhooks that do not arrive; 0: never.
   */
  ORCH_PR_POLL_INTERVAL_SECS: int(15, 0, 86_400),
  ...TICKET_INTAKE,
}).superRefine((c, ctx) => {
  // An issues tracker without its repository would sync nothing: refused at start, not at each sync.
  if (!c.ORCH_TICKET_INTAKE_ENABLED) return;
  const need =
    c.ORCH_TICKETING_PROVIDER === "github_issues"
      ? "ORCH_GITHUB_ISSUES_REPOSITORY"
      : c.ORCH_TICKETING_PROVIDER === "gitlab_issues"
        ? "ORCH_GITLAB_ISSUES_PROJECT"
        : undefined;
  if (need && c[need] === undefined)
    ctx.addIssue({
      code: "custom",
      path: [need],
      message: `ticket intake from ${c.ORCH_TICKETING_PROVIDER} needs the repository whose issues are tickets (${need === "ORCH_GITHUB_ISSUES_REPOSITORY" ? "[github_issues] repository" : "[gitlab_issues] project"})`,
    });
});
export type OrchestratorConfig = z.output<typeof OrchestratorConfig>;

/** Comma-separated list → trimmed, non-empty items. */

/** `name=n,name=n` → a map of positive integers. */
const limits = (def: string) =>
  z
    .string()
    .default(def)
    .transform((v, ctx) => {
      const out: Record<string, number> = {};
      for (const part of v
        .split(",")
        .map((x) => x.trim())
        .filter(Boolean)) {
        const m = /^([A-Za-z0-9_.-]+)=(\d+)$/.exec(part);
        if (!m || Number(m[2]) < 1) {
          ctx.addIssue({ code: "custom", message: `"${part}" is not name=n with n ≥ 1` });
          return z.NEVER;
        }
        out[m[1]!] = Number(m[2]);
      }
      return out;
    });

const url = (def?: string) => (def === undefined ? z.url({ message: "must be a URL" }).optional() : z.url({ message: "must be a URL" }).default(def));

/**
 * Executors a role can be routed to: `stub` (offline), `local` (a local LLM), or a coding-agent
 * harness (`codex`, `claude`, `opencode`; seed 003's `harness.codex`, `harness.opencode` and
 * `claude-code` are accepted and normalised).
 */
export const EXECUTOR_NAMES = ["stub", "local", "codex", "claude", "opencode"] as const;
export type ExecutorName = (typeof EXECUTOR_NAMES)[number];
const EXECUTOR_ALIASES: Record<string, ExecutorName> = {
  "harness.codex": "codex",
  "harness.opencode": "opencode",
  "harness.claude": "claude",
  "claude-code": "claude",
};
const executorName = () =>
  z
    .string()
    .transform((v) => EXECUTOR_ALIASES[v] ?? v)
    .pipe(z.enum(EXECUTOR_NAMES, { message: `must be one of ${EXECUTOR_NAMES.join(", ")}` }));
const executor = (def: ExecutorName) => executorName().default(def);
const roleExecutor = () => executorName().optional();

/** The agent hub's settings that name a program it runs. */
const COMMAND_PATH_SETTINGS = ["ORCH_GIT_BINARY", "ORCH_GH_BINARY", "ORCH_CODEX_BINARY", "ORCH_CLAUDE_BINARY", "ORCH_OPENCODE_BINARY"] as const;
const SAFE_COMMAND = /^[A-Za-z0-9][A-Za-z0-9._+-]*$/;
const SAFE_ABSOLUTE_PATH = /^\/[A-Za-z0-9._+@/-]+$/;

export const AgentHubConfig = CommonConfig.extend({
  /** Steps the agent hub runs at once; further steps wait in the work queue. */
  ORCH_AGENT_CONCURRENCY: int(16, 1, 10_000),
  /** The agent hub's identity (session ownership); the host name when unset. */
  ORCH_INSTANCE_ID: instanceId.optional(),

  // Routing (seed 001's RoutedAgentExecutor): a default executor, and one per role.
  ORCH_AGENT_EXECUTOR: executor("local"),
  ORCH_AGENT_EXECUTOR_ARCHITECT: roleExecutor(),
  ORCH_AGENT_EXECUTOR_IMPLEMENTER: roleExecutor(),
  ORCH_AGENT_EXECUTOR_REVIEWER: roleExecutor(),
  ORCH_AGENT_EXECUTOR_TESTER: roleExecutor(),
  ORCH_AGENT_EXECUTOR_MAINTAINER: roleExecutor(),
  ORCH_AGENT_EXECUTOR_QA: roleExecutor(),
  /** Sessions each executor runs at once (`stub=16,local=4,codex=2,claude=2,opencode=2`). */
  ORCH_EXECUTOR_CONCURRENCY: limits("stub=16,local=4,codex=2,claude=2,opencode=2"),
  /** Sessions each model provider serves at once (`ollama`, `openai`, `codex`, `claude`, `opencode`). */
  ORCH_PROVIDER_CONCURRENCY: limits("ollama=2,openai=4,codex=2,claude=2,opencode=2"),

  // The local LLM executor (seed 001).
  LOCAL_LLM_API: z.enum(["ollama", "openai"], { message: "must be ollama or openai" }).default("ollama"),
  /** The model server: Ollama's root URL, or an OpenAI-compatible server's (its `/v1` is added when missing). */
  LOCAL_LLM_URL: url(),
  LOCAL_LLM_MODEL: z.string().min(1).max(200).default("llama3.1:8b"),
  LOCAL_LLM_MODEL_ARCHITECT: z.string().min(1).max(200).optional(),
  LOCAL_LLM_MODEL_IMPLEMENTER: z.string().min(1).max(200).optional(),
  LOCAL_LLM_MODEL_REVIEWER: z.string().min(1).max(200).optional(),
  LOCAL_LLM_MODEL_TESTER: z.string().min(1).max(200).optional(),
  LOCAL_LLM_MODEL_MAINTAINER: z.string().min(1).max(200).optional(),
  LOCAL_LLM_MODEL_QA: z.string().min(1).max(200).optional(),
  LOCAL_LLM_API_KEY: z.string().min(1).optional(),
  /** One model request, from sending to the last streamed token. */
  LOCAL_LLM_TIMEOUT_MS: int(120_000, 1_000, 3_600_000),
  /** `throw`: a failed model call is a retryable step error (the core's backoff retries it); `return`: the step fails with the error recorded. */
  LOCAL_LLM_ERROR_MODE: z.enum(["throw", "return"], { message: "must be throw or return" }).default("return"),
  /** `oss` (default): only local model servers; `hosted`: any; `locked`: no model calls at all. */
  ORCH_LLM_POLICY: z.enum(["oss", "hosted", "locked"], { message: "must be oss, hosted or locked" }).default("oss"),
  ALLOW_HOSTED_LLM: bool(false),
  /** Hosts that count as local under the `oss` policy, besides loopback and private addresses. */
  LOCAL_LLM_ALLOWED_HOSTS: list(),
  /** `text`: free-form answers; `structured-json`: AgentResponseSchema, validated, one repair attempt. */
  ORCH_LLM_RESPONSE_FORMAT: z.enum(["text", "structured-json"], { message: "must be text or structured-json" }).default("text"),
  /** The LLM endpoint is part of readiness (the gateway's /ready asks the agent hub). */
  ORCH_CHECK_LLM: bool(false),

  // Tools the local LLM may call (seed 001). Empty: no tools.
  ORCH_TOOL_ALLOWLIST: list(),
  ORCH_TOOL_MAX_ITERATIONS: int(8, 1, 100),
  /** Where tools run; the step's worktree when unset. */
  ORCH_TOOL_CWD: z.string().min(1).optional(),
  /** Directories tools may touch (comma-separated); the step's worktree when unset. */
  ORCH_TOOL_ALLOWED_ROOTS: list(),
  ORCH_TOOL_TIMEOUT_MS: int(10_000, 100, 600_000),
  ORCH_TOOL_MAX_OUTPUT_BYTES: int(65_536, 1_024, 16 * 1024 * 1024),

  // Coding-agent harnesses (seed 003).
  ORCH_CODEX_BINARY: z.string().min(1).default("codex"),
  ORCH_CLAUDE_BINARY: z.string().min(1).default("claude"),
  ORCH_OPENCODE_BINARY: z.string().min(1).default("opencode"),
  /** The model server each harness talks to; unset: the CLI's own default (a hosted API, which the LLM policy governs). */
  ORCH_CODEX_BASE_URL: url(),
  ORCH_CLAUDE_BASE_URL: url(),
  ORCH_OPENCODE_BASE_URL: url(),
  ORCH_CODEX_MODEL: z.string().min(1).max(200).optional(),
  ORCH_CLAUDE_MODEL: z.string().min(1).max(200).optional(),
  ORCH_OPENCODE_MODEL: z.string().min(1).max(200).optional(),
  /** The variable holding each harness's API key: passed to that harness's process, and nothing else of ours is. */
  ORCH_CODEX_API_KEY_ENV: z
    .string()
    .regex(/^[A-Z_][A-Z0-9_]*$/)
    .default("OPENAI_API_KEY"),
  ORCH_CLAUDE_API_KEY_ENV: z
    .string()
    .regex(/^[A-Z_][A-Z0-9_]*$/)
    .default("ANTHROPIC_API_KEY"),
  ORCH_OPENCODE_API_KEY_ENV: z
    .string()
    .regex(/^[A-Z_][A-Z0-9_]*$/)
    .default("OPENAI_API_KEY"),
  /** A harness that prints nothing within this time after it was spawned is killed (seed 003: harness_server_startup_timeout_secs). */
  ORCH_HARNESS_STARTUP_TIMEOUT_MS: int(10_000, 100, 600_000),
  /** A harness run's wall clock (the step's timeout wins when shorter). */
  ORCH_HARNESS_TIMEOUT_MS: int(1_800_000, 1_000, 86_400_000),
  /** Log every event a harness prints as it printed it (seed 003: harness_log_raw_events). */
  ORCH_HARNESS_LOG_RAW_EVENTS: bool(false),
  /** Log every normalized session event (seed 003: harness_log_normalized_events). */
  ORCH_HARNESS_LOG_NORMALIZED_EVENTS: bool(false),

  // Worktrees (seed 003).
  /** The agent hub's workspace: `<workspace>/repos` (unless ORCH_PROJECTS_ROOT) and `<workspace>/worktrees`. */
  ORCH_WORKSPACE: z.string().min(1).optional(),
  /**
   * Where projects without a local checkout are cloned (or created): `<root>/<projectId>`;
   * `<workspace>/repos` when unset (seed 004: TASKSGODZILLA_PROJECTS_ROOT).
   */
  ORCH_PROJECTS_ROOT: z.string().min(1).optional(),
  /** Where sessions' worktrees go; `<workspace>/worktrees` when unset. */
  ORCH_WORKTREES_ROOT: z.string().min(1).optional(),
  /** Keep a failed session's worktree for inspection (its branch is kept either way). */
  ORCH_KEEP_FAILED_WORKTREES: bool(false),
  ORCH_GIT_BINARY: z.string().min(1).default("git"),
  ORCH_GIT_AUTHOR_NAME: z.string().min(1).max(200).default("Orchestrator"),
  ORCH_GIT_AUTHOR_EMAIL: z.string().min(3).max(200).default("orchestrator@localhost"),
  /**
   * Clone GitHub projects over SSH: a `https://github.com/<owner>/<repo>` git_url is cloned (and
   * its clone's origin set) as `git@github.com:<owner>/<repo>.git` (seed 004: TASKSGODZILLA_GH_SSH).
   */
  ORCH_GIT_PREFER_SSH: bool(false),
  ORCH_GIT_ALLOW_FORCE_PUSH: bool(false),
  ORCH_GIT_ALLOW_DELETE_UNMERGED_BRANCHES: bool(false),
  /** Removing a worktree with uncommitted changes, resetting a branch: off unless set. */
  ORCH_GIT_ALLOW_DESTRUCTIVE_AUTOMATION: bool(false),

  // Repository hosts (seed 003's vcs_repos): pushes, pull requests, checks, CI logs. Tokens come
  // only from the environment (GITHUB_TOKEN or GH_TOKEN, GITLAB_TOKEN), never from here.
  /**
   * The provider for GitHub forges (seed 003: `vcs_repo_provider`): `vcs_repos.github_rest` (default)
   * or `vcs_repos.github_gh_cli`. A GitLab forge always uses `vcs_repos.gitlab_rest`.
   */
  ORCH_VCS_REPO_PROVIDER: z.enum(VCS_REPO_PROVIDERS, { message: `must be one of ${VCS_REPO_PROVIDERS.join(", ")}` }).default("vcs_repos.github_rest"),
  /** GitHub's REST API (GitHub Enterprise: `https://<host>/api/v3`); a project's forge `apiUrl` wins. */
  ORCH_GITHUB_API_URL: url(FORGE_DEFAULT_API_URL.github),
  /** GitLab's REST API v4 (self-managed: `https://<host>/api/v4`); a project's forge `apiUrl` wins. */
  ORCH_GITLAB_API_URL: url(FORGE_DEFAULT_API_URL.gitlab),
  /** The `gh` CLI of `vcs_repos.github_gh_cli` (seed 003: `[github] binary`). */
  ORCH_GH_BINARY: z.string().min(1).default("gh"),
  /** One forge API call or `gh` command. */
  ORCH_FORGE_TIMEOUT_MS: int(30_000, 1_000, 600_000),
  /** Linear's GraphQL endpoint (seed 003: `[linear] api_url`); tests point it at a local server. */
  ORCH_LINEAR_API_URL: url(TRACKER_DEFAULT_API_URL["ticketing.linear"]),
  /** Shortcut's REST API v3 (seed 003: `[shortcut] api_url`). */
  ORCH_SHORTCUT_API_URL: url(TRACKER_DEFAULT_API_URL["ticketing.shortcut"]),
  /** One tracker API call. */
  ORCH_TRACKER_TIMEOUT_MS: int(30_000, 1_000, 600_000),
  /**
   * A ticket's writes (`ticket.update`) that the tracker fails retryably are tried this many times in
   * the hub, the first wait this long (doubling), before they are handed to the intake, which keeps
   * them and tries again on its own backoff (the hub's consumer slot is not held meanwhile).
   */
  ORCH_TICKET_UPDATE_TRIES: int(5, 1, 10),
  ORCH_TICKET_UPDATE_BACKOFF_MS: int(1_000, 10, 30_000),
  /** The most of a failing CI job's log a fix attempt is given (its useful tail). */
  ORCH_CI_LOG_MAX_BYTES: int(16_384, 1_024, 1_048_576),

  // The supervisor (seed 003's `[supervisor]`): the model people ask about a run. Unset, the local
  // LLM's OpenAI-compatible endpoint and model (Ollama serves one under `/v1`). The LLM policy
  // governs it like any model server.
  /** Its model (seed 003: `supervisor.model`); LOCAL_LLM_MODEL when unset. */
  ORCH_SUPERVISOR_MODEL: z.string().min(1).max(200).optional(),
  /** Its OpenAI-compatible endpoint (seed 003: `supervisor.openrouter_base_url`); the local LLM's when unset. */
  ORCH_SUPERVISOR_BASE_URL: url(),
  /** Its API key (a bearer token); never logged. Unset: OPENROUTER_API_KEY for openrouter.ai, LOCAL_LLM_API_KEY for the local LLM. */
  ORCH_SUPERVISOR_API_KEY: z.string().min(1).optional(),
  /** Seed 003's key variable, sent to openrouter.ai only. */
  OPENROUTER_API_KEY: z.string().min(1).optional(),
  /** One answer, to its last streamed token. */
  ORCH_SUPERVISOR_TIMEOUT_MS: int(120_000, 1_000, 3_600_000),

  // Sessions.
  /** How often a running session proves it is alive. */
  ORCH_SESSION_HEARTBEAT_MS: int(5_000, 100, 600_000),
  /** A session with no heartbeat for this long is timed out and its step retried. */
  ORCH_SESSION_TIMEOUT_MS: int(300_000, 1_000, 86_400_000),
  /** Between SIGTERM and SIGKILL of a cancelled session's process group. */
  ORCH_SESSION_KILL_GRACE_MS: int(3_000, 0, 60_000),
  /**
   * How long an agent's streamed text is gathered into one transcript event (seed 003:
   * `[database] chunk_event_flush_ms`); another kind of event flushes it at once.
   */
  ORCH_SESSION_DELTA_FLUSH_MS: int(100, 0, 10_000),
  /**
   * Seed 003's `runtime.allow_unsafe_command_paths`: off, each program setting (`ORCH_*_BINARY`)
   * must be a bare command name (looked up on PATH) or an absolute path of plain characters, so a
   * relative path (resolved against whatever directory a session runs in), `~`, `..`, spaces or
   * shell characters are refused at start.
   */
  ORCH_ALLOW_UNSAFE_COMMAND_PATHS: bool(false),
}).superRefine((c, ctx) => {
  if (c.ORCH_ALLOW_UNSAFE_COMMAND_PATHS) return;
  for (const key of COMMAND_PATH_SETTINGS) {
    const v = c[key];
    if (!SAFE_COMMAND.test(v) && !(SAFE_ABSOLUTE_PATH.test(v) && !v.split("/").includes(".."))) {
      ctx.addIssue({
        code: "custom",
        path: [key],
        message: `${JSON.stringify(v)} is not a bare command name or a plain absolute path; use one, or set runtime.allow_unsafe_command_paths (ORCH_ALLOW_UNSAFE_COMMAND_PATHS) to accept it`,
      });
    }
  }
});
export type AgentHubConfig = z.output<typeof AgentHubConfig>;

/**
 * Seed 003's `[database] synchronous` words, for the embedded nats-server's file store: FULL and
 * EXTRA fsync every acknowledged write (`sync_interval: always`, nats-server 2.10+); NORMAL and OFF
 * leave nats-server's periodic sync (every two minutes, and on clean shutdown).
 */
export const STORE_SYNC_MODES = ["OFF", "NORMAL", "FULL", "EXTRA"] as const;

/** The launchers' (`npm start`, `orch start`): where the embedded nats-server keeps JetStream, and how it syncs. */
export const RunnerConfig = z.object({
  /** The local data directory: `<dir>/nats` (JetStream) and `<dir>/workspace`; `.data/` in the checkout when unset. */
  ORCH_DATA_DIR: z.string().min(1).optional(),
  /** The embedded nats-server's JetStream store directory (seed 003: `event_store_path`); `<data dir>/nats` when unset. */
  ORCH_NATS_STORE_DIR: z.string().min(1).optional(),
  ORCH_NATS_SYNC: z
    .preprocess(
      (v) => (typeof v === "string" ? v.trim().toUpperCase() : v),
      z.enum(STORE_SYNC_MODES, { message: `must be one of ${STORE_SYNC_MODES.join(", ")}` }),
    )
    .default("NORMAL"),
  /** Role steps' executor: the stub (offline, no model) unless this or the file says otherwise. */
  ORCH_AGENT_EXECUTOR: executorName().optional(),
});
export type RunnerConfig = z.output<typeof RunnerConfig>;

/**
 * The scheduler fires timers (retry backoff, timeouts, wall clocks, periodic runs' ticks). Replicas
 * may run side by side: one holds the leader lease and fires, the others stand by.
 */
export const SchedulerConfig = CommonConfig.extend({
  /**
   * The leader lease's time to live: the active scheduler renews it every quarter of it; a standby
   * takes over once it has seen the lease unrenewed for this long (so a dead active one's timers
   * fire at most about this late).
   */
  ORCH_SCHEDULER_LEASE_TTL_MS: int(5_000, 500, 600_000),
  /** This scheduler's name in logs and in the lease (the host name and process id by default). */
  ORCH_INSTANCE_ID: instanceId.optional(),
});
export type SchedulerConfig = z.output<typeof SchedulerConfig>;

export const EventBusConfig = CommonConfig.extend({
  /**
   * How long a finished run (its history, its state, its place in the index) is kept after it ends;
   * a run that has not finished is kept whatever its age. Fractions are allowed (`0.5`: 12 hours).
   */
  ORCH_RUN_RETENTION_DAYS: decimal(30, 0.0001, 3650),
  /** How long commands are kept after they are applied (audit). */
  ORCH_COMMANDS_MAX_AGE_DAYS: int(7, 1, 3650),
  ORCH_DLQ_MAX_AGE_DAYS: int(30, 1, 3650),
  /** How long worker session events and finished session records are kept. */
  ORCH_SESSIONS_MAX_AGE_DAYS: int(7, 1, 3650),
});
export type EventBusConfig = z.output<typeof EventBusConfig>;

export type Env = Record<string, string | undefined>;

/** Seed 004's variable names, honoured as aliases of ours (ours win when both are set). */
const ALIASES: Record<string, string> = {
  TASKSGODZILLA_MAX_TOKENS_PER_STEP: "ORCH_MAX_TOKENS_PER_STEP",
  TASKSGODZILLA_MAX_TOKENS_PER_PROTOCOL: "ORCH_MAX_TOKENS_PER_RUN",
  TASKSGODZILLA_TOKEN_BUDGET_MODE: "ORCH_TOKEN_BUDGET_MODE",
  TASKSGODZILLA_API_TOKEN: "ORCH_API_TOKEN",
  TASKSGODZILLA_REQUIRE_ONBOARDING_CLARIFICATIONS: "ORCH_REQUIRE_ONBOARDING_CLARIFICATIONS",
  TASKSGODZILLA_AUTO_QA_ON_CI: "ORCH_AUTO_QA_ON_CI",
  AUTO_QA_ON_CI: "ORCH_AUTO_QA_ON_CI",
  TASKSGODZILLA_AUTO_QA_AFTER_EXEC: "ORCH_AUTO_QA_AFTER_EXEC",
  TASKSGODZILLA_GIT_USER: "ORCH_GIT_AUTHOR_NAME",
  TASKSGODZILLA_GIT_EMAIL: "ORCH_GIT_AUTHOR_EMAIL",
  TASKSGODZILLA_PROJECTS_ROOT: "ORCH_PROJECTS_ROOT",
  TASKSGODZILLA_GH_SSH: "ORCH_GIT_PREFER_SSH",
};

/**
 * Other software's variables the seeds document, which users often have set for something else:
 * never refused, never read, but each service that would have used one says once, at start, that
 * it is ignored and what to set instead.
 */
const IGNORED_VARIABLES: { variable: string; seed: string; services: readonly string[]; why: string }[] = [
  { variable: "DATABASE_URL", seed: "seed 002's database", services: ["gateway", "orchestrator"], why: "state lives in NATS JetStream (no SQL database)" },
  {
    variable: "AGENT_HUB_URL",
    seed: "seed 002's agent hub address",
    services: ["gateway", "orchestrator"],
    why: "agents are reached over NATS (the agent hub takes its work from JetStream), not over HTTP",
  },
  {
    variable: "TASKSGODZILLA_DB_URL",
    seed: "seed 004's database",
    services: ["gateway", "orchestrator"],
    why: "state lives in NATS JetStream (no Postgres or SQLite)",
  },
  {
    variable: "TASKSGODZILLA_REDIS_URL",
    seed: "seed 004's Redis job queue",
    services: ["gateway", "scheduler"],
    why: "jobs are queued in NATS JetStream (no Redis)",
  },
];

export interface StartupNotice {
  variable: string;
  message: string;
}

/** What `service` should warn about once at start: the variables above that are set in `env`. */
export function startupNotices(service: string, env: Env = process.env): StartupNotice[] {
  return IGNORED_VARIABLES.filter((v) => v.services.includes(service) && env[v.variable] !== undefined && env[v.variable] !== "").map((v) => ({
    variable: v.variable,
    message: `${v.variable} is set and ignored (${v.seed}): ${v.why}; set ORCH_NATS_URL to your NATS server instead`,
  }));
}

let lastFile: ConfigFile | undefined;

/** The configuration file the last `loadConfig` read, if any (for the service to log). */
export function configFileUsed(): ConfigFile | undefined {
  return lastFile;
}

/**
 * Validates `env`, over the configuration file it points at (the environment wins), against
 * `schema`; empty strings count as unset. Throws one ConfigError.
 */
export function loadConfig<S extends z.ZodType>(schema: S, env: Env = process.env): Readonly<z.output<S>> {
  let file: ConfigFile | undefined;
  try {
    file = readConfigFile(env);
  } catch (err) {
    if (err instanceof ConfigFileError) throw new ConfigError([`configuration file ${err.message}`]);
    throw new ConfigError([`configuration file: ${(err as Error).message}`]);
  }
  lastFile = file;
  // The file's own problems and the schema's, in one message.
  const fileProblems = (file?.problems ?? []).map((p) => `configuration file ${file!.path}: ${p}`);
  const cleaned: Record<string, string> = { ...file?.values };
  for (const [k, v] of Object.entries(env)) if (v !== undefined && v !== "") cleaned[k] = v;
  /** Settings taken from a seed's name: a problem with one names what the user set. */
  const viaAlias: Record<string, string> = {};
  for (const [alias, ours] of Object.entries(ALIASES)) {
    if (cleaned[alias] !== undefined && cleaned[ours] === undefined) {
      cleaned[ours] = cleaned[alias];
      viaAlias[ours] = alias;
    }
  }
  const r = schema.safeParse(cleaned);
  if (!r.success || fileProblems.length > 0) {
    throw new ConfigError([
      ...fileProblems,
      ...(r.success ? [] : r.error.issues).map((i) => {
        const key = i.path.join(".") || "(root)";
        return `${viaAlias[key] ? `${key} (set as ${viaAlias[key]})` : key}: ${i.message}`;
      }),
    ]);
  }
  return Object.freeze(r.data) as Readonly<z.output<S>>;
}
