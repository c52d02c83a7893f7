import { describe, expect, it } from "vitest";
import { getShortestPaths } from "@xstate/graph";
import { transition, type AnyMachineSnapshot } from "xstate";
import { STEP_STATUSES, type StepStatus, CI_STATUSES, RefusalCode, SIGNAL_NAMES, SignalSchema, type CiStatus, type Signal } from "@orch/contracts";
import {
  attemptIdOf,
  BUILTIN_DEFINITIONS,
  builtin,
  CI_ON_FAILURE,
  CI_ON_SUCCESS,
  CI_POLICY_DEFAULTS,
  ciStepAction,
  DefinitionError,
  parseDefinition,
  resolveCiPolicy,
  stepMachine,
  type CiDefaults,
  type CiRules,
  type CiStepAction,
  type DefinitionInput,
  type StepContext,
  type StepEvent,
} from "../src/index.js";
import { define, Drive, expectAccepted, expectRefused, T0 } from "./drive.js";

/**
 * CI reports and pull requests as kernel signals (`ci_report`, `pr_opened`, `pr_closed`,
 * `pr_merged`), with their policies in the run's definition: the policy a run gets at creation, every
 * branch of the CI table (ci.ts) on every step status, fix attempts counted in the run's state with
 * the kernel's clock, and a merge applied in one transition. Every action goes through the driver,
 * which checks that a refusal changes nothing and every transition is well formed.
 */

const PROTOCOL = BUILTIN_DEFINITIONS.find((d) => d.id === "protocol")!;
const SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821";
const WEBHOOK = { actor: "webhook:github" };

/** A protocol with these steps, planned; `start` runs one of them. */
function protocol(steps: Record<string, unknown>[], o: { start?: string; ciDefaults?: CiDefaults; def?: DefinitionInput } = {}): Drive {
  const d = Drive.of(o.def ? define(o.def) : "protocol", { input: { protocol_name: "feature-x" }, ...(o.ciDefaults ? { ciDefaults: o.ciDefaults } : {}) });
  d.start();
  expectAccepted(d.succeed("plan", { steps }));
  expect(d.status).toBe("planned");
  if (o.start) expectAccepted(d.signal({ name: "run_step", stepId: o.start }));
  return d;
}

/** A report as the gateway sends it: the check, its conclusion, the commit, the delivery as facts. */
function report(status: CiStatus, extra: Partial<Extract<Signal, { name: "ci_report" }>> = {}): Signal {
  const conclusion = status === "success" ? "success" : status === "failure" ? "failure" : "queued";
  return {
    name: "ci_report",
    status,
    conclusion,
    check: "unit tests",
    sha: SHA,
    url: "https://ci.example.test/runs/7",
    provider: "github",
    facts: { webhook: { event: `ci.${status}`, provider: "github", deliveryId: "d-1" } },
    ...extra,
  };
}

const ci = (d: Drive, status: CiStatus, extra: Partial<Extract<Signal, { name: "ci_report" }>> = {}) => d.signal(report(status, extra), WEBHOOK);

