import { describe, expect, it } from "vitest";
import { ConfigError, GatewayConfig, OrchestratorConfig, loadConfig } from "../src/index.js";

describe("config", () => {
  it("has defaults that run the quick start", () => {
    const c = loadConfig(GatewayConfig, {});
    expect(c).toMatchObject({
      ORCH_NATS_URL: "nats://127.0.0.1:4222",
      ORCH_BACKEND: "file",
      ORCH_MODE: "mock",
      ORCH_ENABLED: true,
      ORCH_MAX_REQUEST_BYTES: 32768,
      PORT: 8080,
      HOST: "127.0.0.1",
    });
    expect(Object.isFrozen(c)).toBe(true);
  });

  it("reads booleans and numbers from strings; empty means unset", () => {
    const c = loadConfig(GatewayConfig, { ORCH_ENABLED: "false", PORT: "9000", ORCH_MAX_REQUEST_BYTES: "", ORCH_BACKEND: "memory" });
    expect(c.ORCH_ENABLED).toBe(false);
    expect(c.PORT).toBe(9000);
    expect(c.ORCH_MAX_REQUEST_BYTES).toBe(32768);
    expect(c.ORCH_BACKEND).toBe("memory");
  });

  it("reads seed 004's TASKSGODZILLA_AUTO_QA_AFTER_EXEC as ORCH_AUTO_QA_AFTER_EXEC (ours wins)", () => {
    expect(loadConfig(GatewayConfig, {}).ORCH_AUTO_QA_AFTER_EXEC).toBe(false);
    expect(loadConfig(GatewayConfig, { TASKSGODZILLA_AUTO_QA_AFTER_EXEC: "true" }).ORCH_AUTO_QA_AFTER_EXEC).toBe(true);
    expect(loadConfig(GatewayConfig, { TASKSGODZILLA_AUTO_QA_AFTER_EXEC: "true", ORCH_AUTO_QA_AFTER_EXEC: "false" }).ORCH_AUTO_QA_AFTER_EXEC).toBe(false);
  });

  it("reads the CI policy defaults on the orchestrator (the core decides what CI does), seed 004's names too", () => {
    expect(loadConfig(OrchestratorConfig, {})).toMatchObject({ ORCH_AUTO_QA_ON_CI: false, ORCH_CI_FIX_MAX_ATTEMPTS: 0, ORCH_CI_FIX_COOLDOWN_MS: 600_000 });
    expect(loadConfig(OrchestratorConfig, { TASKSGODZILLA_AUTO_QA_ON_CI: "true" }).ORCH_AUTO_QA_ON_CI).toBe(true);
    expect(loadConfig(OrchestratorConfig, { AUTO_QA_ON_CI: "yes", ORCH_AUTO_QA_ON_CI: "false" }).ORCH_AUTO_QA_ON_CI).toBe(false);
    const c = loadConfig(OrchestratorConfig, { ORCH_CI_FIX_MAX_ATTEMPTS: "2", ORCH_CI_FIX_COOLDOWN_MS: "3000" });
    expect([c.ORCH_CI_FIX_MAX_ATTEMPTS, c.ORCH_CI_FIX_COOLDOWN_MS]).toEqual([2, 3000]);
    expect(() => loadConfig(OrchestratorConfig, { ORCH_CI_FIX_MAX_ATTEMPTS: "-1" })).toThrow(/ORCH_CI_FIX_MAX_ATTEMPTS/);
    // The gateway only translates webhooks: it has no CI settings any more.
    expect(loadConfig(GatewayConfig, { ORCH_AUTO_QA_ON_CI: "true" })).not.toHaveProperty("ORCH_AUTO_QA_ON_CI");
  });

  it("refuses ORCH_BACKEND=redis with a clear reason", () => {
    expect(() => loadConfig(OrchestratorConfig, { ORCH_BACKEND: "redis" })).toThrow(/ORCH_BACKEND: redis is not supported/);
  });

  it("lists every problem in one error", () => {
    try {
      loadConfig(GatewayConfig, { PORT: "http", ORCH_ENABLED: "maybe", ORCH_MODE: "fast", ORCH_NATS_PREFIX: "A.B" });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const problems = (err as ConfigError).problems.join("\n");
      for (const k of ["PORT", "ORCH_ENABLED", "ORCH_MODE", "ORCH_NATS_PREFIX"]) expect(problems).toContain(k);
    }
  });
});
