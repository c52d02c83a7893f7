/** The local LLM executor and what it is built from (wire clients, policy, structured answers). */
export { LocalLlmExecutor, llmReadiness, localModelFor } from "./executor.js";
export { LlmError, LlmFailure } from "./errors.js";
export { checkEndpoint, isLocalHost, policyFromConfig, type LlmPolicy, type LlmPolicyName, type PolicyVerdict } from "./policy.js";
export { OllamaChat, DEFAULT_OLLAMA_URL } from "./ollama.js";
export { OpenAiChat, DEFAULT_OPENAI_URL, openAiBase } from "./openai.js";
export { parseAgentResponse, repairPrompt, fromAgentResponse, fromText, type ParsedResponse } from "./response.js";
export type { ChatApi, ChatMessage, ChatRequest, ChatTurn, StreamSink, ToolCall, ToolSpec } from "./chat.js";