describe("the CI policy of a definition", () => {
  it("is absent or off unless a definition says otherwise: reports are then recorded only", () => {
    expect(resolveCiPolicy(undefined)).toBeNull();
    expect(resolveCiPolicy("off", { onSuccess: "qa" })).toBeNull();
    // A definition without one parses without the key, so stored definitions keep their hash.
    expect("ci" in parseDefinition({ id: "x.y", version: 1 })).toBe(false);
    expect("pullRequests" in parseDefinition({ id: "x.y", version: 1 })).toBe(false);
  });

  it("takes the core's defaults for what it leaves out, then its own defaults; what it says wins", () => {
    expect(resolveCiPolicy({})).toEqual(CI_POLICY_DEFAULTS);
    expect(CI_POLICY_DEFAULTS).toEqual({ onSuccess: "complete", onFailure: "block", fixAttempts: 0, fixCooldownMs: 600_000 });
    expect(resolveCiPolicy({}, { onSuccess: "qa", fixAttempts: 2, fixCooldownMs: 5 })).toEqual({
      onSuccess: "qa",
      onFailure: "block",
      fixAttempts: 2,
      fixCooldownMs: 5,
    });
    expect(resolveCiPolicy({ onSuccess: "complete", fixAttempts: 1 }, { onSuccess: "qa", fixAttempts: 2 })).toMatchObject({
      onSuccess: "complete",
      fixAttempts: 1,
    });
  });

  it("is validated with the definition", () => {
    for (const ci of [{ onSuccess: "maybe" }, { onFailure: "retry" }, { fixAttempts: -1 }, { fixCooldownMs: 1.5 }, { other: 1 }, "on"]) {
      expect(() => parseDefinition({ id: "x.y", version: 1, ci }), JSON.stringify(ci)).toThrow(DefinitionError);
    }
    expect(() => parseDefinition({ id: "x.y", version: 1, pullRequests: { onMerged: { event: "Merged" } } })).toThrow(/no transition is on 'Merged'/);
    expect(() => parseDefinition({ id: "x.y", version: 1, pullRequests: { onMerged: "close" } })).toThrow(DefinitionError);
  });

  it("protocol: complete and block, fix attempts and QA from the core's defaults; ticket: facts only", () => {
    expect(builtin("protocol").def.ci).toEqual({ onFailure: "block" });
    expect(builtin("protocol").def.pullRequests).toEqual({ onMerged: "complete" });
    expect(resolveCiPolicy(builtin("ticket").def.ci)).toMatchObject({ onSuccess: "record", onFailure: "record" });
    for (const id of ["job", "speckit.specify", "task", "task.queue"]) expect(builtin(id).def.ci, id).toBeUndefined();
  });

  it("is recorded with the run at its creation (state and run.created), so later defaults never change it", () => {
    const d = Drive.of("protocol", { input: { protocol_name: "x" }, ciDefaults: { onSuccess: "qa", fixAttempts: 2, fixCooldownMs: 1_000 } });
    const rules: CiRules = { onSuccess: "qa", onFailure: "block", fixAttempts: 2, fixCooldownMs: 1_000 };
    expect(d.state.ci).toEqual({ policy: rules, attempts: 0 });
    expect(d.eventsOf("run.created")[0]!.data).toMatchObject({ ci: rules });
    // A run of a definition that does not act on CI records none.
    const job = Drive.of("job", { steps: [{ id: "a", type: "dev.log" }] });
    expect(job.state.ci).toBeUndefined();
    expect(job.eventsOf("run.created")[0]!.data).not.toHaveProperty("ci");
  });

  it("a run created before runs recorded their policy gets its definition's, with no core defaults", () => {
    const d = protocol([{ id: "impl" }], { start: "impl", ciDefaults: { onSuccess: "qa" } });
    const { ci: _recorded, ...older } = d.state;
    d.state = older;
    expectAccepted(ci(d, "success"));
    expect(d.step("impl")).toBe("completed");
  });
});

describe("signals", () => {
  it("are named once (SIGNAL_NAMES) and validated at the boundary", () => {
    for (const n of ["ci_report", "pr_opened", "pr_closed", "pr_merged"]) expect(SIGNAL_NAMES).toContain(n);
    expect(SignalSchema.safeParse(report("success")).success).toBe(true);
    expect(SignalSchema.safeParse({ name: "pr_merged" }).success).toBe(true);
    for (const bad of [
      { name: "ci_report" },
      { name: "ci_report", status: "passed" },
      { name: "ci_report", status: "success", provider: "bitbucket" },
      { name: "ci_report", status: "success", stepId: "a.b" },
      { name: "ci_report", status: "success", extra: 1 },
      { name: "pr_merged", number: -1 },
      { name: "pr_opened", at: "now" },
    ])
      expect(SignalSchema.safeParse(bad).success, JSON.stringify(bad)).toBe(false);
  });
});

