import { describe, expect, it } from "vitest";
import { RefusalCode } from "@orch/contracts";
import { builtin, SPECKIT_MAX_REWORKS, SPECKIT_TYPES } from "../src/index.js";
import { Drive, expectAccepted, expectRefused, T0 } from "./drive.js";

/**
 * Seed 002's SpecKit state machine on the engine, for every workflow type:
 *
 *   pending ─start─▶ in_progress ─agent_complete─▶ waiting_approval ─human_approved─▶ in_progress (phase_2) | completed
 *                         └─error─▶ failed                         └─human_rejected─▶ in_progress (rework) | failed
 *
 * The seed's workflow status maps onto the engine as: pending/in_progress/completed/failed are the
 * run's status (`running` is in_progress), waiting_approval is the current phase's step status.
 */

const INPUT = { feature_description: "Add user authentication with OAuth2", feature_id: "001-add-user-authentication-with-o", context: { priority: "P1" } };

const ROLES: Record<string, [string, string]> = {
  specify: ["architect", "reviewer"],
  plan: ["architect", "architect"],
  tasks: ["architect", "reviewer"],
  implement: ["implementer", "tester"],
};

/** The seed's status of a SpecKit workflow, read off the engine. */
function seedStatus(d: Drive): string {
  const st = d.status;
  if (st === "running") return d.waiting().length > 0 ? "waiting_approval" : "in_progress";
  return st;
}

/** The two phases' statuses (implement's pull request step, when the project has no forge, is skipped: see below). */
const phases = (d: Drive) => ({ phase_1: d.step("phase_1"), phase_2: d.step("phase_2") });

/** The seed's current_phase: the step that is running or waiting, else the last one touched. */
function currentPhase(d: Drive): string | undefined {
  return ["phase_2", "phase_1"].find((p) => ["running", "waiting_approval", "retry_wait"].includes(d.step(p)));
}

