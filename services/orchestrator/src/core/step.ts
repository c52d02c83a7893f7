import { initialTransition, transition } from "xstate";
import type { Command, Effect, RunEvent, RunRecord, TimerRequest } from "@orch/contracts";
import {
  jobMachine,
  statusOf,
  type CancelTimerParams,
  type DispatchParams,
  type EmitParams,
  type JobContext,
  type JobEvent,
  type SetTimerParams,
} from "../domain/job-machine.js";

/** How many applied command ids a record remembers (beyond that, commands are idempotent by meaning). */
export const RECENT_COMMANDS = 64;

export interface Clock {
  now: number;
  rand: number;
}

export type StepOutcome =
  | { kind: "apply"; record: RunRecord }
  /** Nothing to change: a duplicate, a command for a finished run, a create for an existing run. */
  | { kind: "noop"; reason: string };

type MachineAction = { type: string; params?: unknown };

/** The machine event a command stands for (null: the command means nothing to this machine). */
export function toMachineEvent(cmd: Command, clock: Clock): JobEvent | null {
  const c = { at: clock.now, rand: clock.rand };
  switch (cmd.type) {
    case "job.cancel":
      return { type: "CANCEL", ...c, ...(cmd.reason === undefined ? {} : { reason: cmd.reason }), ...(cmd.actor === undefined ? {} : { actor: cmd.actor }) };
    case "step.result":
      return {
        type: "STEP_RESULT",
        ...c,
        attemptId: cmd.attemptId,
        ok: cmd.ok,
        ...(cmd.notes === undefined ? {} : { notes: cmd.notes }),
        ...(cmd.error === undefined ? {} : { error: cmd.error }),
        ...(cmd.output === undefined ? {} : { output: cmd.output }),
      };
    case "timer.fired":
      return cmd.kind === "retry" ? { type: "RETRY_TIMER", ...c, timerId: cmd.timerId } : { type: "WALL_CLOCK", ...c, timerId: cmd.timerId };
    case "job.create":
      return null;
  }
}

/** Machine actions → persisted effects; events get the run's next gapless sequence numbers. */
export function toEffects(actions: MachineAction[], ctx: JobContext, lastSeq: number): { effects: Effect[]; seq: number } {
  let seq = lastSeq;
  const effects: Effect[] = [];
  for (const a of actions) {
    switch (a.type) {
      case "emit": {
        const p = a.params as EmitParams;
        const event: RunEvent = { runId: ctx.jobId, projectId: ctx.projectId, seq: ++seq, type: p.type, at: p.at };
        if (p.data !== undefined) event.data = p.data;
        effects.push({ kind: "event", event });
        break;
      }
      case "dispatch": {
        const p = a.params as DispatchParams;
        effects.push({
          kind: "work",
          queue: p.queue,
          item: {
            runId: ctx.jobId,
            projectId: ctx.projectId,
            attemptId: p.attemptId,
            index: p.index,
            attempt: p.attempt,
            step: p.step,
            mode: ctx.mode,
            goal: ctx.packet.goal,
            dispatchedAt: p.at,
          },
        });
        break;
      }
      case "setTimer": {
        const p = a.params as SetTimerParams;
        const request: TimerRequest = {
          op: "set",
          timerId: p.timerId,
          dueAt: p.dueAt,
          command: {
            type: "timer.fired",
            commandId: `timer:${p.timerId}`,
            runId: ctx.jobId,
            issuedAt: p.dueAt,
            actor: "scheduler",
            timerId: p.timerId,
            kind: p.kind,
          },
        };
        effects.push({ kind: "timer", request });
        break;
      }
      case "cancelTimer": {
        const p = a.params as CancelTimerParams;
        effects.push({ kind: "timer", request: { op: "cancel", timerId: p.timerId } });
        break;
      }
      default:
        // Context updates (`tick`, `fail`, …) are already in the snapshot.
        break;
    }
  }
  return { effects, seq };
}

function recordOf(prev: RunRecord | null, value: unknown, ctx: JobContext, effects: Effect[], seq: number, commandId: string, now: number): RunRecord {
  const r: RunRecord = {
    v: 1,
    runId: ctx.jobId,
    projectId: ctx.projectId,
    kind: "job",
    mode: ctx.mode,
    status: statusOf(value),
    createdAt: ctx.createdAt,
    updatedAt: now,
    stepsRun: ctx.stepsRun,
    seq,
    machine: { value, context: ctx },
    outbox: effects,
    recent: [...(prev?.recent ?? []), commandId].slice(-RECENT_COMMANDS),
  };
  if (ctx.startedAt !== undefined) r.startedAt = ctx.startedAt;
  if (ctx.finishedAt !== undefined) r.finishedAt = ctx.finishedAt;
  if (ctx.error !== undefined) r.error = ctx.error;
  return r;
}

/**
 * The core's pure step: (record, command, clock) → the next record, whose outbox holds the effects
 * to publish. No I/O: the engine loads, persists with compare-and-set, and publishes.
 */
export function step(prev: RunRecord | null, cmd: Command, clock: Clock): StepOutcome {
  if (prev?.recent.includes(cmd.commandId)) return { kind: "noop", reason: "duplicate command" };
  if (cmd.type === "job.create") {
    if (prev) return { kind: "noop", reason: "run exists" };
    const [s0, a0] = initialTransition(jobMachine, {
      jobId: cmd.runId,
      projectId: cmd.projectId,
      mode: cmd.mode,
      packet: cmd.packet,
      createdAt: cmd.issuedAt,
    });
    const [s1, a1] = transition(jobMachine, s0, { type: "START", at: clock.now, rand: clock.rand });
    const { effects, seq } = toEffects([...a0, ...a1], s1.context, 0);
    return { kind: "apply", record: recordOf(null, s1.value, s1.context, effects, seq, cmd.commandId, clock.now) };
  }
  if (!prev) return { kind: "noop", reason: "unknown run" };
  const event = toMachineEvent(cmd, clock);
  if (!event) return { kind: "noop", reason: `${cmd.type} does not apply` };
  const snapshot = jobMachine.resolveState({ value: prev.machine.value as never, context: prev.machine.context as JobContext });
  if (snapshot.status === "done") return { kind: "noop", reason: `run is ${prev.status}` };
  const [next, actions] = transition(jobMachine, snapshot, event);
  if (next === snapshot) return { kind: "noop", reason: `${event.type} is not accepted in ${JSON.stringify(prev.machine.value)}` };
  const { effects, seq } = toEffects(actions, next.context, prev.seq);
  return { kind: "apply", record: recordOf(prev, next.value, next.context, effects, seq, cmd.commandId, clock.now) };
}