describe("ci_report on a protocol (seed 004)", () => {
  it("success completes the running step that started last, in one transition, and records the report", () => {
    const d = protocol([{ id: "s1" }, { id: "s2" }], { start: "s1" });
    d.tick(10);
    const r = expectOk(ci(d, "success"));
    expect(d.step("s1")).toBe("completed");
    expect(d.step("s2")).toBe("pending");
    expect(d.status).toBe("running");
    expect(d.eventTypes(r.effects)).toEqual(["run.facts_changed", "step.succeeded"]);
    expect(d.events(r.effects)[0]!.data).toEqual({
      why: "set by webhook:github",
      facts: {
        webhook: { event: "ci.success", provider: "github", deliveryId: "d-1" },
        ci: { status: "success", conclusion: "success", provider: "github", at: T0 + 10, name: "unit tests", url: "https://ci.example.test/runs/7", sha: SHA },
      },
    });
    expect(d.eventsOf("step.succeeded", r.effects)[0]!.data).toMatchObject({ stepId: "s1", external: true });
  });

  it("success on the last step completes the protocol", () => {
    const d = protocol([{ id: "s1" }], { start: "s1" });
    expectOk(ci(d, "success"));
    expect(d.status).toBe("completed");
    expect(d.eventTypes().at(-1)).toBe("run.finished");
  });

  it("success on a step waiting in needs_qa, failed or blocked completes it (a forced approval)", () => {
    const qa = protocol([{ id: "impl", qa: { auto: false } }, { id: "next" }], { start: "impl" });
    qa.succeed("impl", { diff: "+1" });
    expect(qa.step("impl")).toBe("needs_qa");
    expectOk(ci(qa, "success"));
    expect(qa.step("impl")).toBe("completed");
    expect(qa.eventsOf("step.approved", qa.last.effects)[0]!.data).toMatchObject({ stepId: "impl", forced: true, actor: "webhook:github" });

    const failed = protocol([{ id: "impl" }, { id: "next" }], { start: "impl" });
    failed.failResult("impl", { retryable: false });
    expect([failed.step("impl"), failed.status]).toEqual(["failed", "blocked"]);
    expectOk(ci(failed, "success"));
    expect(failed.step("impl")).toBe("completed");
    // Nothing blocks the protocol any more.
    expect(failed.status).toBe("running");
  });

  it("success with onSuccess qa (ORCH_AUTO_QA_ON_CI) starts the step's QA: its work is dispatched in the same transition", () => {
    const d = protocol([{ id: "impl" }], { start: "impl", ciDefaults: { onSuccess: "qa" } });
    const r = expectOk(ci(d, "success"));
    expect(d.step("impl")).toBe("qa");
    expect(d.eventTypes(r.effects)).toContain("step.qa_started");
    expect(d.newWork(r.effects)).toEqual([expect.objectContaining({ stepId: "impl", kind: "qa", role: "qa", attempt: 2 })]);
  });

  it("failure fails the running step and blocks the protocol (CI failed; protocol blocked); no fix attempt by default", () => {
    const d = protocol([{ id: "impl" }], { start: "impl" });
    const r = expectOk(ci(d, "failure"));
    expect(d.step("impl")).toBe("failed");
    expect(d.status).toBe("blocked");
    expect(d.context.error).toBe("CI failed; protocol blocked");
    expect(d.stepCtx("impl").error).toMatchObject({ code: "FAILED", message: "CI failed; protocol blocked", retryable: false });
    expect(d.eventTypes(r.effects)).toEqual(["run.facts_changed", "step.failed", "run.status_changed"]);
    expect(d.state.ci).toEqual({ policy: { ...CI_POLICY_DEFAULTS }, attempts: 0 });
    expect(d.state.facts.ciFixAttempts).toBeUndefined();
  });

  it("failure fails a step waiting in needs_qa too", () => {
    const d = protocol([{ id: "impl", qa: { auto: false } }], { start: "impl" });
    d.succeed("impl");
    expectOk(ci(d, "failure", { conclusion: "action_required" }));
    expect([d.step("impl"), d.status]).toEqual(["failed", "blocked"]);
    expect(d.state.facts.ci).toMatchObject({ status: "failure", conclusion: "action_required" });
  });

  it("pending changes nothing but the record", () => {
    const d = protocol([{ id: "impl" }], { start: "impl" });
    const r = expectOk(ci(d, "pending"));
    expect(d.eventTypes(r.effects)).toEqual(["run.facts_changed"]);
    expect([d.step("impl"), d.status]).toEqual(["running", "running"]);
    expect(d.state.facts.ci).toMatchObject({ status: "pending", conclusion: "queued" });
  });

  it("acts on the step that started last (not the planning step), or on the one it names", () => {
    const d = protocol([{ id: "s1" }, { id: "s2" }], { start: "s1" });
    d.tick(5);
    expectAccepted(d.signal({ name: "run_step", stepId: "s2" }));
    expectOk(ci(d, "success"));
    expect([d.step("s1"), d.step("s2")]).toEqual(["running", "completed"]);
    expectOk(ci(d, "failure", { stepId: "s1" }));
    expect(d.step("s1")).toBe("failed");
    expectRefused(ci(d, "success", { stepId: "nope" }), RefusalCode.NotFound, /no step 'nope'/);
    expectRefused(ci(d, "success", { stepId: "plan" }), RefusalCode.NotFound);
  });

  it("with no step started yet, it is only recorded", () => {
    const d = protocol([{ id: "s1" }]);
    const r = expectOk(ci(d, "failure"));
    expect(d.eventTypes(r.effects)).toEqual(["run.facts_changed"]);
    expect([d.step("s1"), d.status]).toEqual(["pending", "planned"]);
  });

  it("a report for a finished run is refused and changes nothing", () => {
    const d = protocol([{ id: "s1" }], { start: "s1" });
    d.signal({ name: "cancel" });
    for (const s of CI_STATUSES) expectRefused(ci(d, s), RefusalCode.TerminalState, /the run is cancelled/);
    for (const name of ["pr_opened", "pr_closed", "pr_merged"] as const) expectRefused(d.signal({ name }), RefusalCode.TerminalState);
  });
});

