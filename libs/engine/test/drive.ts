import { expect } from "vitest";
import { FINAL_RUN_STATUSES, type RunStatus, type RunView, type StepStatus, type RefusalCode, type Signal } from "@orch/contracts";
import {
  applyAction,
  builtin,
  packState,
  unpackState,
  compileDefinition,
  createRun,
  parseDefinition,
  runStatusOf,
  runView,
  stageOfValue,
  stepStatus,
  type CompiledDefinition,
  type CreateRunOptions,
  type DefinitionInput,
  type KernelAction,
  type KernelEffect,
  type KernelResult,
  type RunState,
  type StepError,
  type TimerKind,
  type Usage,
  type WorkSpec,
} from "../src/index.js";

/**
 * A small driver over the pure kernel: it keeps the run's state, a clock, the effects so far, the
 * last work dispatched per step and the timers armed and not cancelled, so a test reads as the
 * story of a run (create, complete, fail, fire the timers, approve, …).
 */

export const T0 = 1_000_000;

export type EventEffect = Extract<KernelEffect, { kind: "event" }>;
export type TimerSet = Extract<KernelEffect, { kind: "timer"; op: "set" }>;

export interface ArmedTimer {
  timerId: string;
  dueAt: number;
  kind: TimerKind;
  stepId?: string;
}

/**
 * The state as the core stores it and reads it back (packed, JSON, unpacked): it must be the same
 * state, and every test goes on from the one read back, as a core that restarted would.
 */
function stored(state: RunState): RunState {
  const back = unpackState(JSON.parse(JSON.stringify(packState(state))) as Record<string, unknown>);
  expect(back, "a stored state reads back as it was").toEqual(state);
  return back;
}

/** Compiles an inline definition (defaults applied, validated). */
export const define = (input: DefinitionInput): CompiledDefinition => compileDefinition(parseDefinition(input));

export interface ResultOptions {
  output?: unknown;
  error?: Partial<StepError> & { code?: string };
  usage?: Partial<Usage>;
  model?: string;
  notes?: string[];
  /** Answer this attempt instead of the current one (late or stale results). */
  attemptId?: string;
  kind?: "execute" | "qa" | "plan";
}

export class Drive {
  state: RunState;
  now: number;
  rand: number;
  last: KernelResult;
  /** Every effect of every accepted action, in order. */
  readonly effects: KernelEffect[] = [];
  /** The last work dispatched per step. */
  readonly work = new Map<string, WorkSpec>();
  /** All work dispatched, in order. */
  readonly dispatched: WorkSpec[] = [];
  /** Timers set and not cancelled (nor fired). */
  readonly timers = new Map<string, ArmedTimer>();

  constructor(
    readonly cd: CompiledDefinition,
    opts: Partial<CreateRunOptions> = {},
    clock: { now?: number; rand?: number } = {},
  ) {
    this.now = clock.now ?? T0;
    this.rand = clock.rand ?? 0;
    this.last = createRun(cd, { runId: "r1", projectId: "p1", autoStart: false, ...opts }, { now: this.now, rand: this.rand });
    this.state = stored(this.last.state);
    expectWellFormed(this.last);
    this.absorb(this.last.effects);
  }

  static of(def: string | CompiledDefinition, opts: Partial<CreateRunOptions> = {}, clock: { now?: number; rand?: number } = {}): Drive {
    return new Drive(typeof def === "string" ? builtin(def) : def, opts, clock);
  }

  private absorb(effects: KernelEffect[]) {
    for (const e of effects) {
      this.effects.push(e);
      if (e.kind === "work") {
        this.work.set(e.work.stepId, e.work);
        this.dispatched.push(e.work);
      } else if (e.kind === "timer") {
        if (e.op === "set") this.timers.set(e.timerId, { timerId: e.timerId, dueAt: e.dueAt, kind: e.timerKind, ...(e.stepId ? { stepId: e.stepId } : {}) });
        else this.timers.delete(e.timerId);
      }
    }
  }

  // ── clock ──────────────────────────────────────────────────────────────

  tick(ms: number): this {
    this.now += ms;
    return this;
  }

  at(now: number): this {
    this.now = now;
    return this;
  }