describe.each(SPECKIT_TYPES)("speckit.%s (seed 002)", (type) => {
  const id = `speckit.${type}`;
  const started = () => Drive.of(id, { autoStart: true, input: INPUT });

  it("works on the feature's branch (spec-kit: one branch per feature, named by its id)", () => {
    const d = started();
    expect(d.dispatched[0]?.workspace).toEqual({ branch: INPUT.feature_id });
  });

  it("is a two-phase definition, each phase behind an approval", () => {
    const cd = builtin(id);
    expect(cd.def.view).toBe("speckit");
    const phaseSteps = cd.steps.filter((s) => s.id.startsWith("phase_"));
    expect(phaseSteps.map((s) => s.id)).toEqual(["phase_1", "phase_2"]);
    expect(phaseSteps[1]!.needs).toEqual(["phase_1"]);
    for (const s of phaseSteps) expect(s.approval?.maxReworks).toBe(SPECKIT_MAX_REWORKS);
    expect(phaseSteps.map((s) => s.role)).toEqual(ROLES[type]);
    // implement ends with a pull request, on when the project has a forge.
    expect(cd.steps.filter((s) => !s.id.startsWith("phase_")).map((s) => [s.id, s.type, s.whenNoForge])).toEqual(
      type === "implement" ? [["pull_request", "pr.open", "skip"]] : [],
    );
  });

  describe("pending → in_progress (start)", () => {
    it("waits in pending until started, then runs phase_1 with a history row", () => {
      const d = Drive.of(id, { input: INPUT });
      expect(d.status).toBe("pending");
      expect(seedStatus(d)).toBe("pending");
      expect(phases(d)).toEqual({ phase_1: "pending", phase_2: "pending" });
      expect(d.dispatched).toEqual([]);
      expect(d.eventTypes()).toEqual(["run.created"]);

      d.tick(5).start({ actor: "alice" });
      expect(d.status).toBe("running");
      expect(seedStatus(d)).toBe("in_progress");
      expect(currentPhase(d)).toBe("phase_1");
      expect(phases(d)).toEqual({ phase_1: "running", phase_2: "pending" });
      const changed = d.eventsOf("run.status_changed", d.last.effects);
      expect(changed).toHaveLength(1);
      expect(changed[0]!.data).toMatchObject({ from: "pending", to: "running", trigger: "START", actor: "alice" });
      expect(d.context.startedAt).toBe(T0 + 5);
      expect(d.newWork().map((w) => w.stepId)).toEqual(["phase_1"]);
    });

    it("starts at once with autoStart and dispatches phase_1 to the agent hub with its inputs", () => {
      const d = started();
      expect(seedStatus(d)).toBe("in_progress");
      expect(d.eventTypes()).toEqual(["run.created", "run.status_changed", "step.started"]);
      expect(d.dispatched).toHaveLength(1);
      const w = d.dispatched[0]!;
      expect(w).toMatchObject({
        stepId: "phase_1",
        attemptId: "r1.phase_1.1",
        attempt: 1,
        kind: "execute",
        role: ROLES[type]![0],
        type: `speckit.${type}`,
        phase: "phase_1",
        inputs: { feature_description: INPUT.feature_description, feature_id: INPUT.feature_id, context: INPUT.context },
        payload: { workflow: type, phase: 1 },
        rework: 0,
      });
      expect(w.feedback).toBeUndefined();
      expect(w.inputs).not.toHaveProperty("previous");
    });

    it("refuses a second start", () => {
      const d = started();
      expectRefused(d.signal({ name: "start" }), RefusalCode.IllegalTransition);
    });
  });

  describe("in_progress + agent_complete → waiting_approval", () => {
    it("with complete_step: the phase waits for approval with a revision, the run stays in progress", () => {
      const d = started();
      d.tick(10);
      expectAccepted(d.complete({ doc: "v1" }, undefined, { actor: "agent-hub" }));
      expect(d.step("phase_1")).toBe("waiting_approval");
      expect(seedStatus(d)).toBe("waiting_approval");
      expect(d.status).toBe("running");
      expect(d.step("phase_2")).toBe("pending");
      expect(d.newWork()).toEqual([]);
      const rev = d.revision("phase_1");
      expect(rev).toMatch(/^1-[0-9a-f]{12}$/);
      expect(d.eventTypes()).toEqual(["step.succeeded", "step.awaiting_approval"]);
      expect(d.eventsOf("step.succeeded", d.last.effects)[0]!.data).toMatchObject({ stepId: "phase_1", output: { doc: "v1" }, revision: rev, external: true });
      expect(d.eventsOf("step.awaiting_approval", d.last.effects)[0]!.data).toMatchObject({
        stepId: "phase_1",
        from: "running",
        to: "waiting_approval",
        revision: rev,
      });
      expect(d.stepCtx("phase_1").output).toEqual({ doc: "v1" });
    });

    it("with an agent result for the current attempt", () => {
      const d = started();
      expectAccepted(d.succeed("phase_1", { doc: "v1" }, { usage: { tokensIn: 10, tokensOut: 5 } }));
      expect(d.step("phase_1")).toBe("waiting_approval");
      expect(d.revision("phase_1")).toMatch(/^1-/);
      expect(d.state.ledger.total.tokens).toBe(15);
      // The same output gets the same revision whichever way it arrived.
      const e = started();
      e.complete({ doc: "v1" });
      expect(e.revision("phase_1")).toBe(d.revision("phase_1"));
    });

    it("ignores a result for an attempt it is not waiting for", () => {
      const d = started();
      const r = d.result("phase_1", true, { output: {}, attemptId: "r1.phase_1.7" });
      expectAccepted(r);
      expect(d.eventTypes()).toEqual(["step.result_ignored"]);
      expect(d.step("phase_1")).toBe("running");
    });
  });

  describe("in_progress + error → failed", () => {
    it("fail_step fails the phase and the workflow; phase_2 never runs", () => {
      const d = started();
      d.tick(3);
      expectAccepted(d.fail("agent crashed", undefined, { actor: "agent-hub" }));
      expect(d.step("phase_1")).toBe("failed");
      expect(d.step("phase_2")).toBe("cancelled");
      expect(d.status).toBe("failed");
      expect(seedStatus(d)).toBe("failed");
      expect(d.context.error).toBe("agent crashed");
      expect(d.context.finishedAt).toBe(T0 + 3);
      // phase_2 is cancelled as the run settles, before its end; run.finished says what it left and why.
      expect(d.eventTypes()).toEqual(["step.failed", "step.cancelled", ...(type === "implement" ? ["step.cancelled"] : []), "run.finished"]);
      expect(d.eventsOf("step.cancelled", d.last.effects)[0]!.data).toMatchObject({ stepId: "phase_2", from: "pending", to: "cancelled" });
      expect(d.eventsOf("run.finished", d.last.effects)[0]).toEqual({
        kind: "event",
        type: "run.finished",
        at: T0 + 3,
        data: { status: "failed", from: "running", trigger: "FAIL", stage: "main", error: "agent crashed" },
      });
      expect(d.dispatched.map((w) => w.stepId)).toEqual(["phase_1"]);
    });

    it("a non-retryable agent error fails it at once; a retryable one is retried first", () => {
      const d = started();
      d.failResult("phase_1", { code: "BAD", message: "bad input", retryable: false });
      expect(d.status).toBe("failed");
      expect(d.context.error).toBe("bad input");

      const e = started();
      e.failResult("phase_1", { retryable: true });
      expect(e.step("phase_1")).toBe("retry_wait");
      expect(seedStatus(e)).toBe("in_progress");
      e.fireTimers("retry");
      expect(e.step("phase_1")).toBe("running");
      e.failResult("phase_1");
      e.fireTimers("retry");
      e.failResult("phase_1");
      expect(e.step("phase_1")).toBe("failed");
      expect(e.status).toBe("failed");
      expect(e.dispatched.filter((w) => w.stepId === "phase_1")).toHaveLength(3);
    });
  });

  describe("waiting_approval + human_approved → next phase or completed", () => {
    it("approving phase_1 runs phase_2 with phase_1's output as `previous`", () => {
      const d = started();
      d.complete({ doc: "v1" });
      const rev = d.revision("phase_1")!;
      d.tick(7);
      expectAccepted(d.approve("phase_1", { actor: "bob", reason: "looks right" }));
      expect(phases(d)).toEqual({ phase_1: "completed", phase_2: "running" });
      expect(seedStatus(d)).toBe("in_progress");
      expect(currentPhase(d)).toBe("phase_2");
      expect(d.eventTypes()).toEqual(["step.approved", "step.started"]);
      expect(d.eventsOf("step.approved", d.last.effects)[0]!.data).toMatchObject({
        stepId: "phase_1",
        from: "waiting_approval",
        to: "completed",
        actor: "bob",
        reason: "looks right",
        revision: rev,
      });
      const w = d.newWork()[0]!;
      expect(w).toMatchObject({
        stepId: "phase_2",
        role: ROLES[type]![1],
        payload: { phase: 2 },
        inputs: { previous: { doc: "v1" }, feature_id: INPUT.feature_id },
      });
    });

    it("approving phase_2 completes the workflow", () => {
      const d = started();
      d.complete({ doc: "v1" });
      d.approve();
      d.complete({ doc: "final" });
      expect(seedStatus(d)).toBe("waiting_approval");
      d.tick(20);
      expectAccepted(d.approve(undefined, { actor: "bob" }));
      expect(d.status).toBe("completed");
      expect(seedStatus(d)).toBe("completed");
      expect(phases(d)).toEqual({ phase_1: "completed", phase_2: "completed" });
      expect(d.context.finishedAt).toBeDefined();
      expect(d.eventTypes()).toEqual(["step.approved", ...(type === "implement" ? ["step.skipped"] : []), "run.finished"]);
      expect(d.eventsOf("run.finished", d.last.effects)[0]).toMatchObject({
        at: T0 + 20,
        data: { status: "completed", from: "running", trigger: "STAGE_DONE", stage: "main" },
      });
      // The approver approved the phase; the run's end was the stage's (no actor of its own).
      expect(d.eventsOf("run.finished", d.last.effects)[0]!.data).not.toHaveProperty("actor");
      // completed_at is the time of the approval.
      expect(d.context.finishedAt).toBe(T0 + 20);
      expect(d.eventsOf("run.finished", d.last.effects)[0]!.at).toBe(T0 + 20);
      // Without an approval output, the result is phase_2's own output.
      expect(d.context.result).toEqual({ doc: "final" });
      expect(d.eventsOf("run.finished", d.last.effects)[0]!.data!.result).toEqual({ doc: "final" });
    });

    it("an approval's output (the seed's phase_result) replaces the phase's output", () => {
      const d = started();
      d.complete({ doc: "v1" });
      d.approve(undefined, { output: { approved: true, notes: "ok" } });
      expect(d.stepCtx("phase_1").output).toEqual({ approved: true, notes: "ok" });
      // …and so it is what phase_2 receives as `previous`.
      expect(d.work.get("phase_2")!.inputs.previous).toEqual({ approved: true, notes: "ok" });
      d.complete({ doc: "final" });
      d.approve(undefined, { output: { approved: true } });
      expect(d.status).toBe("completed");
      expect(d.stepCtx("phase_2").output).toEqual({ approved: true });
      // CONTRACTS.md 002: "completed after phase_2 (completed_at set, result = phase_result)".
      expect(d.context.result).toEqual({ approved: true });
      expect(d.eventsOf("run.finished")[0]!.data).toMatchObject({ status: "completed", result: { approved: true } });
    });

    it("an approval without output keeps the agent's output", () => {
      const d = started();
      d.complete({ doc: "v1" });
      d.approve();
      expect(d.stepCtx("phase_1").output).toEqual({ doc: "v1" });
    });
  });

  describe("waiting_approval + human_rejected → rework or failed", () => {
    it("re-dispatches the same phase with the rejection reason as feedback", () => {
      const d = started();
      d.complete({ doc: "v1" });
      const rev1 = d.revision("phase_1")!;
      d.tick(4);
      expectAccepted(d.reject(undefined, { actor: "carol", reason: "too vague" }));
      expect(phases(d)).toEqual({ phase_1: "running", phase_2: "pending" });
      expect(seedStatus(d)).toBe("in_progress");
      expect(currentPhase(d)).toBe("phase_1");
      expect(d.eventTypes()).toEqual(["step.rejected", "step.started"]);
      expect(d.eventsOf("step.rejected", d.last.effects)[0]!.data).toMatchObject({
        stepId: "phase_1",
        from: "waiting_approval",
        to: "pending",
        actor: "carol",
        reason: "too vague",
        revision: rev1,
        rework: 1,
      });
      expect(d.eventsOf("step.started", d.last.effects)[0]!.data).toMatchObject({ feedback: "too vague", rework: 1 });
      const w = d.newWork();
      expect(w).toHaveLength(1);
      expect(w[0]).toMatchObject({ stepId: "phase_1", attemptId: "r1.phase_1.2", feedback: "too vague", rework: 1, role: ROLES[type]![0] });
      expect(d.revision("phase_1")).toBeUndefined();
      expect(d.stepCtx("phase_1").reworks).toBe(1);

      // The reworked output gets a new revision and goes back for approval.
      d.complete({ doc: "v2" });
      expect(d.step("phase_1")).toBe("waiting_approval");
      expect(d.revision("phase_1")).not.toBe(rev1);
      expect(d.revision("phase_1")).toMatch(/^2-/);
    });

    it("reworks phase_2 too, keeping phase_1's output as its input", () => {
      const d = started();
      d.complete({ doc: "v1" });
      d.approve();
      d.complete({ doc: "p2" });
      d.reject(undefined, { reason: "missing tests" });
      expect(phases(d)).toEqual({ phase_1: "completed", phase_2: "running" });
      expect(d.newWork()[0]).toMatchObject({ stepId: "phase_2", feedback: "missing tests", inputs: { previous: { doc: "v1" } } });
    });

    it(`fails the workflow on the rejection after ${SPECKIT_MAX_REWORKS} reworks`, () => {
      const d = started();
      for (let i = 1; i <= SPECKIT_MAX_REWORKS; i++) {
        d.complete({ doc: `v${i}` });
        d.reject(undefined, { actor: "carol", reason: `no ${i}` });
        expect(d.step("phase_1"), `rejection ${i}`).toBe("running");
        expect(d.stepCtx("phase_1").reworks).toBe(i);
        expect(d.work.get("phase_1")!.feedback).toBe(`no ${i}`);
      }
      d.complete({ doc: "last" });
      const rev = d.revision("phase_1");
      d.tick(9);
      expectAccepted(d.reject(undefined, { actor: "carol", reason: "still no" }));
      expect(d.step("phase_1")).toBe("failed");
      expect(d.status).toBe("failed");
      expect(seedStatus(d)).toBe("failed");
      expect(d.stepCtx("phase_1").error).toMatchObject({ code: "REJECTED", retryable: false });
      expect(d.context.error).toMatch(/still no/);
      expect(d.newWork()).toEqual([]);
      expect(d.eventsOf("step.rejected", d.last.effects)[0]!.data).toMatchObject({ to: "failed", actor: "carol", reason: "still no", revision: rev });
      expect(d.eventsOf("run.finished", d.last.effects)[0]!.data).toMatchObject({ status: "failed" });
      expect(d.dispatched.filter((w) => w.stepId === "phase_1")).toHaveLength(SPECKIT_MAX_REWORKS + 1);
      expect(d.step("phase_2")).toBe("cancelled");
    });
  });

  describe("revisions", () => {
    it("refuses to approve or reject an older revision and changes nothing", () => {
      const d = started();
      d.complete({ doc: "v1" });
      const old = d.revision("phase_1")!;
      d.reject(undefined, { reason: "again" });
      d.complete({ doc: "v2" });
      const current = d.revision("phase_1")!;
      expect(current).not.toBe(old);

      expectRefused(d.approve("phase_1", { revision: old }), RefusalCode.StaleRevision, new RegExp(old));
      expectRefused(d.reject("phase_1", { revision: old }), RefusalCode.StaleRevision);
      expectRefused(d.approve(undefined, { revision: "9-000000000000" }), RefusalCode.StaleRevision);
      expect(d.step("phase_1")).toBe("waiting_approval");

      expectAccepted(d.approve("phase_1", { revision: current }));
      expect(d.step("phase_1")).toBe("completed");
    });

    it("a late approval of the approved revision is refused once the phase moved on", () => {
      const d = started();
      d.complete({ doc: "v1" });
      const rev = d.revision("phase_1")!;
      d.approve();
      expectRefused(d.approve("phase_1", { revision: rev }), RefusalCode.IllegalTransition);
      expectRefused(d.reject("phase_1", { revision: rev }), RefusalCode.IllegalTransition);
    });

    it("every approval and rejection in the history names actor, reason and revision", () => {
      const d = started();
      d.complete({ doc: "v1" });
      d.reject(undefined, { actor: "a1", reason: "r1" });
      d.complete({ doc: "v2" });
      d.approve(undefined, { actor: "a2", reason: "r2" });
      d.complete({ doc: "v3" });
      d.approve(undefined, { actor: "a3" });
      const decisions = [...d.eventsOf("step.rejected"), ...d.eventsOf("step.approved")];
      expect(decisions).toHaveLength(3);
      for (const e of decisions) {
        expect(e.data).toHaveProperty("actor");
        expect(e.data).toHaveProperty("reason");
        expect(e.data!.revision).toMatch(/^\d+-[0-9a-f]{12}$/);
      }
      expect(decisions.map((e) => [e.data!.stepId, e.data!.actor, e.data!.reason])).toEqual([
        ["phase_1", "a1", "r1"],
        ["phase_1", "a2", "r2"],
        ["phase_2", "a3", null],
      ]);
    });
  });

  describe("illegal actions are refused and change nothing", () => {
    it("in pending", () => {
      const d = Drive.of(id, { input: INPUT });
      expectRefused(d.signal({ name: "approve" }), RefusalCode.IllegalTransition, /nothing is waiting/);
      expectRefused(d.signal({ name: "reject" }), RefusalCode.IllegalTransition);
      expectRefused(d.approve("phase_1"), RefusalCode.IllegalTransition, /pending/);
      expectRefused(d.complete({}), RefusalCode.IllegalTransition, /no step is running/);
      expectRefused(d.fail("x"), RefusalCode.IllegalTransition);
      expectRefused(d.signal({ name: "resume" }), RefusalCode.IllegalTransition);
      expect(d.status).toBe("pending");
    });

    it("in progress: approve/reject when nothing waits", () => {
      const d = started();
      expectRefused(d.signal({ name: "approve" }), RefusalCode.IllegalTransition, /nothing is waiting/);
      expectRefused(d.signal({ name: "reject", stepId: "phase_1" }), RefusalCode.IllegalTransition, /running/);
      expectRefused(d.approve("phase_2"), RefusalCode.IllegalTransition);
      expectRefused(d.approve("phase_9"), RefusalCode.NotFound);
      expectRefused(d.complete({}, "phase_2"), RefusalCode.IllegalTransition, /not running/);
      expectRefused(d.complete({}, "nope"), RefusalCode.NotFound);
    });

    it("waiting for approval: agent_complete and error no longer apply", () => {
      const d = started();
      d.complete({ doc: "v1" });
      expectRefused(d.complete({ doc: "again" }), RefusalCode.IllegalTransition);
      expectRefused(d.complete({ doc: "again" }, "phase_1"), RefusalCode.IllegalTransition);
      expectRefused(d.fail("x", "phase_1"), RefusalCode.IllegalTransition);
      expectRefused(d.signal({ name: "start" }), RefusalCode.IllegalTransition);
      // A late agent result is recorded as ignored, and changes nothing else.
      const r = d.succeed("phase_1", { doc: "late" });
      expectAccepted(r);
      expect(d.eventTypes()).toEqual(["step.result_ignored"]);
      expect(d.stepCtx("phase_1").output).toEqual({ doc: "v1" });
      expect(d.step("phase_1")).toBe("waiting_approval");
    });

    it("after completion every action is refused as terminal", () => {
      const d = started();
      d.complete({});
      d.approve();
      d.complete({ x: 1 });
      d.approve();
      expect(d.status).toBe("completed");
      expectRefused(d.signal({ name: "approve" }), RefusalCode.TerminalState);
      expectRefused(d.signal({ name: "reject" }), RefusalCode.TerminalState);
      expectRefused(d.complete({}), RefusalCode.TerminalState);
      expectRefused(d.fail("x"), RefusalCode.TerminalState);
      expectRefused(d.signal({ name: "start" }), RefusalCode.TerminalState);
      expectRefused(d.signal({ name: "pause" }), RefusalCode.TerminalState);
      expectRefused(d.signal({ name: "resume" }), RefusalCode.TerminalState);
      // A finished run is immutable: approving or rejecting a named step (forced or not), facts, blocks.
      expectRefused(d.approve("phase_2"), RefusalCode.TerminalState);
      expectRefused(d.reject("phase_2"), RefusalCode.TerminalState);
      expectRefused(d.signal({ name: "approve", stepId: "phase_1", force: true, output: { late: true } }), RefusalCode.TerminalState);
      expectRefused(d.signal({ name: "set_facts", facts: { x: 1 } }), RefusalCode.TerminalState);
      expectRefused(d.signal({ name: "block_step", stepId: "phase_2" }), RefusalCode.TerminalState);
      expect(d.stepCtx("phase_1").output).toEqual({});
    });

    it("after failure every action is refused as terminal", () => {
      const d = started();
      d.fail("boom");
      expectRefused(d.signal({ name: "approve" }), RefusalCode.TerminalState);
      expectRefused(d.complete({}, "phase_1"), RefusalCode.TerminalState);
      expectRefused(d.signal({ name: "start" }), RefusalCode.TerminalState);
      // A cancelled phase of a failed run stays cancelled.
      expect(d.step("phase_2")).toBe("cancelled");
      expectRefused(d.signal({ name: "approve", stepId: "phase_2", force: true }), RefusalCode.TerminalState);
      expect(d.step("phase_2")).toBe("cancelled");
      // cancel is idempotent on a finished run: accepted, nothing changes.
      const r = d.signal({ name: "cancel" });
      expectAccepted(r);
      expect(r.changed).toBe(false);
      expect(d.status).toBe("failed");
    });
  });

  it("records the workflow history: every status change with from, to and trigger", () => {
    const d = Drive.of(id, { input: INPUT });
    d.start({ actor: "u" });
    d.complete({});
    d.approve();
    d.complete({});
    d.approve();
    // Every change but the last is a run.status_changed; the last (to a final status) is run.finished's.
    expect(d.eventsOf("run.status_changed").map((e) => [e.data!.from, e.data!.to, e.data!.trigger])).toEqual([["pending", "running", "START"]]);
    expect(
      d
        .allEvents()
        .filter((e) => e.type === "run.status_changed" || e.type === "run.finished")
        .map((e) => [e.data!.from, e.type === "run.finished" ? e.data!.status : e.data!.to, e.data!.trigger]),
    ).toEqual([
      ["pending", "running", "START"],
      ["running", "completed", "STAGE_DONE"],
    ]);
    // The step-level history covers the rest of the seed's table.
    expect(
      d
        .allEvents()
        .filter((e) => e.type.startsWith("step.") && e.data!.stepId !== "pull_request")
        .map((e) => `${e.data!.stepId}:${e.data!.from}→${e.data!.to}`),
    ).toEqual([
      "phase_1:pending→running",
      "phase_1:running→waiting_approval",
      "phase_1:running→waiting_approval",
      "phase_1:waiting_approval→completed",
      "phase_2:pending→running",
      "phase_2:running→waiting_approval",
      "phase_2:running→waiting_approval",
      "phase_2:waiting_approval→completed",
    ]);
  });

  it("names the initial stage in the first running status change", () => {
    const d = started();
    const first = d.eventsOf("run.status_changed")[0]!;
    expect(first.data).toMatchObject({ from: "pending", to: "running" });
    expect(first.data!.stage).toBe("main");
  });
});