describe("ci_report with other policies", () => {
  const withCi = (ciPolicy: unknown, onStepFailure: "fail" | "block" = "block"): DefinitionInput =>
    ({ ...PROTOCOL, id: "protocol.ci", onStepFailure, ci: ciPolicy }) as DefinitionInput;

  it("onFailure fail: the step fails and the run does what onStepFailure says", () => {
    const d = protocol([{ id: "impl" }], { start: "impl", def: withCi({ onFailure: "fail" }, "fail") });
    expectOk(ci(d, "failure"));
    expect(d.step("impl")).toBe("failed");
    expect(d.status).toBe("failed");
    expect(d.context.error).toBe("CI failed");
  });

  it("record (or off, or none at all): the report is recorded, the steps are left alone", () => {
    for (const policy of [{ onSuccess: "record", onFailure: "record", fixAttempts: 3, fixCooldownMs: 0 }, "off", undefined]) {
      for (const status of CI_STATUSES) {
        const d = protocol([{ id: "impl" }], { start: "impl", def: withCi(policy) });
        const r = expectOk(ci(d, status));
        expect(d.eventTypes(r.effects), `${JSON.stringify(policy)} ${status}`).toEqual(["run.facts_changed"]);
        expect(d.step("impl")).toBe("running");
      }
    }
  });

  it("a job (no CI policy): recorded only", () => {
    const d = Drive.of("job", { steps: [{ id: "a", type: "dev.log" }], autoStart: true });
    expect(d.step("a")).toBe("running");
    const r = expectOk(ci(d, "failure"));
    expect(d.eventTypes(r.effects)).toEqual(["run.facts_changed"]);
    expect(d.step("a")).toBe("running");
  });
});

