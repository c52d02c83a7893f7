import { describe, expect, it } from "vitest";
import { Command, RunView, TRANSITION_VERSION, TransitionHead, TransitionReader, encodeTransition, type StoredEvent } from "@orch/contracts";
import { TaskPacket, jobRunSpec } from "@orch/runs";
import { builtin, builtinVersions, compileDefinition, parseDefinition, type CompiledDefinition, type RunState } from "@orch/engine";
import { RECENT_COMMANDS, commandKey, decide, restoredState, storedState, type CoreState, type Decision, type RunAsStored } from "../src/core/decide.js";

/**
 * The core's pure decision: (the run as stored, a command) → the transition to write (head, events,
 * view, state) and the outcome to answer, or a noop; nothing executed.
 */

const clock = (now: number) => ({ now, rand: 0 });
const job = builtin("job");
const speckit = builtin("speckit.specify");

const createJob = (runId = "job1", issuedAt = 1_000): Command => {
  const spec = jobRunSpec(TaskPacket.parse({ goal: "ship it", steps: [{ type: "ci" }, { type: "docs", id: "docs-1" }], limits: { maxSteps: 5 } }));
  return Command.parse({
    type: "run.create",
    commandId: `create:${runId}`,
    runId,
    issuedAt,
    projectId: "_default",
    definition: spec.definition,
    title: spec.title,
    input: spec.input,
    steps: spec.steps,
    limits: spec.limits,
    mode: "mock",
  });
};

const result = (runId: string, stepId: string, attemptId: string, commandId = `result:${attemptId}`, ok = true): Command => ({
  type: "step.result",
  commandId,
  runId,
  issuedAt: 2_000,
  stepId,
  attemptId,
  kind: "execute",
  ok,
  startedAt: 1_500,
  finishedAt: 2_000,
  ...(ok ? {} : { error: { code: "X", message: "boom", retryable: false } }),
});

const signal = (runId: string, commandId: string, sig: Record<string, unknown>, extra: { actor?: string; reason?: string } = {}): Command =>
  Command.parse({ type: "run.signal", commandId, runId, issuedAt: 1_100, signal: sig, ...extra });

type Write = Extract<Decision, { kind: "write" }>;

/** `type#seq` of a transition's events. */
const kinds = (events: StoredEvent[]) => events.map((e) => `${e.type}#${e.seq}`);

/**
 * Encodes the transition as the core stores it and reads it back as every reader does (head checked
 * against TransitionHead, view against RunView): each part must come back as it was written.
 */
function roundTrip(d: Write): RunAsStored {
  const t = d.transition;
  const r = new TransitionReader(encodeTransition({ ...t, state: storedState(t.state) }));
  const head = r.head();
  expect(head).toEqual(t.head);
  expect(TransitionHead.parse(t.head)).toEqual(t.head);
  expect(r.events()).toEqual(t.events.map((e) => ({ runId: t.head.runId, projectId: t.head.projectId, ...e })));
  // The view as readers decode it: counters the core leaves out at 0 read as 0.
  expect(r.view()).toEqual(RunView.parse(t.view));
  const state = restoredState(r.state())!;
  expect(state).toEqual(t.state);
  // The head's events are the run's `seq - events + 1 … seq`, gapless.
  expect(t.events.map((e) => e.seq)).toEqual(Array.from({ length: head.events }, (_, i) => head.seq - head.events + 1 + i));
  // The head's summary is the view's (the view is the summary with the steps).
  expect(t.view).toMatchObject(t.head.run);
  // The run as the core loads it back from the stream.
  return { head, run: head.run!, state };
}

/** Decides and expects a transition to write (outcome ok); returns it with the run as stored after it. */
function write(prev: RunAsStored | null, cmd: Command, now: number, cd: CompiledDefinition | { missing: string } = job): { d: Write; run: RunAsStored } {
  const d = decide(prev, cmd, cd, clock(now));
  if (d.kind !== "write") throw new Error(`expected a transition, got noop: ${d.reason}`);
  expect(d.outcome).toEqual({ commandId: cmd.commandId, runId: cmd.runId, ok: true, run: d.transition.view });
  return { d, run: roundTrip(d) };
}

