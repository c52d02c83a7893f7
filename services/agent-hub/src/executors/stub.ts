import type { WorkItem } from "@orch/contracts";
import type { AdapterContext, AdapterResult } from "../adapters/index.js";

/**
 * The offline executor (`ORCH_AGENT_EXECUTOR=stub`): no model, deterministic. It answers every role
 * step with a structured result built from the work it was given, so whole workflows (SpecKit
 * phases, protocols, tickets) run end to end with nothing else installed: a plan step plans no
 * extra steps, a QA step passes, every other step reports what it did and to which artifact.
 */
export async function stubExecutor({ item, logger }: AdapterContext): Promise<AdapterResult> {
  const artifact = typeof item.payload?.artifact === "string" ? item.payload.artifact : undefined;
  const output = outputFor(item, artifact);
  logger.info({ role: item.role, type: item.type, kind: item.kind }, `stub ${item.role}: ${item.type}`);
  return {
    ok: true,
    notes: [`stub ${item.role} ${item.kind === "qa" ? "checked" : "did"} ${item.type}${item.rework > 0 ? ` (rework ${item.rework})` : ""}`],
    output,
    usage: { tokensIn: 0, tokensOut: 0, costUsd: 0, wallMs: 0 },
  };
}

function outputFor(item: WorkItem, artifact: string | undefined): Record<string, unknown> {
  switch (item.kind) {
    case "plan":
      return { summary: `plan for ${item.title ?? item.stepId}`, steps: [] };
    case "qa":
      return { passed: true, summary: `QA of ${item.stepId} passed` };
    default:
      return {
        summary: `${item.role} completed ${item.title ?? item.type}`,
        role: item.role,
        type: item.type,
        ...(artifact ? { artifact } : {}),
        ...(item.feedback ? { addressed: item.feedback } : {}),
        iteration: item.iteration,
      };
  }
}