describe("CI fix attempts (fixAttempts, fixCooldownMs)", () => {
  const COOLDOWN = 60_000;
  const fixing = () => protocol([{ id: "impl" }, { id: "docs" }], { start: "impl", ciDefaults: { fixAttempts: 2, fixCooldownMs: COOLDOWN } });

  it("a failure fails the step, blocks the protocol and runs the step again with the failure as feedback, all in one transition", () => {
    const d = fixing();
    d.tick(1_000);
    const r = expectOk(ci(d, "failure"));
    expect(d.eventTypes(r.effects)).toEqual([
      "run.facts_changed",
      "step.failed",
      "run.status_changed",
      "step.started",
      "run.status_changed",
      "ci.fix_attempt",
      "run.facts_changed",
    ]);
    expect(d.step("impl")).toBe("running");
    expect(d.stepCtx("impl").retries).toBe(1);
    expect(d.status).toBe("running");
    const work = d.newWork(r.effects);
    expect(work).toHaveLength(1);
    expect(work[0]!.feedback).toBe(
      [
        `CI failed on github (unit tests): failure at ${SHA}.`,
        "Details: https://ci.example.test/runs/7",
        "The step's last error: CI failed; protocol blocked",
        "Fix what makes it fail (fix attempt 1 of 2).",
      ].join("\n"),
    );
    expect(d.eventsOf("step.started", r.effects)[0]!.data).toMatchObject({ hint: work[0]!.feedback });
    // Counted in the run's state with the kernel's clock; shown as facts.
    expect(d.state.ci).toMatchObject({ attempts: 1, lastAt: T0 + 1_000 });
    const failure = { conclusion: "failure", name: "unit tests", url: "https://ci.example.test/runs/7", sha: SHA };
    expect(d.eventsOf("ci.fix_attempt", r.effects)[0]!.data).toEqual({ stepId: "impl", attempt: 1, max: 2, failure });
    expect(d.state.facts).toMatchObject({
      ciFixAttempts: 1,
      ciFixLastAt: T0 + 1_000,
      ciFix: { attempt: 1, max: 2, stepId: "impl", at: T0 + 1_000, failure },
    });
  });

  it("inside the cooldown a failure starts none and says why; after it the next attempt starts; past the maximum none", () => {
    const d = fixing();
    expectOk(ci(d, "failure"));
    const firstAt = d.now;

    d.tick(COOLDOWN - 1);
    const r2 = expectOk(ci(d, "failure"));
    expect([d.step("impl"), d.status, d.stepCtx("impl").retries]).toEqual(["failed", "blocked", 1]);
    expect(d.newWork(r2.effects)).toEqual([]);
    const notBefore = firstAt + COOLDOWN;
    const reason = `CI fix attempt 2 of 2 waits for the cooldown: not before ${new Date(notBefore).toISOString()}`;
    expect(d.eventsOf("ci.fix_refused", r2.effects)[0]!.data).toEqual({ stepId: "impl", reason, attempts: 1, max: 2, notBefore });
    expect(d.state.facts.ciFixRefused).toEqual({ reason, stepId: "impl", at: d.now });
    expect(d.state.ci).toMatchObject({ attempts: 1, lastAt: firstAt });

    d.tick(1);
    expectOk(ci(d, "failure"));
    expect([d.step("impl"), d.status, d.stepCtx("impl").retries]).toEqual(["running", "running", 2]);
    expect(d.state.ci).toMatchObject({ attempts: 2, lastAt: d.now });
    expect(d.state.facts.ciFixAttempts).toBe(2);

    d.tick(COOLDOWN);
    const r4 = expectOk(ci(d, "failure"));
    expect([d.step("impl"), d.status]).toEqual(["failed", "blocked"]);
    expect(d.eventsOf("ci.fix_refused", r4.effects)[0]!.data).toMatchObject({ reason: "CI fix attempts used up (2 of 2)", attempts: 2, max: 2 });
    expect(d.state.facts.ciFixRefused).toMatchObject({ reason: "CI fix attempts used up (2 of 2)" });
    expect(d.eventsOf("ci.fix_attempt")).toHaveLength(2);
  });

  it("a step that failed on its own is run again by a CI failure too (nothing more to fail)", () => {
    const d = fixing();
    d.failResult("impl", { retryable: false, message: "tests red" });
    expect([d.step("impl"), d.status]).toEqual(["failed", "blocked"]);
    const r = expectOk(ci(d, "failure"));
    expect(d.eventTypes(r.effects)).not.toContain("step.failed");
    expect(d.step("impl")).toBe("running");
    expect(d.newWork(r.effects)[0]!.feedback).toContain("The step's last error: tests red");
  });

  it("the count is the run's own: facts written from outside do not change it", () => {
    const d = fixing();
    expectOk(ci(d, "failure"));
    d.tick(COOLDOWN);
    expectOk(ci(d, "failure"));
    d.setFacts({ ciFixAttempts: 0, ciFixLastAt: 0 });
    d.tick(COOLDOWN);
    expectOk(ci(d, "failure"));
    expect(d.state.facts.ciFixRefused).toMatchObject({ reason: "CI fix attempts used up (2 of 2)" });
    expect(d.step("impl")).toBe("failed");
  });

  it("a failure of a step that is not failed afterwards (pending, completed) starts no attempt", () => {
    const d = fixing();
    expectOk(ci(d, "success"));
    expect(d.step("impl")).toBe("completed");
    const r = expectOk(ci(d, "failure"));
    expect(d.eventTypes(r.effects)).toEqual(["run.facts_changed"]);
    expect(d.state.ci).toMatchObject({ attempts: 0 });
  });
});

