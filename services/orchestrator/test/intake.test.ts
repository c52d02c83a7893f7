import { describe, expect, it } from "vitest";
import { loadConfig, OrchestratorConfig } from "@orch/config";
import { IntakeRules } from "@orch/contracts";
import { intakeRules } from "../src/intake.js";

/** The intake's rules as the core makes them from its settings: what the intake run is created with. */

const cfg = (env: Record<string, string>) => loadConfig(OrchestratorConfig, { ORCH_CONFIG: "none", ...env });

describe("intakeRules", () => {
  it("seed 003's [linear] keys, the intake's own, and the ticket pipeline accepted as each run is created", () => {
    const r = intakeRules(
      cfg({
        ORCH_LINEAR_SYNC_INTERVAL_SECS: "30",
        ORCH_LINEAR_FETCH_LIMIT: "20",
        ORCH_LINEAR_SYNC_ASSIGNED_TO_ME: "false",
        ORCH_LINEAR_SYNC_STATES: "Todo",
        ORCH_LINEAR_WORKFLOW_COMMENT_SUMMARIES: "true",
        ORCH_TICKET_INTAKE_BREAKER_FAILURES: "4",
      }),
    );
    expect(r).toMatchObject({
      provider: "ticketing.linear",
      everyMs: 30_000,
      query: { assignedToMe: false, states: ["Todo"], limit: 20 },
      commentSummaries: true,
      attachPrLinks: true,
      breaker: { failures: 4, coolDownMs: 600_000 },
      definition: { id: "ticket" },
      acceptEvent: "TicketAccepted",
      mode: "mock",
    });
    expect(r.stateMap).toHaveLength(8);
    // What the core sends is what the kernel takes.
    expect(IntakeRules.safeParse(r).success).toBe(true);
  });

  it("Shortcut's fetch limit for Shortcut; a definition's version; no accept event with none", () => {
    const r = intakeRules(
      cfg({
        ORCH_TICKETING_PROVIDER: "ticketing.shortcut",
        ORCH_SHORTCUT_FETCH_LIMIT: "7",
        ORCH_TICKET_INTAKE_DEFINITION: "ticket@1",
        ORCH_TICKET_INTAKE_ACCEPT_EVENT: "none",
      }),
    );
    expect(r).toMatchObject({ provider: "ticketing.shortcut", query: { limit: 7 }, definition: { id: "ticket", version: 1 } });
    expect(r.acceptEvent).toBeUndefined();
  });

  it("GitHub's and GitLab's issues: the repository and the label or assignee select them; intake without the repository is refused at start", () => {
    const gh = intakeRules(
      cfg({
        ORCH_TICKETING_PROVIDER: "github_issues",
        ORCH_GITHUB_ISSUES_REPOSITORY: "acme/widgets",
        ORCH_GITHUB_ISSUES_LABEL: "orchestrate",
        ORCH_GITLAB_ISSUES_PROJECT: "other/project",
      }),
    );
    expect(gh).toMatchObject({ provider: "ticketing.github_issues", query: { repository: "acme/widgets", label: "orchestrate" } });
    expect(gh.query.assignee).toBeUndefined();
    expect(IntakeRules.safeParse(gh).success).toBe(true);
    const gl = intakeRules(
      cfg({ ORCH_TICKETING_PROVIDER: "ticketing.gitlab_issues", ORCH_GITLAB_ISSUES_PROJECT: "acme/platform/widgets", ORCH_GITLAB_ISSUES_ASSIGNEE: "orch-bot" }),
    );
    expect(gl.query).toMatchObject({ repository: "acme/platform/widgets", assignee: "orch-bot" });
    expect(intakeRules(cfg({})).query.repository).toBeUndefined();
    expect(() => cfg({ ORCH_TICKETING_PROVIDER: "github_issues", ORCH_TICKET_INTAKE_ENABLED: "true" })).toThrow(
      /ORCH_GITHUB_ISSUES_REPOSITORY: ticket intake from github_issues needs the repository whose issues are tickets \(\[github_issues\] repository\)/,
    );
    expect(() => cfg({ ORCH_TICKETING_PROVIDER: "gitlab_issues", ORCH_TICKET_INTAKE_ENABLED: "true" })).toThrow(/ORCH_GITLAB_ISSUES_PROJECT/);
  });
});