  // ── actions ────────────────────────────────────────────────────────────

  /** Applies an action; a refusal must leave the state untouched (checked here, every time). */
  apply(action: KernelAction): KernelResult {
    const before = this.state;
    const snapshot = JSON.stringify(before);
    const r = applyAction(this.cd, this.state, action, { now: this.now, rand: this.rand });
    this.last = r;
    if (r.error) {
      expect(r.state, "a refusal returns the state it was given").toBe(before);
      expect(r.effects).toEqual([]);
      expect(r.changed).toBe(false);
      expect(JSON.stringify(before), "a refusal does not mutate the state").toBe(snapshot);
      return r;
    }
    expect(JSON.stringify(before), "the kernel never mutates the state it is given").toBe(snapshot);
    expectWellFormed(r);
    this.state = stored(r.state);
    this.absorb(r.effects);
    return r;
  }

  signal(signal: Signal, extra: { actor?: string; reason?: string } = {}): KernelResult {
    return this.apply({ type: "signal", signal, ...extra });
  }

  /** Applies an action that must be accepted. */
  ok(r: KernelResult): KernelResult {
    expect(r.error, `unexpected refusal: ${r.error?.code} ${r.error?.message}`).toBeUndefined();
    return r;
  }

  start(extra: { actor?: string; reason?: string } = {}) {
    return this.ok(this.signal({ name: "start" }, extra));
  }

  /** A result for the step's current attempt (the last work dispatched for it). */
  result(stepId: string, ok: boolean, o: ResultOptions = {}): KernelResult {
    const w = this.work.get(stepId);
    const attemptId = o.attemptId ?? w?.attemptId;
    if (!attemptId) throw new Error(`no work dispatched for ${stepId}`);
    const kind = o.kind ?? w?.kind ?? "execute";
    const usage = o.usage ? { tokensIn: 0, tokensOut: 0, costUsd: 0, wallMs: 0, ...o.usage } : undefined;
    const error = o.error
      ? { code: "MOCK_FAILURE", message: "boom", retryable: true, ...o.error }
      : ok
        ? undefined
        : { code: "MOCK_FAILURE", message: "boom", retryable: true };
    return this.apply({
      type: "result",
      stepId,
      attemptId,
      kind,
      ok,
      ...(o.output !== undefined ? { output: o.output } : {}),
      ...(error ? { error } : {}),
      ...(usage ? { usage } : {}),
      ...(o.model ? { model: o.model } : {}),
      ...(o.notes ? { notes: o.notes } : {}),
    });
  }

  /** The agent answers the step's current work successfully. */
  succeed(stepId: string, output?: unknown, o: ResultOptions = {}) {
    return this.result(stepId, true, { ...o, ...(output !== undefined ? { output } : {}) });
  }

  /** The agent answers the step's current work with a failure. */
  failResult(stepId: string, error: Partial<StepError> = {}, o: ResultOptions = {}) {
    return this.result(stepId, false, { ...o, error });
  }

  /** `complete_step` on the running step (or the one named). */
  complete(output?: unknown, stepId?: string, extra: { actor?: string; reason?: string } = {}) {
    return this.signal({ name: "complete_step", ...(stepId ? { stepId } : {}), ...(output !== undefined ? { output } : {}) }, extra);
  }

  /** `fail_step` on the running step (or the one named). */
  fail(error = "boom", stepId?: string, extra: { actor?: string; reason?: string; block?: boolean } = {}) {
    const { block, ...who } = extra;
    return this.signal({ name: "fail_step", error, ...(stepId ? { stepId } : {}), ...(block ? { block } : {}) }, who);
  }

  revision(stepId: string): string | undefined {
    return this.state.steps[stepId]?.context.revision;
  }

  /** Approves what waits (or the named step) at its current revision. */
  approve(stepId?: string, extra: { actor?: string; reason?: string; output?: unknown; revision?: string } = {}) {
    const id = stepId ?? this.waiting()[0];
    const { actor, reason, output, revision } = extra;
    return this.signal(
      {
        name: "approve",
        ...(id ? { stepId: id } : {}),
        revision: revision ?? (id ? this.revision(id) : undefined),
        ...(output !== undefined ? { output } : {}),
      },
      { ...(actor ? { actor } : {}), ...(reason ? { reason } : {}) },
    );
  }

