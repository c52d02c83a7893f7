import { randomUUID } from "node:crypto";
import { sendCommand, type Bus } from "@orch/bus";
import type { OrchestratorConfig } from "@orch/config";
import type { IntakeRules, TicketingProviderId } from "@orch/contracts";
import { INTAKE_DEFAULTS, INTAKE_DEFINITION, intakeRunId } from "@orch/engine";
import type { Logger } from "@orch/logging";
import { liveInChain } from "./run-chains.js";

/** The intake's rules the core's settings give (seed 003's `[linear]`, `[shortcut]`, and the intake's own). */
export function intakeRules(cfg: Readonly<OrchestratorConfig>): IntakeRules {
  const provider = `ticketing.${cfg.ORCH_TICKETING_PROVIDER}` as TicketingProviderId;
  return {
    provider,
    everyMs: cfg.ORCH_LINEAR_SYNC_INTERVAL_SECS * 1_000,
    query: {
      assignedToMe: cfg.ORCH_LINEAR_SYNC_ASSIGNED_TO_ME,
      states: cfg.ORCH_LINEAR_SYNC_STATES,
      limit: provider === "ticketing.shortcut" ? cfg.ORCH_SHORTCUT_FETCH_LIMIT : cfg.ORCH_LINEAR_FETCH_LIMIT,
      ...issueSelection(cfg, provider),
    },
    stateMap: cfg.ORCH_LINEAR_WORKFLOW_STATE_MAP,
    commentSummaries: cfg.ORCH_LINEAR_WORKFLOW_COMMENT_SUMMARIES,
    attachPrLinks: cfg.ORCH_LINEAR_WORKFLOW_ATTACH_PR_LINKS,
    retry: { initialMs: cfg.ORCH_TICKET_INTAKE_BACKOFF_MS, multiplier: INTAKE_DEFAULTS.retry.multiplier, maxMs: cfg.ORCH_TICKET_INTAKE_BACKOFF_MAX_MS },
    breaker: { failures: cfg.ORCH_TICKET_INTAKE_BREAKER_FAILURES, coolDownMs: cfg.ORCH_TICKET_INTAKE_BREAKER_COOLDOWN_MS },
    quarantineAfter: cfg.ORCH_TICKET_INTAKE_QUARANTINE_AFTER,
    writeAbandonAfter: cfg.ORCH_TICKET_INTAKE_WRITE_ABANDON_AFTER,
    maxNewPerSync: INTAKE_DEFAULTS.maxNewPerSync,
    definition: definitionRef(cfg.ORCH_TICKET_INTAKE_DEFINITION),
    ...(cfg.ORCH_TICKET_INTAKE_ACCEPT_EVENT !== "none" ? { acceptEvent: cfg.ORCH_TICKET_INTAKE_ACCEPT_EVENT } : {}),
    mode: cfg.ORCH_MODE,
  };
}

/** Which issues are tickets, for the forges' issue trackers: the repository, and its label and/or assignee. */
function issueSelection(cfg: Readonly<OrchestratorConfig>, provider: TicketingProviderId): Pick<IntakeRules["query"], "repository" | "label" | "assignee"> {
  const [repository, label, assignee] =
    provider === "ticketing.github_issues"
      ? [cfg.ORCH_GITHUB_ISSUES_REPOSITORY, cfg.ORCH_GITHUB_ISSUES_LABEL, cfg.ORCH_GITHUB_ISSUES_ASSIGNEE]
      : provider === "ticketing.gitlab_issues"
        ? [cfg.ORCH_GITLAB_ISSUES_PROJECT, cfg.ORCH_GITLAB_ISSUES_LABEL, cfg.ORCH_GITLAB_ISSUES_ASSIGNEE]
        : [];
  return { ...(repository ? { repository } : {}), ...(label ? { label } : {}), ...(assignee ? { assignee } : {}) };
}

/** `id` or `id@version` (ORCH_TICKET_INTAKE_DEFINITION). */
function definitionRef(v: string): IntakeRules["definition"] {
  const [id, version] = v.split("@");
  return { id: id!, ...(version ? { version: Number(version) } : {}) };
}

/**
 * Ticket intake (ORCH_TICKET_INTAKE_ENABLED) as a run the core keeps: `intake-<provider>`, a run of
 * the `ticket.intake` built-in. At start each core replica sends what the settings say,
 * idempotently, so replicas and restarts agree: on, the intake is created (command id from its run
 * id) or given the settings' rules (`set_intake`: the same rules change nothing, a pause made in the
 * API is kept); off, it is cancelled. One cancelled is not brought back: turned on again, the next in
 * its chain is created (`<id>-<its last stream sequence>`); ticket runs are named by their ticket, so
 * none is created twice by a new intake.
 */
export async function keepTicketIntake(bus: Bus, cfg: Readonly<OrchestratorConfig>, logger: Logger): Promise<void> {
  const rules = intakeRules(cfg);
  const { runId, live } = await liveInChain(bus, intakeRunId(rules.provider));
  const signal = (name: "cancel" | "set_intake", reason: string) =>
    sendCommand(bus, {
      type: "run.signal",
      runId,
      issuedAt: Date.now(),
      actor: "orchestrator",
      // Unique: the same signal again is a no-op by meaning, not by id (a toggled setting must apply).
      commandId: `intake:${runId}:${randomUUID()}`,
      signal: name === "cancel" ? { name } : { name, rules },
      reason,
    });
  if (!cfg.ORCH_TICKET_INTAKE_ENABLED) {
    if (!live) return;
    await signal("cancel", "ORCH_TICKET_INTAKE_ENABLED is off");
    logger.info({ runId }, "ticket intake off");
    return;
  }
  if (live) await signal("set_intake", "ticket intake settings at start");
  else
    await sendCommand(bus, {
      type: "run.create",
      runId,
      issuedAt: Date.now(),
      actor: "orchestrator",
      commandId: `create:${runId}`,
      projectId: cfg.ORCH_TICKET_INTAKE_PROJECT,
      definition: { id: INTAKE_DEFINITION },
      title: `ticket intake: ${rules.provider}`,
      input: rules as unknown as Record<string, unknown>,
      autoStart: true,
      mode: cfg.ORCH_MODE,
    });
  logger.info({ runId, provider: rules.provider, everyMs: rules.everyMs, project: cfg.ORCH_TICKET_INTAKE_PROJECT }, "ticket intake on");
}
