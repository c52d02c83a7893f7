import { assign, setup, type AnyStateMachine } from "xstate";
import { evaluate, type Condition } from "./conditions.js";
import type { CompiledDefinition } from "./definition.js";
import { FINAL_RUN_STATUSES, type RunStatus } from "@orch/contracts";
import type { EmitParams } from "./types.js";

/**
 * A run's lifecycle, compiled from its definition (pure XState v5). The top level is the same for
 * every definition; the definition's stages become the states inside `running`, and its transitions
 * (with their guards) become that region's transitions, so a stage graph such as seed 003's ticket
 * pipeline is a real machine that @xstate/graph can walk.
 *
 *   pending ─START─▶ planning ─PLANNED─▶ planned ─START|RUN_STEP─▶ running ─COMPLETE|STAGE_DONE(last)─▶ completed
 *      └──START (no planning) / RUN_STEP──────────────────────────▶ running ─FAIL|WALL_CLOCK─▶ failed
 *   running ─PAUSE─▶ paused ─RESUME─▶ running;  running ─BLOCKED─▶ blocked ─RUN_STEP|RESUME─▶ running
 *   running ─GATE─▶ waiting ─EXTEND─▶ running | ─ABORT─▶ failed;  any non-final ─CANCEL─▶ cancelled
 *   running ─IDLE─▶ waiting (no gate: every step done, `whenDone: wait`) ─WAKE|RUN_STEP─▶ running
 *   running = { route → <stage> ─stage:<Event> [guard]─▶ <stage> … ─▶ <terminal stage> ─▶ completed|failed|cancelled }
 *
 * Named actions with params are the effects the kernel carries out: `emit` (history), `schedule`
 * (start ready steps), `startPlanning`, `armWallClock`, `settleSteps` (cancel what is still active).
 */

export interface Gate {
  kind: "budget";
  budget: string;
  usage: { tokens: number; costUsd: number };
  limit: { tokens?: number; costUsd?: number };
}

export interface RunContext {
  runId: string;
  projectId: string;
  createdAt: number;
  now: number;
  rand: number;
  /** The current stage (set on entering it; routes `running` back to it after a pause). */
  stage: string;
  startedAt?: number;
  finishedAt?: number;
  error?: string;
  result?: unknown;
  gate?: Gate;
  /** How the run ended: the status it left and what ended it (carried by `run.finished`). */
  end?: RunEnd;
}

export interface RunEnd {
  from: RunStatus;
  trigger: string;
  actor?: string;
  reason?: string;
}

export interface RunInput {
  runId: string;
  projectId: string;
  createdAt: number;
  initialStage: string;
}

interface Clock {
  at: number;
  rand: number;
  actor?: string;
  reason?: string;
}

export type RunEvent =
  | ({ type: "START" } & Clock)
  | ({ type: "PAUSE" } & Clock)
  | ({ type: "RESUME" } & Clock)
  | ({ type: "CANCEL" } & Clock)
  | ({ type: "PLANNED" } & Clock)
  | ({ type: "PLAN_FAILED"; error: string } & Clock)
  | ({ type: "RUN_STEP"; stepId: string } & Clock)
  | ({ type: "STAGE_DONE"; result?: unknown } & Clock)
  | ({ type: "UNBLOCK" } & Clock)
  | ({ type: "COMPLETE"; result?: unknown } & Clock)
  | ({ type: "FAIL"; error: string } & Clock)
  | ({ type: "BLOCKED"; error: string; stepId?: string } & Clock)
  | ({ type: "GATE"; gate: Gate } & Clock)
  | ({ type: "IDLE" } & Clock)
  | ({ type: "WAKE" } & Clock)
  | ({ type: "EXTEND" } & Clock)
  | ({ type: "ABORT" } & Clock)
  | ({ type: "WALL_CLOCK"; timerId: string } & Clock)
  | ({ type: `stage:${string}`; scope: Record<string, unknown> } & Clock);

type Args = { context: RunContext; event: RunEvent };

/**
 * `run.status_changed`: the history record of every status change (seed 002's workflow_history).
 * The change to a final status is not an event of its own: `run.finished` carries it (one fact, one
 * event), so here it is only noted.
 */