describe("pull requests", () => {
  it("pr_merged completes a protocol in one transition: every step not done yet, whatever its status, then the run", () => {
    const d = protocol([{ id: "s1" }, { id: "s2" }, { id: "s3" }, { id: "s4" }, { id: "s5" }], { start: "s1" });
    d.succeed("s1");
    expectAccepted(d.signal({ name: "run_step", stepId: "s2" }));
    expectAccepted(d.signal({ name: "run_step", stepId: "s3" }));
    d.failResult("s3", { retryable: false });
    expectAccepted(d.signal({ name: "skip_step", stepId: "s5" }));
    expect(d.statuses()).toEqual({ s1: "completed", s2: "running", s3: "failed", s4: "pending", s5: "skipped" });
    expect(d.status).toBe("blocked");
    const r = expectOk(
      d.signal(
        { name: "pr_merged", number: 2, action: "closed", url: "https://example.test/pr/2", provider: "github", facts: { webhook: { event: "pr.merged" } } },
        WEBHOOK,
      ),
    );
    expect(d.statuses()).toEqual({ s1: "completed", s2: "completed", s3: "completed", s4: "completed", s5: "skipped" });
    expect(d.status).toBe("completed");
    expect(d.eventTypes(r.effects)).toEqual(["run.facts_changed", "pr.merged", "step.approved", "step.approved", "step.approved", "run.finished"]);
    expect(d.eventsOf("step.approved", r.effects).map((e) => [e.data!.stepId, e.data!.forced, e.data!.reason])).toEqual([
      ["s2", true, "pull request merged"],
      ["s3", true, "pull request merged"],
      ["s4", true, "pull request merged"],
    ]);
    expect(d.eventsOf("pr.merged", r.effects)[0]!.data).toEqual({
      number: 2,
      provider: "github",
      url: "https://example.test/pr/2",
      actor: "webhook:github",
      outcome: "complete",
    });
    expect(d.state.facts.pullRequest).toEqual({ number: 2, action: "closed", merged: true, provider: "github", at: d.now, url: "https://example.test/pr/2" });
    expect(d.state.facts.webhook).toEqual({ event: "pr.merged" });
    // The running step's timers went with it.
    expect(d.timers.size).toBe(0);
  });

  it("pr_merged completes a protocol that is still planning, or never started", () => {
    const planning = Drive.of("protocol", { input: { protocol_name: "x" } });
    planning.start();
    expect(planning.status).toBe("planning");
    expectOk(planning.signal({ name: "pr_merged" }));
    expect([planning.status, planning.step("plan")]).toEqual(["completed", "completed"]);

    const pending = Drive.of("protocol", { input: { protocol_name: "x" } });
    expectOk(pending.signal({ name: "pr_merged" }));
    expect(pending.status).toBe("completed");
  });

  it("opened and closed pull requests on a protocol are recorded only", () => {
    const d = protocol([{ id: "s1" }], { start: "s1" });
    expectOk(d.signal({ name: "pr_opened", number: 3, action: "opened" }));
    expect(d.state.facts.pullRequest).toMatchObject({ number: 3, action: "opened", merged: false });
    expectOk(d.signal({ name: "pr_closed", number: 3 }));
    expect(d.state.facts.pullRequest).toMatchObject({ number: 3, action: "closed", merged: false });
    expect(d.state.facts).not.toHaveProperty("pr");
    expect(d.step("s1")).toBe("running");
  });

  it("a run without a pull request policy records a merge and goes on", () => {
    const d = Drive.of("job", { steps: [{ id: "a", type: "dev.log" }], autoStart: true });
    const r = expectOk(d.signal({ name: "pr_merged", number: 1 }));
    expect(d.eventTypes(r.effects)).toEqual(["run.facts_changed", "pr.merged"]);
    expect(d.eventsOf("pr.merged", r.effects)[0]!.data).toMatchObject({ outcome: "recorded" });
    expect(d.status).toBe("running");
  });
});

describe("a ticket (seed 003): facts, and the merge as its stage event", () => {
  const ticket = () => Drive.of("ticket", { input: { branch: "feature-x", title: "T" } });

  it("opened sets pr and draftPr, closed clears pr; CI sets testsPassed and never touches a step", () => {
    const d = ticket();
    expectOk(d.signal({ name: "pr_opened", number: 2, action: "opened" }));
    expect(d.state.facts).toMatchObject({ pr: true, draftPr: true, pullRequest: { number: 2, action: "opened", merged: false } });
    expectOk(ci(d, "failure"));
    expect(d.state.facts.testsPassed).toBe(false);
    expectOk(ci(d, "pending"));
    expect(d.state.facts.testsPassed).toBe(false);
    expectOk(ci(d, "success"));
    expect(d.state.facts.testsPassed).toBe(true);
    expectOk(d.signal({ name: "pr_closed", number: 2, action: "closed" }));
    expect(d.state.facts.pr).toBe(false);
    expect(d.status).toBe("pending");
  });

  it("a merge fires ReviewApprovedAndMerged with {pr, mergeCompleted}, atomically: the ticket is Done", () => {
    const d = ticket();
    d.start();
    d.event("TicketAccepted");
    d.succeed("plan", { plan: "p" });
    expect(d.stage).toBe("Implementing");
    const r = expectOk(d.signal({ name: "pr_merged", number: 2 }, WEBHOOK));
    expect(d.status).toBe("completed");
    expect(d.state.run.context.stage).toBe("Done");
    expect(d.state.facts).toMatchObject({ pr: true, mergeCompleted: true });
    expect(d.eventsOf("pr.merged", r.effects)[0]!.data).toMatchObject({ outcome: "event", event: "ReviewApprovedAndMerged" });
    expect(d.eventsOf("pr.merged", r.effects)[0]!.data).not.toHaveProperty("refused");
    expect(d.eventTypes(r.effects).at(-1)).toBe("run.finished");
  });

  it("a merge the run cannot take now (not started) is recorded: its facts stand, the refusal is said", () => {
    const d = ticket();
    const r = expectOk(d.signal({ name: "pr_merged", number: 2 }));
    expect(d.status).toBe("pending");
    expect(d.state.facts).toMatchObject({ pr: true, mergeCompleted: true });
    expect(d.eventsOf("pr.merged", r.effects)[0]!.data).toMatchObject({ outcome: "event", event: "ReviewApprovedAndMerged", refused: expect.any(String) });
    // Started later, the merge's facts let its event through.
    d.start();
    expectAccepted(d.event("ReviewApprovedAndMerged"));
    expect(d.status).toBe("completed");
  });
});

