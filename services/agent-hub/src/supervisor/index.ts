/** The supervisor: a model people ask about a run, answering over NATS (see @orch/contracts `supervisor.ts`). */
export { Supervisor, type SupervisorDeps } from "./service.js";
export { supervisorEndpoint, type SupervisorEndpoint, type SupervisorConfig } from "./endpoint.js";
export {
  buildSupervisorPrompt,
  transcriptLines,
  eventsSection,
  fit,
  PROMPT_MAX_CHARS,
  SYSTEM_PROMPT,
  type SupervisorContext,
  type SessionContext,
} from "./prompt.js";
export { readRunContext, pickSessions } from "./context.js";
export { secretRedactor, isSecretKey, REDACTED, type Redact } from "./redact.js";