function statusChangedBase(from: RunStatus, to: RunStatus, initialStage = "") {
  if (FINAL_RUN_STATUSES.has(to)) {
    return {
      type: "noteEnd",
      params: ({ event }: Args): RunEnd => ({
        from,
        trigger: event.type,
        ...(event.actor ? { actor: event.actor } : {}),
        ...(event.reason ? { reason: event.reason } : {}),
      }),
    };
  }
  return {
    type: "emit",
    params: ({ event, context }: Args): EmitParams => ({
      type: "run.status_changed",
      at: event.at,
      data: {
        from,
        to,
        trigger: event.type,
        ...(event.actor ? { actor: event.actor } : {}),
        ...(event.reason ? { reason: event.reason } : {}),
        ...("error" in event && typeof event.error === "string" ? { error: event.error } : {}),
        // Entering `running` for the first time, the stage is not set yet: it is the initial one.
        ...(to === "running" ? { stage: context.stage || initialStage } : {}),
      },
    }),
  };
}

function stageChanged(from: string, to: string, on: string) {
  return {
    type: "emit",
    params: ({ event }: Args): EmitParams => ({
      type: "run.stage_changed",
      at: event.at,
      data: { from, to, on, ...(event.actor ? { actor: event.actor } : {}), ...(event.reason ? { reason: event.reason } : {}) },
    }),
  };
}

function finished(status: "completed" | "failed" | "cancelled") {
  return [
    "markFinished",
    {
      type: "emit",
      params: ({ context }: Args): EmitParams => ({
        type: "run.finished",
        at: context.now,
        data: {
          status,
          ...context.end,
          stage: context.stage,
          ...(context.error !== undefined ? { error: context.error } : {}),
          ...(context.result !== undefined ? { result: context.result } : {}),
        },
      }),
    },
    "settleSteps",
    "disarmWallClock",
  ];
}

const cache = new Map<string, AnyStateMachine>();

/** The run machine of a definition (compiled once per definition version). */
export function runMachineFor(cd: CompiledDefinition): AnyStateMachine {
  const hit = cache.get(cd.key + cd.hash);
  if (hit) return hit;
  const m = compile(cd);
  cache.set(cd.key + cd.hash, m);
  return m;
}