// ── the table, on every step status (@xstate/graph) ────────────────────────────────────────────

const clock = { at: 1_000, rand: 0 };
const ERR = { code: "X", message: "x", retryable: true };

/** Events enough to reach every step status. */
function stepEvents(s: { context: StepContext }): StepEvent[] {
  const attemptId = attemptIdOf(s.context);
  const result = (decision: "done" | "qa" | "needs_qa" | "approval" | "retry" | "fail", ok = true) =>
    ({ type: "RESULT", attemptId, ok, decision, ...(decision === "retry" ? { backoffMs: 10 } : {}), ...(ok ? {} : { error: ERR }), ...clock }) as StepEvent;
  return [
    { type: "DISPATCH", reason: "manual", ...clock },
    result("done"),
    result("qa"),
    result("needs_qa"),
    result("approval"),
    result("retry", false),
    result("fail", false),
    { type: "CANCEL", ...clock },
    { type: "BLOCK", ...clock },
    { type: "SKIP", ...clock },
  ];
}

/** The step event each action of the table sends, and the status it must reach. */
const STEP_EVENT: Record<Exclude<CiStepAction, "none">, { event: StepEvent; to: StepStatus }> = {
  complete: { event: { type: "COMPLETE", decision: "done", ...clock }, to: "completed" },
  approve: { event: { type: "APPROVE", force: true, ...clock }, to: "completed" },
  qa: { event: { type: "RUN_QA", ...clock }, to: "qa" },
  fail: { event: { type: "FAIL", error: ERR, ...clock }, to: "failed" },
};

describe("the CI table on every step status (@xstate/graph)", () => {
  const paths = getShortestPaths(stepMachine, {
    input: { runId: "r", stepId: "s", index: 0, now: 0 },
    events: stepEvents as never,
    serializeState: ((s: AnyMachineSnapshot) => JSON.stringify(s.value)) as never,
  });

  it("reaches every step status", () => {
    expect(new Set(paths.map((p) => String(p.state.value)))).toEqual(new Set(STEP_STATUSES));
  });

  const policies: CiRules[] = CI_ON_SUCCESS.flatMap((onSuccess) =>
    CI_ON_FAILURE.map((onFailure) => ({ onSuccess, onFailure, fixAttempts: 1, fixCooldownMs: 0 })),
  );

  it("asks only for what the step machine accepts from that status, and it gets there", () => {
    let acted = 0;
    for (const p of paths) {
      const from = String(p.state.value) as StepStatus;
      for (const rules of policies) {
        for (const status of CI_STATUSES) {
          const action = ciStepAction(rules, status, from);
          const label = `${status} on ${from} (${rules.onSuccess}/${rules.onFailure}) → ${action}`;
          if (action === "none") continue;
          acted++;
          const { event, to } = STEP_EVENT[action];
          const [next] = transition(stepMachine, p.state as never, event);
          expect(next, label).not.toBe(p.state);
          expect(next.value, label).toBe(to);
        }
      }
    }
    expect(acted).toBeGreaterThan(0);
  });

  it("a success completes or starts QA, a failure fails, pending and record do nothing; settled steps are left alone", () => {
    for (const p of paths) {
      const from = String(p.state.value) as StepStatus;
      for (const rules of policies) {
        expect(ciStepAction(rules, "pending", from)).toBe("none");
        if (rules.onSuccess === "record") expect(ciStepAction(rules, "success", from)).toBe("none");
        if (rules.onFailure === "record") expect(ciStepAction(rules, "failure", from)).toBe("none");
        if (["pending", "completed", "skipped", "cancelled", "waiting_approval", "qa", "retry_wait"].includes(from)) {
          for (const s of CI_STATUSES) expect(ciStepAction(rules, s, from), `${s} on ${from}`).toBe("none");
        }
      }
    }
    const rules = { ...CI_POLICY_DEFAULTS };
    expect(ciStepAction(rules, "success", "running")).toBe("complete");
    expect(["needs_qa", "failed", "blocked"].map((s) => ciStepAction(rules, "success", s as StepStatus))).toEqual(["approve", "approve", "approve"]);
    expect(["running", "needs_qa", "failed", "blocked"].map((s) => ciStepAction({ ...rules, onSuccess: "qa" }, "success", s as StepStatus))).toEqual([
      "qa",
      "qa",
      "qa",
      "qa",
    ]);
    expect(["running", "needs_qa", "failed", "blocked"].map((s) => ciStepAction(rules, "failure", s as StepStatus))).toEqual(["fail", "fail", "none", "none"]);
  });

  it("a fix attempt's run_step is accepted from what a failure leaves (failed, blocked)", () => {
    for (const p of paths.filter((x) => x.state.value === "failed" || x.state.value === "blocked")) {
      const [next] = transition(stepMachine, p.state as never, { type: "DISPATCH", reason: "manual", hint: "fix it", ...clock });
      expect(next.value).toBe("running");
      expect((next.context as StepContext).hint).toBe("fix it");
    }
  });
});