  reject(stepId?: string, extra: { actor?: string; reason?: string; revision?: string } = {}) {
    const id = stepId ?? this.waiting()[0];
    const { actor, reason, revision } = extra;
    return this.signal(
      { name: "reject", ...(id ? { stepId: id } : {}), revision: revision ?? (id ? this.revision(id) : undefined) },
      { ...(actor ? { actor } : {}), ...(reason ? { reason } : {}) },
    );
  }

  event(name: string, facts?: Record<string, unknown>, extra: { actor?: string; reason?: string } = {}) {
    return this.signal({ name: "event", event: name, ...(facts ? { facts } : {}) }, extra);
  }

  setFacts(facts: Record<string, unknown>) {
    return this.ok(this.signal({ name: "set_facts", facts }));
  }

  /** Fires one armed timer (the clock moves to its due time unless already past it). */
  fire(timerId: string): KernelResult {
    const t = this.timers.get(timerId);
    if (!t) throw new Error(`no armed timer ${timerId} (armed: ${[...this.timers.keys()].join(", ")})`);
    this.now = Math.max(this.now, t.dueAt);
    this.timers.delete(timerId);
    return this.apply({ type: "timer", timerId: t.timerId, kind: t.kind, ...(t.stepId ? { stepId: t.stepId } : {}) });
  }

  /** Fires the armed timers of a kind (all kinds when omitted), earliest first. */
  fireTimers(kind?: TimerKind): KernelResult[] {
    const due = [...this.timers.values()].filter((t) => !kind || t.kind === kind).sort((a, b) => a.dueAt - b.dueAt);
    return due.map((t) => this.fire(t.timerId));
  }

  timer(kind: TimerKind, stepId?: string): ArmedTimer | undefined {
    return [...this.timers.values()].find((t) => t.kind === kind && (stepId === undefined || t.stepId === stepId));
  }

  // ── reading ────────────────────────────────────────────────────────────

  get status(): RunStatus {
    return runStatusOf(this.state.run.value);
  }

  get stage(): string | undefined {
    return stageOfValue(this.state.run.value);
  }

  get context() {
    return this.state.run.context;
  }

  step(id: string): StepStatus {
    return stepStatus(this.state.steps[id] ?? (id === this.cd.planning?.id ? this.state.planning : undefined));
  }

  stepCtx(id: string) {
    const s = this.state.steps[id] ?? (id === this.cd.planning?.id ? this.state.planning : undefined);
    if (!s) throw new Error(`no step ${id}`);
    return s.context;
  }

  statuses(): Record<string, StepStatus> {
    return Object.fromEntries(Object.keys(this.state.steps).map((id) => [id, this.step(id)]));
  }

  stepsIn(status: StepStatus): string[] {
    return Object.keys(this.state.steps).filter((id) => this.step(id) === status);
  }

  running(): string[] {
    return this.stepsIn("running");
  }

  waiting(): string[] {
    return this.stepsIn("waiting_approval");
  }

  /** Event effects (of the last action by default). */
  events(of: KernelEffect[] = this.last.effects): EventEffect[] {
    return of.filter((e): e is EventEffect => e.kind === "event");
  }

  eventTypes(of: KernelEffect[] = this.last.effects): string[] {
    return this.events(of).map((e) => e.type);
  }

  allEvents(): EventEffect[] {
    return this.events(this.effects);
  }

  /** The events of a type (over the whole run by default). */
  eventsOf(type: string, of: KernelEffect[] = this.effects): EventEffect[] {
    return this.events(of).filter((e) => e.type === type);
  }

  /** Work dispatched by the last action. */
  newWork(of: KernelEffect[] = this.last.effects): WorkSpec[] {
    return of.filter((e): e is Extract<KernelEffect, { kind: "work" }> => e.kind === "work").map((e) => e.work);
  }

  /** The run's published view, as the core would write it now. */
  view(): RunView {
    return runView(this.cd, this.state, {
      runId: this.state.runId,
      projectId: this.state.projectId,
      definition: { id: this.cd.def.id, version: this.cd.def.version },
      view: this.cd.def.view,
      labels: {},
      status: this.status,
      createdAt: T0,
      updatedAt: this.now,
      seq: 1,
      mode: "mock",
      stepsRun: 0,
    });
  }

