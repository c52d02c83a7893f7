import type { Names } from "@orch/contracts";
import { DEFAULT_TOPOLOGY, topologySpec, type TopologySpec } from "./topology.js";

const DAY_MS = 86_400_000;

/**
 * The topology as the environment describes it. Every service derives the same spec: the
 * event-bus provisions it, the others wait for the names it lists.
 */
export function topologyFromConfig(
  names: Names,
  cfg: {
    ORCH_BACKEND: string;
    ORCH_NATS_REPLICAS: number;
    ORCH_DUPLICATE_WINDOW_MS?: number;
    ORCH_COMMANDS_MAX_AGE_DAYS?: number;
    ORCH_DLQ_MAX_AGE_DAYS?: number;
    ORCH_SESSIONS_MAX_AGE_DAYS?: number;
  },
): TopologySpec {
  return topologySpec(names, {
    ...DEFAULT_TOPOLOGY,
    storage: cfg.ORCH_BACKEND === "memory" ? "memory" : "file",
    replicas: cfg.ORCH_NATS_REPLICAS,
    duplicateWindowMs: cfg.ORCH_DUPLICATE_WINDOW_MS ?? DEFAULT_TOPOLOGY.duplicateWindowMs,
    commandsMaxAgeMs: (cfg.ORCH_COMMANDS_MAX_AGE_DAYS ?? 7) * DAY_MS,
    dlqMaxAgeMs: (cfg.ORCH_DLQ_MAX_AGE_DAYS ?? 30) * DAY_MS,
    sessionsMaxAgeMs: (cfg.ORCH_SESSIONS_MAX_AGE_DAYS ?? 7) * DAY_MS,
  });
}