describe("a report on a run's step in each status the kernel can put it in", () => {
  /** A protocol whose step `impl` is in `status` (reached through the kernel's own actions). */
  function at(status: StepStatus, ciDefaults: CiDefaults): Drive {
    const step: Record<string, unknown> = { id: "impl" };
    if (status === "needs_qa" || status === "qa") step.qa = { auto: false };
    if (status === "waiting_approval") step.approval = {};
    const d = protocol([step, { id: "next" }], { ciDefaults, ...(status === "pending" || status === "skipped" ? {} : { start: "impl" }) });
    switch (status) {
      case "pending":
      case "running":
        break;
      case "retry_wait":
        d.failResult("impl");
        break;
      case "needs_qa":
        d.succeed("impl");
        break;
      case "qa":
        d.succeed("impl");
        expectAccepted(d.signal({ name: "run_qa", stepId: "impl" }));
        break;
      case "waiting_approval":
      case "completed":
        d.succeed("impl");
        break;
      case "failed":
        d.failResult("impl", { retryable: false });
        break;
      case "blocked":
        expectAccepted(d.signal({ name: "block_step", stepId: "impl" }));
        break;
      case "skipped":
        expectAccepted(d.signal({ name: "skip_step", stepId: "impl" }));
        break;
      case "cancelled":
        throw new Error("a cancelled step belongs to a finished run");
    }
    expect(d.step("impl")).toBe(status);
    return d;
  }

  const STATUSES = STEP_STATUSES.filter((s) => s !== "cancelled");
  const DEFAULTS: CiDefaults[] = [{}, { onSuccess: "qa" }, { fixAttempts: 1, fixCooldownMs: 0 }];

  for (const status of STATUSES) {
    it(`${status}: the table's action, in one well-formed transition`, () => {
      for (const defaults of DEFAULTS) {
        for (const report of CI_STATUSES) {
          const d = at(status, defaults);
          const rules = d.state.ci!.policy;
          const action = ciStepAction(rules, report, status);
          const label = `${report} on ${status} with ${JSON.stringify(defaults)} → ${action}`;
          const r = expectOk(ci(d, report, { stepId: "impl" }));
          const types = d.eventTypes(r.effects);
          expect(types[0], label).toBe("run.facts_changed");
          const fixable = report === "failure" && rules.fixAttempts > 0 && (action === "fail" || status === "failed" || status === "blocked");
          if (action === "none" && !fixable) expect(types, label).toEqual(["run.facts_changed"]);
          if (action === "fail") expect(types, label).toContain("step.failed");
          if (action === "qa") expect(d.step("impl"), label).toBe("qa");
          if (action === "approve") expect(d.step("impl"), label).toBe("completed");
          if (fixable) {
            expect(types, label).toContain("ci.fix_attempt");
            expect(d.step("impl"), label).toBe("running");
          }
        }
      }
    });
  }
});

function expectOk<T extends { error?: unknown }>(r: T): T {
  expectAccepted(r as never);
  return r;
}