const apply = (prev: RunAsStored | null, cmd: Command, now: number, cd: CompiledDefinition = job) => write(prev, cmd, now, cd).run;

describe("decide: creating a run", () => {
  it("creates a job run: the head (number, events, cause, summary, work, timers) and its events numbered 1..n in order", () => {
    const { d, run } = write(null, createJob(), 1_000);
    const { head, events, state } = d.transition;
    // The view as readers decode it (counters at 0 are left out by the core and read as 0).
    const view = RunView.parse(d.transition.view);
    expect(head).toEqual({
      v: TRANSITION_VERSION,
      runId: "job1",
      projectId: "_default",
      n: 1,
      seq: 3,
      events: 3,
      at: 1_000,
      cause: { type: "run.create", commandId: "create:job1" },
      run: {
        runId: "job1",
        projectId: "_default",
        definition: { id: "job", version: 1 },
        view: "job",
        mode: "mock",
        title: "ship it",
        labels: {},
        status: "running",
        stage: "main",
        createdAt: 1_000,
        updatedAt: 1_000,
        startedAt: 1_000,
        stepsRun: 0,
        inflight: 1,
        seq: 3,
      },
      work: [
        {
          runId: "job1",
          projectId: "_default",
          definition: { id: "job", version: 1 },
          stepId: "s0",
          attemptId: "job1.s0.1",
          attempt: 1,
          kind: "execute",
          index: 0,
          role: "implementer",
          type: "ci",
          phase: "s0",
          inputs: {},
          iteration: 0,
          rework: 0,
          mode: "mock",
          dispatchedAt: 1_000,
          goal: "ship it",
        },
      ],
      timers: [{ op: "set", timerId: "job1.wall", dueAt: 11_001, kind: "wall_clock" }],
    });
    expect(head).not.toHaveProperty("withdrawn");
    expect(kinds(events)).toEqual(["run.created#1", "run.status_changed#2", "step.started#3"]);
    expect(events.every((e) => e.at === 1_000)).toBe(true);
    expect(events[0]!.data).toMatchObject({ definition: { id: "job", version: 1 }, steps: ["s0", "s1"] });
    expect(events[1]!.data).toMatchObject({ from: "pending", to: "running", trigger: "START", stage: "main" });
    // The start names the attempt; what runs (type, role, payload) is the work item's.
    expect(events[2]!.data).toMatchObject({ stepId: "s0", index: 0, attempt: 1, attemptId: "job1.s0.1", from: "pending", to: "running" });
    for (const k of ["type", "role", "title", "payload"]) expect(events[2]!.data).not.toHaveProperty(k);
    // The view: the summary and the steps as they stand.
    expect(view!.steps).toEqual([
      expect.objectContaining({
        id: "s0",
        index: 0,
        status: "running",
        role: "implementer",
        type: "ci",
        attempt: 1,
        attemptId: "job1.s0.1",
        inflight: true,
        maxAttempts: 3,
      }),
      expect.objectContaining({ id: "s1", index: 1, status: "pending", type: "docs", title: "docs-1", attempt: 0, maxAttempts: 3 }),
    ]);
    expect(view!.steps[1]).not.toHaveProperty("attemptId");
    expect(view!.steps[1]).not.toHaveProperty("inflight");
    expect(view).toMatchObject({ mode: "mock", stepsRun: 0, inflight: 1, input: { goal: "ship it" } });
    // The core's own state: the kernel's and the command id applied.
    expect(state).toMatchObject({ v: 1, recent: [commandKey("create:job1")] });
    expect((state.kernel as RunState).runId).toBe("job1");
    expect(run.head.n).toBe(1);
  });

  it("a refused create of an unknown definition writes a failed run with one run.finished event", () => {
    const cmd = Command.parse({ type: "run.create", commandId: "create:x", runId: "x", issuedAt: 1_000, projectId: "p", definition: { id: "nope" } });
    const d = decide(null, cmd, { missing: "no workflow definition 'nope'" }, clock(1_050));
    if (d.kind !== "write") throw new Error("expected a transition");
    expect(d.outcome).toEqual({
      commandId: "create:x",
      runId: "x",
      ok: false,
      error: { code: "NOT_FOUND", message: "no workflow definition 'nope'" },
      run: d.transition.view,
    });
    const { head, events, view, state } = d.transition;
    expect(head).toEqual({
      v: TRANSITION_VERSION,
      runId: "x",
      projectId: "p",
      n: 1,
      seq: 1,
      events: 1,
      at: 1_050,
      cause: { type: "run.create", commandId: "create:x" },
      run: {
        runId: "x",
        projectId: "p",
        definition: { id: "nope", version: 0 },
        view: "generic",
        mode: "mock",
        labels: {},
        status: "failed",
        createdAt: 1_000,
        updatedAt: 1_050,
        finishedAt: 1_050,
        error: "no workflow definition 'nope'",
        stepsRun: 0,
        seq: 1,
      },
    });
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ seq: 1, type: "run.finished", at: 1_050, data: { status: "failed", error: "no workflow definition 'nope'" } });
    expect(view).toMatchObject({ status: "failed", steps: [], facts: {}, input: {} });
    expect(state).toEqual({ v: 1, kernel: null, recent: [commandKey("create:x")] });
    const stored = roundTrip(d);

    // Nothing more happens to it: a later command is refused (TERMINAL_STATE), its duplicate is a noop.
    const cancel = decide(stored, signal("x", "c", { name: "cancel" }), { missing: "" }, clock(1_100));
    expect(cancel).toMatchObject({ kind: "noop", outcome: { ok: false, error: { code: "TERMINAL_STATE", message: "no workflow definition 'nope'" } } });
    expect(decide(stored, cmd, { missing: "" }, clock(1_100))).toMatchObject({
      kind: "noop",
      reason: "duplicate command",
      outcome: { ok: true, duplicate: true },
    });
  });

  it("a create the kernel refuses (a step that needs an unknown one) writes a failed run too, answered INVALID", () => {
    const cmd = Command.parse({
      type: "run.create",
      commandId: "create:bad",
      runId: "bad",
      issuedAt: 1_000,
      projectId: "p",
      definition: { id: "job", version: 1 },
      steps: [{ id: "a", type: "ci", needs: ["zz"] }],
      limits: { maxSteps: 1 },
    });
    const d = decide(null, cmd, job, clock(1_000));
    if (d.kind !== "write") throw new Error("expected a transition");
    expect(d.outcome).toMatchObject({ ok: false, error: { code: "INVALID", message: expect.stringMatching(/^the run could not be created: .*unknown step/) } });
    expect(d.transition.head.run).toMatchObject({ status: "failed", error: expect.stringMatching(/unknown step/), seq: 1 });
    expect(kinds(d.transition.events)).toEqual(["run.finished#1"]);
    roundTrip(d);
  });

  it("gives every new run the default budgets besides its own", () => {
    const cmd = Command.parse({
      type: "run.create",
      commandId: "create:w",
      runId: "w",
      issuedAt: 1_000,
      projectId: "p",
      definition: { id: "speckit.specify" },
      input: { feature_description: "x".repeat(20) },
      budgets: [{ scope: "phase", target: "phase_1", tokens: 5 }],
    });
    const d = decide(null, cmd, speckit, clock(1_000), [{ scope: "run", tokens: 100, mode: "warn" }]);
    if (d.kind !== "write") throw new Error("expected a transition");
    const state = d.transition.state.kernel as RunState;
    expect(state.budgets.map((b) => `${b.scope}:${b.target ?? "*"}:${b.tokens}:${b.mode}`)).toEqual(["run:*:100:warn", "phase:phase_1:5:strict"]);
    // Its work carries the definition's payload; its view, the step's payload too.
    const payload = speckit.steps[0]!.payload;
    expect(payload).toMatchObject({ workflow: "specify", phase: 1 });
    expect(d.transition.head.work).toEqual([expect.objectContaining({ stepId: "phase_1", type: "speckit.specify", payload })]);
    expect(d.transition.view!.steps[0]).toMatchObject({ id: "phase_1", payload, inflight: true });
    roundTrip(d);
  });

  it("gives every new run the core's CI defaults for what its definition's CI policy leaves out, recorded with the run", () => {
    const protocol = builtin("protocol");
    const cmd = Command.parse({
      type: "run.create",
      commandId: "create:p",
      runId: "p",
      issuedAt: 1_000,
      projectId: "p",
      definition: { id: "protocol" },
      input: { protocol_name: "feature-x" },
      steps: [{ id: "impl" }],
    });
    const ciDefaults = { onSuccess: "qa" as const, fixAttempts: 2, fixCooldownMs: 5_000 };
    const d = decide(null, cmd, protocol, clock(1_000), [], ciDefaults);
    if (d.kind !== "write") throw new Error("expected a transition");
    const policy = { onSuccess: "qa", onFailure: "block", fixAttempts: 2, fixCooldownMs: 5_000 };
    expect((d.transition.state.kernel as RunState).ci).toEqual({ policy, attempts: 0 });
    expect(d.transition.events[0]).toMatchObject({ type: "run.created", data: { ci: policy } });
    let run = roundTrip(d);
    // The run plans, one step runs; a CI success then starts its QA in one transition, answered with the view.
    run = apply(run, result("p", "plan", "p.plan.1"), 1_100, protocol);
    run = apply(run, signal("p", "run", { name: "run_step", stepId: "impl" }), 1_200, protocol);
    const ci = decide(run, signal("p", "ci", { name: "ci_report", status: "success", check: "unit" }, { actor: "webhook:github" }), protocol, clock(1_300));
    if (ci.kind !== "write") throw new Error("expected a transition");
    expect(ci.transition.head.cause).toMatchObject({ signal: "ci_report", actor: "webhook:github" });
    expect(ci.transition.head.work).toEqual([expect.objectContaining({ stepId: "impl", kind: "qa" })]);
    expect(ci.outcome.run!.steps.find((s) => s.id === "impl")).toMatchObject({ status: "qa", attempt: 2 });
    roundTrip(ci);
  });

  it("fails a job at once whose wall clock ran out before the core saw it", () => {
    const { d } = write(null, createJob("late", 1_000), 20_000);
    const { head, events } = d.transition;
    expect(head.run).toMatchObject({ status: "failed", error: "wall_clock_exceeded", createdAt: 1_000, startedAt: 20_000, finishedAt: 20_000, seq: 5 });
    expect(head).toMatchObject({ n: 1, seq: 5, events: 5 });
    expect(head).not.toHaveProperty("work");
    expect(head).not.toHaveProperty("withdrawn");
    expect(head.run).not.toHaveProperty("inflight");
    // The wall clock is armed (from when the client asked) and disarmed by the same transition, in that order.
    expect(head.timers).toEqual([
      { op: "set", timerId: "late.wall", dueAt: 11_001, kind: "wall_clock" },
      { op: "cancel", timerId: "late.wall" },
    ]);
    // Its steps are cancelled before its end; nothing started.
    expect(kinds(events)).toEqual(["run.created#1", "run.status_changed#2", "step.cancelled#3", "step.cancelled#4", "run.finished#5"]);
    expect(events[4]!.data).toEqual({ status: "failed", from: "running", trigger: "FAIL", stage: "main", error: "wall_clock_exceeded" });
  });

  it("a create for a run that exists is a noop answered with the run (duplicate)", () => {
    const run = apply(null, createJob(), 1_000);
    const again = Command.parse({ ...createJob(), commandId: "create:job1:again" });
    const d = decide(run, again, job, clock(1_100));
    expect(d).toMatchObject({ kind: "noop", reason: "run exists", outcome: { ok: true, duplicate: true, run: { runId: "job1", status: "running" } } });
  });
});

