export { HarnessExecutor, type HarnessExecutorOptions } from "./executor.js";
export { createHarnessProvider, isHarnessName } from "./factory.js";
export { HarnessError } from "./errors.js";
export { CodexNormalizer, CodexProvider, codexConfigToml } from "./codex.js";
export { ClaudeNormalizer, ClaudeProvider } from "./claude.js";
export { OpenCodeNormalizer, OpenCodeProvider, opencodeConfig } from "./opencode.js";
export { resolveBinary, runChild, type ChildEnd, type ChildSpec } from "./process.js";
export { redactor, REDACTED, type Redactor } from "./redact.js";
export { HARNESS_NAMES, type HarnessName, type HarnessOutcome, type HarnessProvider, type Invocation, type Normalizer, type PrepareInput } from "./types.js";