describe("seed 002's triggers, as the signals its surface sends for them", () => {
  it("start, complete_step, reject, approve and fail_step act on the current phase", () => {
    const d = Drive.of("speckit.specify", { input: { feature_description: "Add OAuth2 login" } });
    expect(d.status).toBe("pending");
    expectAccepted(d.signal({ name: "start" }));
    expect(d.status).toBe("running");
    expectAccepted(d.signal({ name: "complete_step", output: { spec: "v1" } }));
    expect(d.step("phase_1")).toBe("waiting_approval");
    expect(d.stepCtx("phase_1").output).toEqual({ spec: "v1" });
    expectAccepted(d.signal({ name: "reject" }, { reason: "too thin" }));
    expect(d.step("phase_1")).toBe("running");
    expect(d.newWork()[0]!.feedback).toBe("too thin");
    expectAccepted(d.signal({ name: "complete_step", output: { spec: "v2" } }));
    expectAccepted(d.signal({ name: "approve", output: { approved: true } }));
    expect(d.step("phase_1")).toBe("completed");
    expect(d.step("phase_2")).toBe("running");
    expectRefused(d.signal({ name: "approve" }), RefusalCode.IllegalTransition);
    expectAccepted(d.signal({ name: "fail_step", error: "agent crashed" }));
    expect(d.status).toBe("failed");
    expect(d.context.error).toBe("agent crashed");
    expectRefused(d.signal({ name: "start" }), RefusalCode.TerminalState);
  });
});