describe("decide: create-or-signal (run.create with then)", () => {
  const queue = builtin("merge.queue");
  const join = (member: string, n = 1): Command =>
    Command.parse({
      type: "run.create",
      commandId: `mq-join.${member}.${n}`,
      runId: "mq-p-main-1",
      issuedAt: 1_000,
      projectId: "p",
      definition: { id: "merge.queue" },
      input: { base: "main" },
      autoStart: true,
      then: { name: "mq_enqueue", runId: member, number: 7 },
    });

  it("creates the run and applies the signal in one transition; on a run that exists, applies only the signal; once per command id", () => {
    const { d, run } = write(null, join("run-a"), 1_000, queue);
    expect(kinds(d.transition.events)).toContain("mq.entered#" + d.transition.events.find((e) => e.type === "mq.entered")!.seq);
    expect(d.transition.events[0]!.type).toBe("run.created");
    expect(d.transition.view.mergeQueue).toMatchObject({ base: "main", entries: [{ runId: "run-a", number: 7, position: 1 }], head: "run-a" });
    const second = write(run, join("run-b"), 1_100, queue);
    expect(second.d.transition.events.map((e) => e.type)).toEqual(["mq.entered"]);
    expect(second.d.transition.view.mergeQueue).toMatchObject({ entries: [{ runId: "run-a" }, { runId: "run-b", position: 2 }], head: "run-a" });
    expect(decide(second.run, join("run-b"), queue, clock(1_200))).toMatchObject({ kind: "noop", reason: "duplicate command" });
  });

  it("an invalid then is refused, naming it; without then a create of an existing run stays a noop", () => {
    const run = apply(null, join("run-a"), 1_000, queue);
    const bad = Command.parse({ ...join("run-b"), then: { name: "mq_enqueue" } });
    expect(decide(run, bad, queue, clock(1_100))).toMatchObject({
      kind: "noop",
      outcome: { ok: false, error: { code: "INVALID", message: expect.stringMatching(/^invalid then/) } },
    });
    const { then: _t, ...plain } = join("run-c") as Record<string, unknown>;
    expect(decide(run, Command.parse(plain), queue, clock(1_100))).toMatchObject({ kind: "noop", reason: "run exists" });
  });
});

