import { describe, expect, it } from "vitest";
import { TRANSITION_VERSION, timerHeadOf, timersHeader, type TransitionHead } from "../src/index.js";

const head = (timers?: TransitionHead["timers"]): TransitionHead => ({
  v: TRANSITION_VERSION,
  runId: "r1",
  projectId: "p",
  n: 3,
  seq: 7,
  events: 2,
  at: 1_000,
  cause: { type: "step.result", commandId: "c" },
  ...(timers ? { timers } : {}),
});

describe("the Orch-Timers header", () => {
  it("carries a transition's timer operations and reads back as they were", () => {
    const timers: TransitionHead["timers"] = [
      { op: "set", timerId: "r1.s0.retry.2", dueAt: 2_000, kind: "retry", stepId: "s0" },
      { op: "cancel", timerId: "r1.wall" },
    ];
    const h = timersHeader(head(timers));
    expect(h).not.toMatch(/[\r\n]/);
    expect(timerHeadOf(h)).toEqual({ v: TRANSITION_VERSION, runId: "r1", projectId: "p", seq: 7, at: 1_000, timers });
  });

  it("says `-` for a transition that touches no timer, and reads that as none", () => {
    expect(timersHeader(head())).toBe("-");
    expect(timersHeader(head([]))).toBe("-");
    expect(timerHeadOf("-")).toBeNull();
  });

  it("throws on a header that is not one", () => {
    expect(() => timerHeadOf("{")).toThrow();
    expect(() => timerHeadOf(JSON.stringify({ runId: "r1", timers: [{ op: "set" }] }))).toThrow();
  });
});