function compile(cd: CompiledDefinition): AnyStateMachine {
  const statusChanged = (from: RunStatus, to: RunStatus) => statusChangedBase(from, to, cd.initialStage);
  const hasPlanning = cd.planning !== undefined;
  const manual = cd.def.execution === "manual";
  const explicitGraph = cd.def.transitions.length > 0;

  const stageStates: Record<string, unknown> = {};
  const declaredStages = cd.def.stages.length > 0;
  for (const st of cd.stages) {
    const enter = [
      {
        type: "emit",
        // A definition without stages has one implicit stage: entering it is not news.
        params: ({ context, event }: Args): EmitParams | null =>
          context.stage === st.id || !declaredStages ? null : { type: "run.stage_entered", at: event.at, data: { stage: st.id, from: context.stage } },
      },
      { type: "enterStage", params: { stage: st.id } },
    ];
    if (st.terminal) {
      const to = st.terminal;
      stageStates[st.id] = { entry: enter, always: { target: `#run.${to}`, actions: [statusChanged("running", to)] } };
      continue;
    }
    const on: Record<string, unknown[]> = {};
    for (const t of cd.def.transitions) {
      if (t.from !== st.id && t.from !== "*") continue;
      if (t.to === st.id && t.from === "*") continue;
      const key = `stage:${t.on}`;
      (on[key] ??= []).push({
        target: t.to,
        ...(t.guard ? { guard: { type: "cond", params: { cond: t.guard } } } : {}),
        actions: ["tick", stageChanged(st.id, t.to, t.on)],
      });
    }
    if (st.next) on.STAGE_DONE = [{ target: st.next, actions: ["tick", stageChanged(st.id, st.next, "stage_done")] }];
    else if (!explicitGraph) on.STAGE_DONE = [{ target: "#run.completed", actions: ["tick", "setResult", statusChanged("running", "completed")] }];
    stageStates[st.id] = { entry: [...enter, "schedule"], on };
  }

  const toRunning = (from: RunStatus) => ({ target: "#run.running", actions: [statusChanged(from, "running")] });
  const cancel = (from: RunStatus) => ({ target: "#run.cancelled", actions: ["tick", statusChanged(from, "cancelled")] });
  const pause = (from: RunStatus) => ({ target: "#run.paused", actions: ["tick", statusChanged(from, "paused")] });
  const wallClock = (from: RunStatus) => ({
    target: "#run.failed",
    actions: ["tick", assign({ error: "wall_clock_exceeded" }), statusChanged(from, "failed")],
  });
  const startFrom = (from: RunStatus) =>
    hasPlanning
      ? { target: "#run.planning", actions: ["tick", statusChanged(from, "planning")] }
      : { target: "#run.running", actions: ["tick", statusChanged(from, "running")] };

  const config = {
    id: "run",
    initial: "pending",
    // XState also evaluates this without input (each transition() builds an initial snapshot it
    // then discards): answer that case instead of throwing, which cost an exception per command.
    context: ({ input }: { input: RunInput | undefined }): RunContext =>
      input
        ? { runId: input.runId, projectId: input.projectId, createdAt: input.createdAt, now: input.createdAt, rand: 0, stage: "" }
        : { runId: "", projectId: "", createdAt: 0, now: 0, rand: 0, stage: "" },
    states: {
      pending: {
        on: {
          START: { target: "#run.started_", actions: ["tick"] },
          RUN_STEP: { target: "#run.running", actions: ["tick", "markStarted", "armWallClock", statusChanged("pending", "running")] },
          // Seed 004: every step approved before the run ever started completes it.
          COMPLETE: { target: "#run.completed", actions: ["tick", "setResult", statusChanged("pending", "completed")] },
          PAUSE: pause("pending"),
          CANCEL: cancel("pending"),
        },
      },
      /** Leaving `pending` (the run's start: its status change from pending says so): stamp, arm the wall clock, go on. */
      started_: {
        entry: ["markStarted", "armWallClock"],
        always: hasPlanning
          ? { target: "planning", actions: [statusChanged("pending", "planning")] }
          : { target: "running", actions: [statusChanged("pending", "running")] },
      },
      planning: {
        entry: ["startPlanning"],
        on: {
          PLANNED: manual
            ? { target: "planned", actions: ["tick", statusChanged("planning", "planned")] }
            : { target: "running", actions: ["tick", statusChanged("planning", "running")] },
          PLAN_FAILED: { target: "failed", actions: ["tick", "failWith", statusChanged("planning", "failed")] },
          PAUSE: pause("planning"),
          CANCEL: cancel("planning"),
          WALL_CLOCK: wallClock("planning"),
        },
      },
      planned: {
        on: {
          COMPLETE: { target: "#run.completed", actions: ["tick", "setResult", statusChanged("planned", "completed")] },
          START: startFrom("planned"),
          RUN_STEP: { ...toRunning("planned"), actions: ["tick", statusChanged("planned", "running")] },
          PAUSE: pause("planned"),
          CANCEL: cancel("planned"),
          WALL_CLOCK: wallClock("planned"),
        },
      },
      running: {
        initial: "route",
        states: {
          /** Back into the current stage (on first entry: the initial one). */
          route: {
            always: [...cd.stages.map((s) => ({ guard: { type: "inStage", params: { stage: s.id } }, target: s.id })), { target: cd.initialStage }],
          },
          ...stageStates,
        },
        on: {
          PAUSE: pause("running"),
          CANCEL: cancel("running"),
          FAIL: { target: "#run.failed", actions: ["tick", "failWith", statusChanged("running", "failed")] },
          BLOCKED: { target: "#run.blocked", actions: ["tick", "failWith", statusChanged("running", "blocked")] },
          GATE: { target: "#run.waiting", actions: ["tick", "openGate", statusChanged("running", "waiting")] },
          // Every step done, and the definition says to wait for more (`whenDone: wait`): no gate.
          IDLE: { target: "#run.waiting", actions: ["tick", statusChanged("running", "waiting")] },
          COMPLETE: { target: "#run.completed", actions: ["tick", "setResult", statusChanged("running", "completed")] },
          WALL_CLOCK: wallClock("running"),
          RUN_STEP: { actions: ["tick"] },
        },
      },
      paused: {
        on: {
          COMPLETE: { target: "#run.completed", actions: ["tick", "setResult", statusChanged("paused", "completed")] },
          RESUME: { target: "#run.running", actions: ["tick", statusChanged("paused", "running")] },
          START: startFrom("paused"),
          RUN_STEP: { target: "#run.running", actions: ["tick", statusChanged("paused", "running")] },
          CANCEL: cancel("paused"),
          WALL_CLOCK: wallClock("paused"),
        },
      },
      blocked: {
        on: {
          COMPLETE: { target: "#run.completed", actions: ["tick", "clearError", "setResult", statusChanged("blocked", "completed")] },
          RUN_STEP: { target: "#run.running", actions: ["tick", "clearError", statusChanged("blocked", "running")] },
          // Internal: what blocked the run was resolved (an approval, a skip). Seed 004's `resume` is for paused runs only.
          UNBLOCK: { target: "#run.running", actions: ["tick", "clearError", statusChanged("blocked", "running")] },
          PAUSE: pause("blocked"),
          FAIL: { target: "#run.failed", actions: ["tick", "failWith", statusChanged("blocked", "failed")] },
          CANCEL: cancel("blocked"),
          WALL_CLOCK: wallClock("blocked"),
        },
      },
      waiting: {
        on: {
          COMPLETE: { target: "#run.completed", actions: ["tick", "closeGate", "setResult", statusChanged("waiting", "completed")] },
          EXTEND: { target: "#run.running", actions: ["tick", "closeGate", statusChanged("waiting", "running")] },
          // Waiting for more work (no budget gate): a step added or queued again, or one run by hand.
          WAKE: { guard: "noGate", target: "#run.running", actions: ["tick", statusChanged("waiting", "running")] },
          RUN_STEP: { guard: "noGate", target: "#run.running", actions: ["tick", statusChanged("waiting", "running")] },
          ABORT: {
            target: "#run.failed",
            actions: [
              "tick",
              assign({ error: ({ context }: Args) => `budget exhausted: ${context.gate?.budget ?? "budget"}`, gate: undefined }),
              statusChanged("waiting", "failed"),
            ],
          },
          PAUSE: pause("waiting"),
          CANCEL: cancel("waiting"),
          WALL_CLOCK: wallClock("waiting"),
        },
      },
      completed: { type: "final", entry: finished("completed") },
      failed: { type: "final", entry: finished("failed") },
      cancelled: { type: "final", entry: finished("cancelled") },
    },
  };

  return setup({
    types: { context: {} as RunContext, events: {} as RunEvent, input: {} as RunInput },
    actions: {
      emit: (_, _p: EmitParams | null) => undefined,
      schedule: () => undefined,
      startPlanning: () => undefined,
      armWallClock: () => undefined,
      disarmWallClock: () => undefined,
      settleSteps: () => undefined,
      enterStage: assign((_, p: { stage: string }) => ({ stage: p.stage })),
      noteEnd: assign((_, p: RunEnd) => ({ end: p })),
      tick: assign(({ event }) => ({ now: event.at, rand: event.rand })),
      markStarted: assign(({ context, event }) => ({ startedAt: context.startedAt ?? event.at })),
      markFinished: assign(({ context }) => ({ finishedAt: context.now })),
      failWith: assign(({ event }) => ({ error: "error" in event && typeof event.error === "string" ? event.error : "failed" })),
      clearError: assign({ error: undefined }),
      openGate: assign(({ event }) => (event.type === "GATE" ? { gate: event.gate } : {})),
      closeGate: assign({ gate: undefined }),
      setResult: assign(({ event }) =>
        (event.type === "COMPLETE" || event.type === "STAGE_DONE") && event.result !== undefined ? { result: event.result } : {},
      ),
    },
    guards: {
      inStage: ({ context }, p: { stage: string }) => context.stage === p.stage,
      noGate: ({ context }) => context.gate === undefined,
      // Stage events carry the scope their guards see (facts, steps, input), built by the kernel.
      cond: ({ event }, p: { cond: Condition }) => evaluate(p.cond, "scope" in event ? event.scope : {}),
    },
  }).createMachine(config as never) as unknown as AnyStateMachine;
}

/** The status a run machine's state value stands for. */
export function runStatusOf(value: unknown): RunStatus {
  if (typeof value === "string") return value === "started_" ? "running" : (value as RunStatus);
  if (value && typeof value === "object" && "running" in value) return "running";
  return "pending";
}

/** The stage a state value names, if it is inside `running`. */
export function stageOfValue(value: unknown): string | undefined {
  if (value && typeof value === "object" && "running" in value) {
    const s = (value as { running: unknown }).running;
    return typeof s === "string" && s !== "route" ? s : undefined;
  }
  return undefined;
}
