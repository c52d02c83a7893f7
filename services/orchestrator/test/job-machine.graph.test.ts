import { describe, expect, it } from "vitest";
import { getShortestPaths } from "@xstate/graph";
import { transition } from "xstate";
import { TaskPacket } from "@orch/contracts";
import { attemptIdOf, jobMachine, retryTimerIdOf, wallTimerIdOf, type JobContext, type JobEvent } from "../src/domain/job-machine.js";

/**
 * Generated paths over the job machine: every resting state the seed documents is reachable,
 * and every terminal state is final (no event leaves it).
 */

const T0 = 1_000;

/** The events that can arrive in a state, with the payloads the core would send. */
function eventsFor(s: { context: JobContext }): JobEvent[] {
  const c = s.context;
  const at = T0 + 1 + c.stepsRun + c.attempt;
  return [
    { type: "START", at: T0, rand: 0 },
    { type: "CANCEL", at, rand: 0 },
    { type: "STEP_RESULT", at, rand: 0, attemptId: attemptIdOf(c), ok: true },
    { type: "STEP_RESULT", at, rand: 0, attemptId: attemptIdOf(c), ok: false, error: { code: "X", message: "x", retryable: true } },
    { type: "STEP_RESULT", at, rand: 0, attemptId: attemptIdOf(c), ok: false, error: { code: "X", message: "x", retryable: false } },
    // A result late enough that the loop guard's wall-clock check fails the job.
    { type: "STEP_RESULT", at: T0 + 10_000, rand: 0, attemptId: attemptIdOf(c), ok: true },
    { type: "RETRY_TIMER", at, rand: 0, timerId: retryTimerIdOf(c) },
    { type: "WALL_CLOCK", at, rand: 0, timerId: wallTimerIdOf(c) },
  ];
}

const serialize = (s: { value: unknown; context: JobContext }) =>
  JSON.stringify([s.value, s.context.index, s.context.attempt, s.context.stepsRun, s.context.error ?? null]);

function reachable(steps: number, maxSteps: number): Set<string> {
  const paths = getShortestPaths(jobMachine, {
    input: {
      jobId: "j",
      projectId: "p",
      mode: "mock",
      createdAt: T0,
      packet: TaskPacket.parse({ goal: "g", steps: Array.from({ length: steps }, () => ({ type: "ci" })), limits: { maxSteps, maxWallMs: 5_000 } }),
    },
    events: eventsFor as never,
    serializeState: serialize as never,
  });
  return new Set(paths.map((p) => JSON.stringify(p.state.value) + (p.state.context.error ? `:${p.state.context.error}` : "")));
}

describe("job machine paths (@xstate/graph)", () => {
  const states = new Set([...reachable(2, 5), ...reachable(2, 1)]);

  it("reaches every resting state and every outcome", () => {
    for (const s of [
      '"queued"',
      '{"running":"awaiting"}',
      '{"running":"backoff"}',
      '"succeeded"',
      '"canceled"',
      '"failed":x',
      '"failed":wall_clock_exceeded',
      '"failed":step_budget_exceeded',
    ]) {
      expect(states, s).toContain(s);
    }
  });

  it("makes every terminal state final", () => {
    const paths = getShortestPaths(jobMachine, {
      input: { jobId: "j", projectId: "p", mode: "mock", createdAt: T0, packet: TaskPacket.parse({ goal: "g", limits: { maxSteps: 5 } }) },
      events: eventsFor as never,
      serializeState: serialize as never,
    });
    const terminal = paths.filter((p) => typeof p.state.value === "string" && ["succeeded", "failed", "canceled"].includes(p.state.value));
    expect(terminal.length).toBeGreaterThanOrEqual(3);
    for (const p of terminal) {
      expect(p.state.status).toBe("done");
      for (const e of eventsFor(p.state as never)) {
        const [next, actions] = transition(jobMachine, p.state as never, e);
        expect(next).toBe(p.state);
        expect(actions).toEqual([]);
      }
    }
  });
});