describe("decide: commands on a run", () => {
  it("applies a command id once: a duplicate is a noop answered with duplicate: true and the run", () => {
    const r = apply(null, createJob(), 1_000);
    const dup = decide(r, createJob(), job, clock(1_200));
    expect(dup).toMatchObject({
      kind: "noop",
      reason: "duplicate command",
      outcome: { commandId: "create:job1", ok: true, duplicate: true, run: { status: "running" } },
    });
    if (dup.kind !== "noop") throw new Error("expected a noop");
    expect(RunView.parse(dup.outcome.run)).toMatchObject(dup.outcome.run!);
    const r2 = apply(r, result("job1", "s0", "job1.s0.1"), 1_100);
    expect(decide(r2, result("job1", "s0", "job1.s0.1"), job, clock(1_300))).toMatchObject({
      kind: "noop",
      reason: "duplicate command",
      outcome: { ok: true, duplicate: true, run: { stepsRun: 1 } },
    });
  });

  it("continues the event sequence gaplessly, numbers its transitions, and records the finish (run.finished last)", () => {
    const r = apply(null, createJob(), 1_000);
    const a = write(r, result("job1", "s0", "job1.s0.1"), 1_100);
    const h1 = a.d.transition.head;
    expect(h1).toMatchObject({ n: 2, seq: 5, events: 2, at: 1_100, cause: { type: "step.result", commandId: "result:job1.s0.1", attemptId: "job1.s0.1" } });
    expect(kinds(a.d.transition.events)).toEqual(["step.succeeded#4", "step.started#5"]);
    expect(h1.work).toEqual([
      expect.objectContaining({ stepId: "s1", attemptId: "job1.s1.1", type: "docs", role: "implementer", title: "docs-1", dispatchedAt: 1_100 }),
    ]);
    // The answered attempt is not withdrawn (its session is over anyway); no timer changes.
    expect(h1).not.toHaveProperty("withdrawn");
    expect(h1).not.toHaveProperty("timers");
    expect(h1.run).toMatchObject({ status: "running", stepsRun: 1, inflight: 1, updatedAt: 1_100, seq: 5 });
    expect(a.d.transition.view!.steps.map((s) => [s.id, s.status, s.inflight ?? false])).toEqual([
      ["s0", "completed", false],
      ["s1", "running", true],
    ]);

    const b = write(a.run, result("job1", "s1", "job1.s1.1"), 1_200);
    const h2 = b.d.transition.head;
    expect(h2).toMatchObject({ n: 3, seq: 7, events: 2, at: 1_200 });
    // The run's end is one event, its last.
    expect(kinds(b.d.transition.events)).toEqual(["step.succeeded#6", "run.finished#7"]);
    expect(b.d.transition.events[1]).toEqual({
      seq: 7,
      type: "run.finished",
      at: 1_200,
      data: { status: "completed", from: "running", trigger: "STAGE_DONE", stage: "main" },
    });
    expect(h2.timers).toEqual([{ op: "cancel", timerId: "job1.wall" }]);
    expect(h2).not.toHaveProperty("work");
    expect(h2).not.toHaveProperty("withdrawn");
    expect(h2.run).toMatchObject({ status: "completed", stepsRun: 2, finishedAt: 1_200, updatedAt: 1_200, seq: 7 });
    expect(h2.run).not.toHaveProperty("inflight");
    expect(b.d.transition.view).not.toHaveProperty("inflight");
    expect(b.d.transition.state.recent).toEqual(["create:job1", "result:job1.s0.1", "result:job1.s1.1"].map(commandKey));

    // A late result for the finished run changes nothing.
    expect(decide(b.run, result("job1", "s1", "job1.s1.1", "late"), job, clock(1_300))).toEqual({
      kind: "noop",
      reason: "run is completed",
      outcome: { commandId: "late", runId: "job1", ok: true },
    });
  });

  it("never records a step completed twice, even under a new command id", () => {
    let r = apply(null, createJob(), 1_000);
    r = apply(r, result("job1", "s0", "job1.s0.1"), 1_100);
    const again = write(r, result("job1", "s0", "job1.s0.1", "result:job1.s0.1:redelivered"), 1_150);
    expect(kinds(again.d.transition.events)).toEqual(["step.result_ignored#6"]);
    expect(again.d.transition.head).toMatchObject({ n: 3, seq: 6, events: 1 });
    expect(again.d.transition.head).not.toHaveProperty("work");
    expect(again.run.run.stepsRun).toBe(1);
  });

  it("answers refusals with the engine's code and the run, and changes nothing", () => {
    const r = apply(null, createJob(), 1_000);
    const resume = decide(r, signal("job1", "s1", { name: "resume" }), job, clock(1_100));
    expect(resume).toMatchObject({ kind: "noop", outcome: { ok: false, error: { code: "ILLEGAL_TRANSITION" }, run: { status: "running" } } });
    const bad = decide(r, signal("job1", "s2", { name: "approve", revision: 5 }), job, clock(1_100));
    expect(bad).toMatchObject({ kind: "noop", outcome: { ok: false, error: { code: "INVALID", message: expect.stringMatching(/^invalid signal/) } } });
    const unknown = decide(null, result("nope", "s0", "nope.s0.1"), job, clock(1_100));
    expect(unknown).toMatchObject({ kind: "noop", outcome: { ok: false, error: { code: "NOT_FOUND" } } });
    expect(unknown.outcome).not.toHaveProperty("run");
  });

  it("withdraws the attempt in flight when the run is cancelled; run.finished says who, why and from what", () => {
    const r = apply(null, createJob(), 1_000);
    const { d, run } = write(r, signal("job1", "cancel:1", { name: "cancel" }, { actor: "ops", reason: "changed my mind" }), 1_100);
    const { head, events } = d.transition;
    expect(head).toMatchObject({ n: 2, seq: 6, events: 3, at: 1_100, cause: { type: "run.signal", commandId: "cancel:1", signal: "cancel" } });
    expect(head.withdrawn).toEqual(["job1.s0.1"]);
    expect(head.timers).toEqual([{ op: "cancel", timerId: "job1.wall" }]);
    expect(head).not.toHaveProperty("work");
    // The steps it cancels come first; its end is last.
    expect(kinds(events)).toEqual(["step.cancelled#4", "step.cancelled#5", "run.finished#6"]);
    expect(events.slice(0, 2).map((e) => e.data!.stepId)).toEqual(["s0", "s1"]);
    expect(events[2]!.data).toEqual({ status: "cancelled", from: "running", trigger: "CANCEL", actor: "ops", reason: "changed my mind", stage: "main" });
    expect(head.run).toMatchObject({ status: "cancelled", finishedAt: 1_100 });
    expect(head.run).not.toHaveProperty("inflight");
    // Cancelling again is accepted and changes nothing.
    expect(decide(run, signal("job1", "cancel:2", { name: "cancel" }), job, clock(1_200))).toMatchObject({
      kind: "noop",
      reason: "nothing changed",
      outcome: { ok: true, run: { status: "cancelled" } },
    });
  });

  it("withdraws the attempt a wall-clock timer ends; the timer's cause names its command", () => {
    const r = apply(null, createJob(), 1_000);
    const fired = Command.parse({
      type: "timer.fired",
      commandId: "timer:job1.wall",
      runId: "job1",
      issuedAt: 11_001,
      actor: "scheduler",
      timerId: "job1.wall",
      kind: "wall_clock",
    });
    const { d } = write(r, fired, 11_001);
    expect(d.transition.head).toMatchObject({ cause: { type: "timer.fired", commandId: "timer:job1.wall", actor: "scheduler" }, withdrawn: ["job1.s0.1"] });
    expect(d.transition.events.at(-1)).toMatchObject({
      type: "run.finished",
      data: { status: "failed", from: "running", trigger: "WALL_CLOCK", error: "wall_clock_exceeded" },
    });
  });

  it("describes steps with their model, payload, QA role and notes; an attempt in QA is in flight", () => {
    const cd = compileDefinition(
      parseDefinition({
        id: "t",
        version: 1,
        steps: [{ id: "a", role: "implementer", title: "Build", model: "big", payload: { k: 1 }, qa: { auto: true }, retry: { maxAttempts: 2 } }],
      }),
    );
    const create = Command.parse({
      type: "run.create",
      commandId: "create:t",
      runId: "t1",
      issuedAt: 1_000,
      projectId: "p",
      definition: { id: "t", version: 1 },
    });
    const r = apply(null, create, 1_000, cd);
    expect(r.head.work).toEqual([expect.objectContaining({ stepId: "a", kind: "execute", model: "big", payload: { k: 1 }, title: "Build" })]);
    const done = { ...result("t1", "a", "t1.a.1"), notes: ["built"] } as Command;
    const { d } = write(r, done, 1_100, cd);
    // The same step is dispatched again for QA: its attempt is in flight, nothing is withdrawn.
    expect(kinds(d.transition.events)).toEqual(["step.succeeded#4", "step.qa_started#5"]);
    expect(d.transition.events[1]!.data).not.toHaveProperty("role");
    expect(d.transition.head.work).toEqual([expect.objectContaining({ stepId: "a", kind: "qa", role: "qa" })]);
    expect(d.transition.head).not.toHaveProperty("withdrawn");
    expect(d.transition.view!.steps).toEqual([
      expect.objectContaining({
        id: "a",
        status: "qa",
        title: "Build",
        model: "big",
        payload: { k: 1 },
        qaRole: "qa",
        maxAttempts: 2,
        notes: ["built"],
        attemptId: d.transition.head.work![0]!.attemptId,
        inflight: true,
      }),
    ]);
    expect(d.transition.head.run).toMatchObject({ inflight: 1 });
  });

  it(`remembers the last ${RECENT_COMMANDS} command ids`, () => {
    let r = apply(null, createJob(), 1_000);
    for (let i = 0; i < RECENT_COMMANDS + 10; i++) r = apply(r, result("job1", "s0", "job1.s0.9", `stale-${i}`), 1_100 + i);
    expect(r.state.recent).toHaveLength(RECENT_COMMANDS);
    expect(r.state.recent[0]).toBe(commandKey("stale-10"));
    expect(r.state.recent.at(-1)).toBe(commandKey(`stale-${RECENT_COMMANDS + 9}`));
    expect(r.head.n).toBe(RECENT_COMMANDS + 11);
    // One that fell out of the window is applied again (a result for a stale attempt: ignored again).
    const old = write(r, result("job1", "s0", "job1.s0.9", "stale-0"), 2_000);
    expect(kinds(old.d.transition.events)).toEqual([`step.result_ignored#${r.head.seq + 1}`]);
    // One still in it is a duplicate.
    expect(decide(r, result("job1", "s0", "job1.s0.9", "stale-10"), job, clock(2_000))).toMatchObject({ kind: "noop", outcome: { duplicate: true } });
  });
});

