import { z } from "zod";

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
      message:
        "redis is not supported: Orchestrator keeps its state in NATS JetStream; use ORCH_BACKEND=file (durable) or memory",
    }),
  /** seed 000: `mock` lets step payloads ask adapters to fail or take time; `live` ignores that. */
  ORCH_MODE: z.enum(["mock", "live"], { message: "must be mock or live" }).default("mock"),
  ORCH_LOG_LEVEL: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
  /** Replicas of every stream and bucket: 1 on one server, 3 on a 3-node cluster. */
  ORCH_NATS_REPLICAS: int(1, 1, 5),
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
});
export type GatewayConfig = z.output<typeof GatewayConfig>;

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
  ORCH_INSTANCE_ID: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, "must be [A-Za-z0-9_.-]{1,64}").optional(),
  /** Default token budget of every step of every run (seed 004: TASKSGODZILLA_MAX_TOKENS_PER_STEP). */
  ORCH_MAX_TOKENS_PER_STEP: z.coerce.number().int().min(1).optional(),
  /** Default token budget of every run (seed 004: TASKSGODZILLA_MAX_TOKENS_PER_PROTOCOL). */
  ORCH_MAX_TOKENS_PER_RUN: z.coerce.number().int().min(1).optional(),
  /** How those defaults act: strict (gate the run), warn (an event), off (seed 004: TASKSGODZILLA_TOKEN_BUDGET_MODE). */
  ORCH_TOKEN_BUDGET_MODE: z.enum(["strict", "warn", "off"], { message: "must be strict, warn or off" }).default("strict"),
});
export type OrchestratorConfig = z.output<typeof OrchestratorConfig>;

export const AgentHubConfig = CommonConfig.extend({
  /** Steps the agent hub runs at once; the work consumer's max-ack-pending. */
  ORCH_AGENT_CONCURRENCY: int(16, 1, 10_000),
  /** Who does a role step's work: `stub` (offline, deterministic, no model). */
  ORCH_AGENT_EXECUTOR: z.enum(["stub"], { message: "must be stub" }).default("stub"),
});
export type AgentHubConfig = z.output<typeof AgentHubConfig>;

export const SchedulerConfig = CommonConfig.extend({});
export type SchedulerConfig = z.output<typeof SchedulerConfig>;

export const EventBusConfig = CommonConfig.extend({
  /** How long run events (and with them SSE replay) are kept. */
  ORCH_EVENTS_MAX_AGE_DAYS: int(30, 1, 3650),
  /** How long commands are kept after they are applied (audit). */
  ORCH_COMMANDS_MAX_AGE_DAYS: int(7, 1, 3650),
  ORCH_DLQ_MAX_AGE_DAYS: int(30, 1, 3650),
});
export type EventBusConfig = z.output<typeof EventBusConfig>;

export type Env = Record<string, string | undefined>;

/** Seed 004's variable names, honoured as aliases of ours (ours win when both are set). */
const ALIASES: Record<string, string> = {
  TASKSGODZILLA_MAX_TOKENS_PER_STEP: "ORCH_MAX_TOKENS_PER_STEP",
  TASKSGODZILLA_MAX_TOKENS_PER_PROTOCOL: "ORCH_MAX_TOKENS_PER_RUN",
  TASKSGODZILLA_TOKEN_BUDGET_MODE: "ORCH_TOKEN_BUDGET_MODE",
};

/** Validates `env` against `schema`; empty strings count as unset. Throws one ConfigError. */
export function loadConfig<S extends z.ZodType>(schema: S, env: Env = process.env): Readonly<z.output<S>> {
  const cleaned: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && v !== "") cleaned[k] = v;
  for (const [alias, ours] of Object.entries(ALIASES)) if (cleaned[alias] !== undefined && cleaned[ours] === undefined) cleaned[ours] = cleaned[alias];
  const r = schema.safeParse(cleaned);
  if (!r.success) {
    throw new ConfigError(r.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`));
  }
  return Object.freeze(r.data) as Readonly<z.output<S>>;
}
