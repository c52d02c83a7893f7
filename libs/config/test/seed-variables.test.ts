import { describe, expect, it } from "vitest";
import { AgentHubConfig, ConfigError, EventBusConfig, GatewayConfig, OrchestratorConfig, SchedulerConfig, loadConfig, startupNotices } from "../src/index.js";

/** The seeds' variables (docs/configuration.md, "Seed variables"): each works, or is refused or reported. */

function problems(f: () => unknown): string[] {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error("expected a ConfigError");
}

describe("ORCH_TASK_STORE and TASK_QUEUE (seed 001)", () => {
  it("accept jetstream or nats, and unset", () => {
    for (const schema of [GatewayConfig, SchedulerConfig, OrchestratorConfig, AgentHubConfig, EventBusConfig]) {
      expect(loadConfig(schema, {}).ORCH_TASK_STORE).toBeUndefined();
      const c = loadConfig(schema, { ORCH_TASK_STORE: "jetstream", TASK_QUEUE: "NATS" });
      expect([c.ORCH_TASK_STORE, c.TASK_QUEUE]).toEqual(["jetstream", "jetstream"]);
    }
  });

  it("refuse seed 001's postgres and redis (and anything else) with one clear error per variable, in every service", () => {
    for (const schema of [GatewayConfig, SchedulerConfig, OrchestratorConfig, AgentHubConfig, EventBusConfig]) {
      const p = problems(() => loadConfig(schema, { ORCH_TASK_STORE: "postgres", TASK_QUEUE: "redis" }));
      expect(p).toHaveLength(2);
      expect(p[0]).toMatch(/^ORCH_TASK_STORE: "postgres" is not supported: tasks are stored in NATS JetStream.*set jetstream/);
      expect(p[1]).toMatch(/^TASK_QUEUE: "redis" is not supported: tasks are queued in NATS JetStream.*set jetstream/);
    }
    expect(problems(() => loadConfig(SchedulerConfig, { TASK_QUEUE: "sqs" }))[0]).toMatch(/^TASK_QUEUE: "sqs" is not supported/);
  });
});