describe("decide: seed 001's policies (the task worker, periodic runs)", () => {
  const taskQueue = builtin("task.queue");
  const task = (id: string, extra: Record<string, unknown> = {}) => ({
    id,
    role: "implementer",
    type: "task",
    inputs: { taskId: id, description: id },
    ...extra,
  });

  it("applies the core's task worker settings to a run of tasks at its creation: recorded, and its first task dispatched in that transition", () => {
    const cmd = Command.parse({
      type: "run.create",
      commandId: "create:q",
      runId: "q",
      issuedAt: 1_000,
      projectId: "_default",
      definition: { id: "task.queue" },
      steps: [task("a"), task("b")],
    });
    const d = decide(null, cmd, taskQueue, clock(1_000), [], {}, { enabled: true, maxRetries: 2, backoffMs: 300 });
    if (d.kind !== "write") throw new Error("expected a transition");
    expect((d.transition.state.kernel as RunState).worker).toEqual({ enabled: true, maxRetries: 2, backoffMs: 300 });
    expect(d.transition.events[0]).toMatchObject({ type: "run.created", data: { worker: { enabled: true, maxRetries: 2, backoffMs: 300 } } });
    expect(d.transition.head.work?.map((w) => w.stepId)).toEqual(["a"]);
    expect(d.transition.view.steps.map((s) => s.maxAttempts)).toEqual([3, 3]);
    let run = roundTrip(d);
    // Its failure: retried after the worker's backoff, through a retry timer.
    run = apply(
      run,
      { ...result("q", "a", "q.a.1", "r1", false), error: { code: "MOCK_FAILURE", message: "boom", retryable: true } } as Command,
      2_000,
      taskQueue,
    );
    expect(run.head.timers).toEqual([{ op: "set", timerId: "q.a.1.retry", dueAt: 2_300, kind: "retry", stepId: "a" }]);
    // Created without the settings (or with the worker off): the definition's, manual.
    const off = decide(null, { ...cmd, runId: "q2", commandId: "create:q2" } as Command, taskQueue, clock(1_000));
    if (off.kind !== "write") throw new Error("expected a transition");
    expect(off.transition.head.work).toBeUndefined();
    expect((off.transition.state.kernel as RunState).worker).toEqual({ enabled: false, maxRetries: 3, backoffMs: 1_000 });
  });

  it("writes a periodic run's tick as a timer carrying the create of its slot's run (run id and command id from the slot)", () => {
    // Version 1: the periodic run (seed 001's ORCH_SCHEDULE_*).
    const schedule = builtinVersions().find((c) => c.def.id === "schedule" && c.def.version === 1)!;
    let run = apply(
      null,
      Command.parse({
        type: "run.create",
        commandId: "create:s",
        runId: "s",
        issuedAt: 1_000,
        projectId: "_default",
        definition: { id: "schedule", version: 1 },
      }),
      10_500,
      schedule,
    );
    const creates = { definition: { id: "task.queue" }, input: { slot: "${slot}" }, steps: [task("${runId}-tester")] };
    run = apply(run, signal("s", "set", { name: "set_schedule", enabled: true, everyMs: 1_000, creates }), 10_500, schedule);
    expect(run.head.timers).toEqual([{ op: "set", timerId: "s.tick.1000.10", dueAt: 10_500, kind: "tick" }]);
    const tick: Command = { type: "timer.fired", commandId: "timer:s.tick.1000.10", runId: "s", issuedAt: 10_500, timerId: "s.tick.1000.10", kind: "tick" };
    run = apply(run, tick, 10_510, schedule);
    expect(run.head.timers).toEqual([
      {
        op: "set",
        timerId: "s.create.1000.10",
        dueAt: 10_510,
        kind: "command",
        command: expect.objectContaining({
          type: "run.create",
          runId: "s-1000-10",
          commandId: "create:s-1000-10",
          input: { slot: 10 },
          steps: [expect.objectContaining({ id: "s-1000-10-tester" })],
        }),
      },
      { op: "set", timerId: "s.tick.1000.11", dueAt: 11_000, kind: "tick" },
    ]);
    // The command is a command: the scheduler sends it as it is.
    const sent = (run.head.timers![0] as { command: unknown }).command;
    expect(Command.safeParse(sent).success).toBe(true);
    // The same tick again changes nothing.
    expect(decide(run, { ...tick, commandId: "timer:again" }, schedule, clock(10_600))).toMatchObject({ kind: "noop" });
  });
});