  timerEffects(of: KernelEffect[] = this.last.effects) {
    return of.filter((e): e is Extract<KernelEffect, { kind: "timer" }> => e.kind === "timer");
  }
}

/**
 * What every accepted action's effects say, whatever the run (checked by the driver on each one):
 * - a run's end is one event, `run.finished`, the last of its transition's effects, carrying the final
 *   status the run is in, the status it left (`from`, never final) and what ended it (`trigger`); no
 *   `run.status_changed` is a change to a final status;
 * - a start (`step.started`, `step.qa_started`) does not repeat what runs: the work item the same
 *   transition dispatches for that step and attempt carries its type, role, title and payload.
 */
export function expectWellFormed(r: KernelResult): void {
  const events = r.effects.filter((e): e is EventEffect => e.kind === "event");
  const work = r.effects.filter((e): e is Extract<KernelEffect, { kind: "work" }> => e.kind === "work").map((e) => e.work);
  for (const e of events) {
    if (e.type === "run.status_changed") expect(FINAL_RUN_STATUSES.has(e.data!.to as RunStatus), `run.status_changed to ${String(e.data!.to)}`).toBe(false);
  }
  const ends = events.filter((e) => e.type === "run.finished");
  expect(ends.length, "one run.finished at most").toBeLessThanOrEqual(1);
  if (ends.length === 1) {
    const end = ends[0]!;
    expect(r.effects.at(-1), "run.finished is the transition's last effect").toBe(end);
    const status = runStatusOf(r.state.run.value);
    expect(FINAL_RUN_STATUSES.has(status)).toBe(true);
    expect(end.data).toMatchObject({ status, from: expect.any(String), trigger: expect.any(String) });
    expect(FINAL_RUN_STATUSES.has(end.data!.from as RunStatus), "run.finished's from is not final").toBe(false);
  }
  for (const e of events) {
    if (e.type !== "step.started" && e.type !== "step.qa_started") continue;
    for (const k of ["type", "role", "title", "payload"]) expect(e.data, `${e.type} repeats ${k}`).not.toHaveProperty(k);
    const kinds = e.type === "step.qa_started" ? ["qa"] : ["execute", "plan"];
    expect(
      work.some((w) => w.stepId === e.data!.stepId && w.attempt === e.data!.attempt && kinds.includes(w.kind)),
      `${e.type} of ${String(e.data!.stepId)}#${String(e.data!.attempt)} dispatches its work`,
    ).toBe(true);
  }
}

/** Asserts a refusal with its code (the driver already checks that nothing changed). */
export function expectRefused(r: KernelResult, code: RefusalCode, message?: string | RegExp): void {
  expect(r.error, "expected a refusal").toBeDefined();
  expect(r.error!.code).toBe(code);
  if (message !== undefined) expect(r.error!.message).toMatch(message);
  expect(r.effects).toEqual([]);
  expect(r.changed).toBe(false);
}

export function expectAccepted(r: KernelResult): void {
  expect(r.error, `unexpected refusal: ${r.error?.code} ${r.error?.message}`).toBeUndefined();
}

/** A project's forge, as the core copies it to a run at its creation. */
export const FORGE = { provider: "github" as const, repository: "acme/app" };

/** What the agent hub answers for a `pr.open` step: the PR it found or opened (`created`). */
export function prOpened(
  o: { number?: number; head?: string; headSha?: string; state?: "open" | "closed" | "merged"; draft?: boolean; created?: boolean } = {},
) {
  const number = o.number ?? 7;
  return {
    pullRequest: {
      provider: "github" as const,
      repository: FORGE.repository,
      number,
      url: `https://github.com/${FORGE.repository}/pull/${number}`,
      head: o.head ?? "feature-x",
      base: "main",
      headSha: o.headSha ?? "a1b2c3d4e5f6",
      state: o.state ?? "open",
      ...(o.draft !== undefined ? { draft: o.draft } : {}),
    },
    created: o.created ?? true,
  };
}
