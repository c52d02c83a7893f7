import type { AgentHubConfig } from "@orch/config";
import { DEFAULT_OLLAMA_URL } from "../llm/ollama.js";
import { DEFAULT_OPENAI_URL, openAiBase } from "../llm/openai.js";
import { checkEndpoint, policyFromConfig, type PolicyVerdict } from "../llm/policy.js";

/**
 * Where the supervisor's model is: `ORCH_SUPERVISOR_BASE_URL` (an OpenAI-compatible base, used as
 * given: seed 003's `https://openrouter.ai/api/v1`) with `ORCH_SUPERVISOR_MODEL`; unset, the local
 * LLM's server as an OpenAI-compatible one (`LOCAL_LLM_URL` with `/v1`: Ollama serves
 * `/v1/chat/completions` too) and its model, so a laptop answers with the model it already has.
 *
 * The key: `ORCH_SUPERVISOR_API_KEY`; else seed 003's `OPENROUTER_API_KEY`, sent to openrouter.ai
 * only; else, for the local LLM, `LOCAL_LLM_API_KEY`. A key is never sent where it was not meant to go.
 */

export type SupervisorConfig = Pick<
  AgentHubConfig,
  | "ORCH_SUPERVISOR_BASE_URL"
  | "ORCH_SUPERVISOR_MODEL"
  | "ORCH_SUPERVISOR_API_KEY"
  | "OPENROUTER_API_KEY"
  | "ORCH_SUPERVISOR_TIMEOUT_MS"
  | "LOCAL_LLM_API"
  | "LOCAL_LLM_URL"
  | "LOCAL_LLM_MODEL"
  | "LOCAL_LLM_API_KEY"
  | "ORCH_LLM_POLICY"
  | "ALLOW_HOSTED_LLM"
  | "LOCAL_LLM_ALLOWED_HOSTS"
>;

export interface SupervisorEndpoint {
  /** The OpenAI-compatible base (`…/v1`): `<base>/chat/completions` is called. */
  baseUrl: string;
  /** Whether `baseUrl` was configured for the supervisor (else it is the local LLM's). */
  own: boolean;
  model: string;
  apiKey?: string;
  /** What the LLM policy says of `baseUrl`. */
  verdict: PolicyVerdict;
}

const isOpenRouter = (url: string) => {
  try {
    const h = new URL(url).hostname.toLowerCase();
    return h === "openrouter.ai" || h.endsWith(".openrouter.ai");
  } catch {
    return false;
  }
};

export function supervisorEndpoint(cfg: SupervisorConfig): SupervisorEndpoint {
  const own = cfg.ORCH_SUPERVISOR_BASE_URL !== undefined;
  const baseUrl = own
    ? cfg.ORCH_SUPERVISOR_BASE_URL!.replace(/\/+$/, "")
    : openAiBase(cfg.LOCAL_LLM_URL ?? (cfg.LOCAL_LLM_API === "ollama" ? DEFAULT_OLLAMA_URL : DEFAULT_OPENAI_URL));
  const apiKey = cfg.ORCH_SUPERVISOR_API_KEY ?? (own ? (isOpenRouter(baseUrl) ? cfg.OPENROUTER_API_KEY : undefined) : cfg.LOCAL_LLM_API_KEY);
  return {
    baseUrl,
    own,
    model: cfg.ORCH_SUPERVISOR_MODEL ?? cfg.LOCAL_LLM_MODEL,
    ...(apiKey ? { apiKey } : {}),
    verdict: checkEndpoint(baseUrl, policyFromConfig(cfg)),
  };
}
