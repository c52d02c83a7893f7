import type { AgentHubConfig, ExecutorName } from "@orch/config";
import type { Logger } from "@orch/logging";
import type { Router } from "../sessions/runner.js";
import { HarnessExecutor } from "../harness/index.js";
import { LocalLlmExecutor, localModelFor } from "../llm/index.js";
import { StubExecutor } from "./stub.js";
import type { Executor } from "./types.js";

/**
 * Routing (seed 001's RoutedAgentExecutor): each role goes to the executor
 * `ORCH_AGENT_EXECUTOR_<ROLE>` names, else to `ORCH_AGENT_EXECUTOR`; executors are built on first
 * use, once per hub.
 */

const ROLE_KEYS: Record<string, keyof AgentHubConfig> = {
  architect: "ORCH_AGENT_EXECUTOR_ARCHITECT",
  implementer: "ORCH_AGENT_EXECUTOR_IMPLEMENTER",
  reviewer: "ORCH_AGENT_EXECUTOR_REVIEWER",
  tester: "ORCH_AGENT_EXECUTOR_TESTER",
  maintainer: "ORCH_AGENT_EXECUTOR_MAINTAINER",
  qa: "ORCH_AGENT_EXECUTOR_QA",
};

export type ExecutorFactory = (name: ExecutorName, cfg: AgentHubConfig, logger: Logger) => Executor | undefined;

/** The executors this hub can build (a bad setting throws, naming it). */
export const buildExecutor: ExecutorFactory = (name, cfg, logger) => {
  switch (name) {
    case "stub":
      return new StubExecutor();
    case "local":
      return new LocalLlmExecutor(cfg, logger);
    case "codex":
    case "claude":
    case "opencode":
      return new HarnessExecutor(cfg, logger, name);
    default:
      return undefined;
  }
};

export class ExecutorRouter implements Router {
  readonly #built = new Map<string, Executor | undefined>();

  constructor(
    private readonly cfg: AgentHubConfig,
    private readonly logger: Logger,
    private readonly factory: ExecutorFactory = buildExecutor,
  ) {}

  nameFor(role: string): string {
    const key = ROLE_KEYS[role];
    const routed = key ? (this.cfg[key] as ExecutorName | undefined) : undefined;
    return routed ?? this.cfg.ORCH_AGENT_EXECUTOR;
  }

  get(name: string): Executor | undefined {
    if (!this.#built.has(name)) this.#built.set(name, this.factory(name as ExecutorName, this.cfg, this.logger.child({ executor: name })));
    return this.#built.get(name);
  }

  modelFor(role: string, executor: string): string | undefined {
    switch (executor) {
      case "local":
        return localModelFor(this.cfg, role);
      case "codex":
        return this.cfg.ORCH_CODEX_MODEL;
      case "claude":
        return this.cfg.ORCH_CLAUDE_MODEL;
      case "opencode":
        return this.cfg.ORCH_OPENCODE_MODEL;
      default:
        return undefined;
    }
  }

  /** The executors the routing table names (default and per role), for readiness and logs. */
  routed(): string[] {
    return [...new Set([this.cfg.ORCH_AGENT_EXECUTOR, ...Object.keys(ROLE_KEYS).map((r) => this.nameFor(r))])];
  }
}