describe("GITHUB_APP_ID (seed 001)", () => {
  it("is the gateway's, a numeric id", () => {
    expect(loadConfig(GatewayConfig, {}).GITHUB_APP_ID).toBeUndefined();
    expect(loadConfig(GatewayConfig, { GITHUB_APP_ID: "123456" }).GITHUB_APP_ID).toBe("123456");
    expect(problems(() => loadConfig(GatewayConfig, { GITHUB_APP_ID: "my-app" }))[0]).toMatch(/^GITHUB_APP_ID: must be the GitHub App's numeric id/);
  });
});

describe("startupNotices: DATABASE_URL, AGENT_HUB_URL (seed 002), TASKSGODZILLA_DB_URL, TASKSGODZILLA_REDIS_URL (seed 004)", () => {
  const env = {
    DATABASE_URL: "sqlite:///./data/orchestrator.db",
    AGENT_HUB_URL: "http://localhost:8001",
    TASKSGODZILLA_DB_URL: "postgresql://tg:tg@localhost:5433/tg",
    TASKSGODZILLA_REDIS_URL: "redis://localhost:6380/0",
  };

  it("are never refused", () => {
    for (const schema of [GatewayConfig, SchedulerConfig, OrchestratorConfig, AgentHubConfig, EventBusConfig])
      expect(() => loadConfig(schema, env)).not.toThrow();
  });

  it("each service that would have used one warns once that it is ignored, why, and to set ORCH_NATS_URL", () => {
    const gw = startupNotices("gateway", env);
    expect(gw.map((n) => n.variable)).toEqual(["DATABASE_URL", "AGENT_HUB_URL", "TASKSGODZILLA_DB_URL", "TASKSGODZILLA_REDIS_URL"]);
    for (const n of gw) expect(n.message).toMatch(new RegExp(`^${n.variable} is set and ignored .*NATS.*; set ORCH_NATS_URL to your NATS server instead$`));
    expect(gw[0]!.message).toContain("state lives in NATS JetStream");
    expect(gw[1]!.message).toContain("agents are reached over NATS");
    expect(startupNotices("orchestrator", env).map((n) => n.variable)).toEqual(["DATABASE_URL", "AGENT_HUB_URL", "TASKSGODZILLA_DB_URL"]);
    expect(startupNotices("scheduler", env).map((n) => n.variable)).toEqual(["TASKSGODZILLA_REDIS_URL"]);
    expect(startupNotices("agent-hub", env)).toEqual([]);
    expect(startupNotices("event-bus", env)).toEqual([]);
  });

  it("say nothing when none is set (or set empty)", () => {
    expect(startupNotices("gateway", {})).toEqual([]);
    expect(startupNotices("gateway", { DATABASE_URL: "" })).toEqual([]);
    expect(startupNotices("scheduler", { TASKSGODZILLA_REDIS_URL: "fakeredis://" })).toHaveLength(1);
  });
});

describe("seed 004's agent hub variables, as aliases (ours win)", () => {
  it("TASKSGODZILLA_GIT_USER / _EMAIL → ORCH_GIT_AUTHOR_NAME / _EMAIL", () => {
    const c = loadConfig(AgentHubConfig, { TASKSGODZILLA_GIT_USER: "TG Bot", TASKSGODZILLA_GIT_EMAIL: "bot@tg.example" });
    expect([c.ORCH_GIT_AUTHOR_NAME, c.ORCH_GIT_AUTHOR_EMAIL]).toEqual(["TG Bot", "bot@tg.example"]);
    expect(loadConfig(AgentHubConfig, { TASKSGODZILLA_GIT_EMAIL: "bot@tg.example", ORCH_GIT_AUTHOR_EMAIL: "ours@x.example" }).ORCH_GIT_AUTHOR_EMAIL).toBe(
      "ours@x.example",
    );
  });

  it("TASKSGODZILLA_PROJECTS_ROOT → ORCH_PROJECTS_ROOT (unset by default)", () => {
    expect(loadConfig(AgentHubConfig, {}).ORCH_PROJECTS_ROOT).toBeUndefined();
    expect(loadConfig(AgentHubConfig, { TASKSGODZILLA_PROJECTS_ROOT: "/srv/projects" }).ORCH_PROJECTS_ROOT).toBe("/srv/projects");
    expect(loadConfig(AgentHubConfig, { TASKSGODZILLA_PROJECTS_ROOT: "/srv/projects", ORCH_PROJECTS_ROOT: "/data" }).ORCH_PROJECTS_ROOT).toBe("/data");
  });

  it("TASKSGODZILLA_GH_SSH → ORCH_GIT_PREFER_SSH (false by default; a non-boolean is refused)", () => {
    expect(loadConfig(AgentHubConfig, {}).ORCH_GIT_PREFER_SSH).toBe(false);
    expect(loadConfig(AgentHubConfig, { TASKSGODZILLA_GH_SSH: "true" }).ORCH_GIT_PREFER_SSH).toBe(true);
    expect(problems(() => loadConfig(AgentHubConfig, { TASKSGODZILLA_GH_SSH: "ssh" }))[0]).toMatch(
      /^ORCH_GIT_PREFER_SSH \(set as TASKSGODZILLA_GH_SSH\): must be true or false/,
    );
  });
});

describe("TASKSGODZILLA_REQUIRE_ONBOARDING_CLARIFICATIONS (seed 004)", () => {
  it("is ORCH_REQUIRE_ONBOARDING_CLARIFICATIONS under its seed name (ours wins)", () => {
    expect(loadConfig(GatewayConfig, {}).ORCH_REQUIRE_ONBOARDING_CLARIFICATIONS).toBe(false);
    expect(loadConfig(GatewayConfig, { TASKSGODZILLA_REQUIRE_ONBOARDING_CLARIFICATIONS: "true" }).ORCH_REQUIRE_ONBOARDING_CLARIFICATIONS).toBe(true);
    expect(
      loadConfig(GatewayConfig, { TASKSGODZILLA_REQUIRE_ONBOARDING_CLARIFICATIONS: "true", ORCH_REQUIRE_ONBOARDING_CLARIFICATIONS: "false" })
        .ORCH_REQUIRE_ONBOARDING_CLARIFICATIONS,
    ).toBe(false);
  });
});

describe("seed 001's worker and periodic runs (the orchestrator's: run policy)", () => {
  it("are the orchestrator's settings, with the seed's names and defaults; the scheduler has none", () => {
    const d = loadConfig(OrchestratorConfig, {});
    expect([d.ORCH_WORKER_ENABLED, d.ORCH_WORKER_MAX_RETRIES, d.ORCH_WORKER_BACKOFF_MS, d.ORCH_WORKER_POLL_INTERVAL_MS]).toEqual([false, 3, 1_000, undefined]);
    expect([d.ORCH_SCHEDULER_ENABLED, d.ORCH_SCHEDULE_INTERVAL_MS, d.ORCH_SCHEDULE_DESCRIPTION]).toEqual([false, 60_000, "Periodic run"]);
    expect(d.ORCH_SCHEDULE_ROLES).toEqual(["architect", "implementer", "reviewer", "tester", "maintainer"]);
    const c = loadConfig(OrchestratorConfig, { ORCH_WORKER_ENABLED: "on", ORCH_WORKER_MAX_RETRIES: "2", ORCH_SCHEDULE_ROLES: "tester, architect" });
    expect([c.ORCH_WORKER_ENABLED, c.ORCH_WORKER_MAX_RETRIES, c.ORCH_SCHEDULE_ROLES]).toEqual([true, 2, ["tester", "architect"]]);
    expect(problems(() => loadConfig(OrchestratorConfig, { ORCH_SCHEDULE_ROLES: "janitor" }))[0]).toMatch(/^ORCH_SCHEDULE_ROLES\.0: must be one of architect/);
    expect("ORCH_WORKER_ENABLED" in loadConfig(SchedulerConfig, { ORCH_WORKER_ENABLED: "true" })).toBe(false);
  });

  it("accepts the deprecated ORCH_WORKER_POLL_INTERVAL_MS (the core warns that it is ignored) and still checks it", () => {
    expect(loadConfig(OrchestratorConfig, { ORCH_WORKER_POLL_INTERVAL_MS: "100" }).ORCH_WORKER_POLL_INTERVAL_MS).toBe(100);
    expect(problems(() => loadConfig(OrchestratorConfig, { ORCH_WORKER_POLL_INTERVAL_MS: "soon" }))[0]).toMatch(/^ORCH_WORKER_POLL_INTERVAL_MS:/);
  });
});
