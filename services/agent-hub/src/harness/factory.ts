import type { AgentHubConfig } from "@orch/config";
import { ClaudeProvider } from "./claude.js";
import { CodexProvider } from "./codex.js";
import { OpenCodeProvider } from "./opencode.js";
import { HARNESS_NAMES, type HarnessName, type HarnessProvider } from "./types.js";

/**
 * The provider factory (seed 003): a harness by its routing name. Seed 003's `harness.codex` and
 * `harness.opencode`, and `claude-code`, are normalised to these names by the configuration schema.
 */
export function createHarnessProvider(name: HarnessName, config: AgentHubConfig): HarnessProvider {
  switch (name) {
    case "codex":
      return new CodexProvider(config);
    case "claude":
      return new ClaudeProvider(config);
    case "opencode":
      return new OpenCodeProvider(config);
  }
}

export function isHarnessName(name: string): name is HarnessName {
  return (HARNESS_NAMES as readonly string[]).includes(name);
}
