import { describe, expect, it } from "vitest";
import { createNames, fnv1a, InvalidTokenError, token } from "../src/index.js";

describe("names", () => {
  const n = createNames();

  it("names streams, consumers and buckets from the prefix", () => {
    expect(n.streams).toEqual({ cmd: "ORCH_CMD", runs: "ORCH_RUNS", dlq: "ORCH_DLQ", sess: "ORCH_SESS" });
    expect(n.buckets).toEqual({
      timers: "orch_timers",
      defs: "orch_defs",
      runIndex: "orch_run_index",
      leases: "orch_leases",
      sessions: "orch_sessions",
      projects: "orch_projects",
      projectTokens: "orch_project_tokens",
      ids: "orch_ids",
      deliveries: "orch_deliveries",
    });
    expect(n.consumers.corePartition(3)).toBe("core-3");
    expect(n.subjects.cmdPartition(3)).toBe("orch.cmd.3.>");
    expect(() => n.consumers.corePartition(16)).toThrow(RangeError);
    const t = createNames("team-a");
    expect(t.streams.cmd).toBe("TEAM_A_CMD");
    expect(t.streams.runs).toBe("TEAM_A_RUNS");
    expect(t.buckets.timers).toBe("team_a_timers");
    expect(t.subjects.cmdAll()).toBe("team-a.cmd.>");
  });

  it("names session subjects and control subjects, one token per id", () => {
    expect(n.subjects.sess("p1", "run-1", "s-1", "agent.delta")).toBe("orch.sess.p1.run-1.s-1.agent.delta");
    expect(n.subjects.sessSession("s-1")).toBe("orch.sess.*.*.s-1.>");
    expect(n.subjects.sessRun("run-1")).toBe("orch.sess.*.run-1.>");
    expect(n.subjects.ctl("session.cancel")).toBe("orch.ctl.session.cancel");
    expect(() => n.subjects.sess("p1", "run-1", "s.1", "agent.delta")).toThrow(/sessionId/);
    expect(() => n.subjects.sessSession("*")).toThrow();
  });

  it("builds subjects by the documented grammar", () => {
    const p = n.subjects.partitionOf("run-1");
    expect(n.subjects.cmd("run-1")).toBe(`orch.cmd.${p}.run-1`);
    expect(p).toBe(fnv1a("run-1") % 16);
    expect(n.subjects.run("_default", "run-1")).toBe("orch.run._default.run-1");
    expect(n.subjects.runOf("run-1")).toBe("orch.run.*.run-1");
    expect(n.subjects.runsOfProject("proj")).toBe("orch.run.proj.*");
    expect(n.subjects.runsAll()).toBe("orch.run.>");
    expect(n.subjects.runOfSubject("orch.run.proj.run-1")).toEqual({ projectId: "proj", runId: "run-1" });
    expect(n.subjects.runOfSubject("orch.run._system.dlq")).toBeNull();
    expect(n.subjects.runOfSubject("other.run.proj.run-1")).toBeNull();
    expect(n.subjects.runOfSubject("orch.cmd.3.run-1")).toBeNull();
    expect(n.subjects.system("dlq")).toBe("orch.run._system.dlq");
    expect(n.subjects.dlq("core")).toBe("orch.dlq.core");
    expect(n.subjects.query("runs.list")).toBe("orch.q.runs.list");
    expect(n.subjects.rpc("definitions.put")).toBe("orch.rpc.definitions.put");
    expect(n.groups.core).toBe("orchestrator");
  });

  it("spreads runs over partitions stably", () => {
    const seen = new Set<number>();
    for (let i = 0; i < 1000; i++) seen.add(n.subjects.partitionOf(`run-${i}`));
    expect(seen.size).toBe(16);
    expect(n.subjects.partitionOf("abc")).toBe(n.subjects.partitionOf("abc"));
  });

  it.each(["", "a.b", "a*", ">", "a b", "a\nb", "x".repeat(129), "ü"])("refuses %j as a token", (bad) => {
    expect(() => token("runId", bad)).toThrow(InvalidTokenError);
    expect(() => n.subjects.cmd(bad)).toThrow(/not a valid subject token/);
    expect(() => n.subjects.run("p", bad)).toThrow(InvalidTokenError);
    expect(() => n.subjects.runOf(bad)).toThrow(InvalidTokenError);
  });

  it("refuses wildcards and empty tokens inside dotted names", () => {
    expect(() => n.subjects.query("runs.*")).toThrow(InvalidTokenError);
    expect(() => n.subjects.query("runs..x")).toThrow(InvalidTokenError);
    expect(() => n.subjects.sess("p", "r", "s", "agent.>")).toThrow(InvalidTokenError);
  });

  it("refuses a bad prefix or partition count", () => {
    expect(() => createNames("Orch")).toThrow(InvalidTokenError);
    expect(() => createNames("a.b")).toThrow(InvalidTokenError);
    expect(() => createNames("orch", 0)).toThrow(RangeError);
  });
});
