import { describe, expect, it } from "vitest";
import { getShortestPaths } from "@xstate/graph";
import { FINAL_SESSION_STATUSES as FINAL_SESSION_STATES, SESSION_STATUSES as SESSION_STATES } from "@orch/contracts";
import { advanceSession, createSession, sessionMachine, type PersistedSession, type SessionEvent } from "../src/sessions/lifecycle.js";

/** The worker session lifecycle: every transition of its table, pure, and generated paths over it. */

const T = 60_000;
const start = () => createSession({ sessionId: "s1", timeoutMs: T, at: 1_000 }).snapshot;

function drive(events: SessionEvent[]): PersistedSession {
  let s = start();
  for (const e of events) {
    const r = advanceSession(s, e);
    expect(r.changed, `${e.type} from ${s.value}`).toBe(true);
    s = r.snapshot;
  }
  return s;
}

const ERR = { code: "X", message: "boom", retryable: true };

describe("session lifecycle", () => {
  it("starts created, with a deadline one timeout after creation", () => {
    const s = start();
    expect(s.value).toBe("created");
    expect(s.context).toMatchObject({ sessionId: "s1", createdAt: 1_000, heartbeatAt: 1_000, deadlineAt: 1_000 + T });
  });

  it("runs created → starting → running → waiting_input → running → completed, reporting each change", () => {
    let s = start();
    const seen: string[] = [];
    for (const e of [
      { type: "START", at: 1_100 },
      { type: "STARTED", at: 1_200 },
      { type: "WAIT_INPUT", at: 1_300, reason: "which branch?" },
      { type: "INPUT", at: 1_400 },
      { type: "COMPLETE", at: 1_500 },
    ] as SessionEvent[]) {
      const r = advanceSession(s, e);
      seen.push(...r.changes.map((c) => `${c.from}>${c.to}`));
      s = r.snapshot;
    }
    expect(seen).toEqual(["created>starting", "starting>running", "running>waiting_input", "waiting_input>running", "running>completed"]);
    expect(s.context).toMatchObject({ startedAt: 1_200, finishedAt: 1_500, reason: "which branch?" });
  });

  it("moves the deadline with each heartbeat, never backwards", () => {
    let s = drive([
      { type: "START", at: 2_000 },
      { type: "STARTED", at: 2_100 },
    ]);
    s = advanceSession(s, { type: "HEARTBEAT", at: 10_000 }).snapshot;
    expect(s.context).toMatchObject({ heartbeatAt: 10_000, deadlineAt: 10_000 + T });
    s = advanceSession(s, { type: "HEARTBEAT", at: 5_000 }).snapshot;
    expect(s.context).toMatchObject({ heartbeatAt: 10_000, deadlineAt: 10_000 + T });
    expect(advanceSession(s, { type: "HEARTBEAT", at: 20_000 }).changes).toEqual([]);
  });

  it("times out only past the deadline, with a retryable SESSION_TIMED_OUT", () => {
    const s = drive([
      { type: "START", at: 2_000 },
      { type: "STARTED", at: 2_100 },
    ]);
    const early = advanceSession(s, { type: "TIMEOUT", at: 2_100 + T - 1 });
    expect(early.changed).toBe(false);
    expect(early.status).toBe("running");
    const late = advanceSession(s, { type: "TIMEOUT", at: 2_100 + T });
    expect(late.status).toBe("timed_out");
    expect(late.snapshot.context.error).toMatchObject({ code: "SESSION_TIMED_OUT", retryable: true });
    expect(late.changes).toEqual([
      expect.objectContaining({ from: "running", to: "timed_out", error: expect.objectContaining({ code: "SESSION_TIMED_OUT" }) }),
    ]);
  });

  it("fails, is lost or is cancelled from every live state, keeping who and why", () => {
    for (const live of [
      [],
      [{ type: "START", at: 1 }],
      [
        { type: "START", at: 1 },
        { type: "STARTED", at: 2 },
      ],
      [
        { type: "START", at: 1 },
        { type: "STARTED", at: 2 },
        { type: "WAIT_INPUT", at: 3 },
      ],
    ] as SessionEvent[][]) {
      const s = drive(live);
      const cancelled = advanceSession(s, { type: "CANCEL", at: 9, reason: "not needed", actor: "alice" });
      expect(cancelled.status).toBe("cancelled");
      expect(cancelled.snapshot.context).toMatchObject({ reason: "not needed", actor: "alice", error: { code: "SESSION_CANCELLED", retryable: false } });
      // Also a session that never started: its worktree could not be prepared, or its hub died
      // while it waited for a slot. Nothing stays `created` for ever.
      const failed = advanceSession(s, { type: "FAIL", at: 9, error: ERR });
      expect(failed.status).toBe("failed");
      expect(failed.snapshot.context).toMatchObject({ error: ERR, finishedAt: 9 });
      expect(failed.changes).toEqual([expect.objectContaining({ from: s.value, to: "failed", error: ERR })]);
      const lost = advanceSession(s, { type: "LOST", at: 9, error: { code: "SESSION_LOST", message: "hub died", retryable: true } });
      expect(lost.status).toBe("failed");
      expect(lost.snapshot.context.error?.code).toBe("SESSION_LOST");
    }
  });

  it("times out while still created (waiting for a slot) only past its deadline", () => {
    const s = start();
    expect(advanceSession(s, { type: "TIMEOUT", at: 1_000 + T - 1 }).changed).toBe(false);
    const late = advanceSession(s, { type: "TIMEOUT", at: 1_000 + T });
    expect(late.status).toBe("timed_out");
    expect(late.changes).toEqual([expect.objectContaining({ from: "created", to: "timed_out" })]);
  });

  it("refuses what a state does not accept", () => {
    const created = start();
    for (const e of [
      { type: "STARTED", at: 1 },
      { type: "COMPLETE", at: 1 },
      { type: "INPUT", at: 1 },
      { type: "WAIT_INPUT", at: 1 },
    ] as SessionEvent[]) {
      expect(advanceSession(created, e).changed, e.type).toBe(false);
    }
    const running = drive([
      { type: "START", at: 1 },
      { type: "STARTED", at: 2 },
    ]);
    expect(advanceSession(running, { type: "START", at: 3 }).changed).toBe(false);
    expect(advanceSession(running, { type: "INPUT", at: 3 }).changed).toBe(false);
  });

  it("reaches every state, and no event leaves a final one", () => {
    const events: SessionEvent[] = [
      { type: "START", at: 10 },
      { type: "STARTED", at: 20 },
      { type: "HEARTBEAT", at: 30 },
      { type: "WAIT_INPUT", at: 40, reason: "r" },
      { type: "INPUT", at: 50 },
      { type: "COMPLETE", at: 60 },
      { type: "FAIL", at: 70, error: ERR },
      { type: "LOST", at: 80, error: ERR },
      { type: "TIMEOUT", at: 10_000_000 },
      { type: "CANCEL", at: 90 },
    ];
    const paths = getShortestPaths(sessionMachine, {
      events,
      input: { sessionId: "g", timeoutMs: 1_000, at: 0 },
      serializeState: (s) => JSON.stringify(s.value),
    });
    const reached = new Set(paths.map((p) => p.state.value as string));
    expect([...reached].sort()).toEqual([...SESSION_STATES].sort());
    for (const p of paths) {
      const v = p.state.value as (typeof SESSION_STATES)[number];
      if (!FINAL_SESSION_STATES.has(v)) continue;
      expect(p.state.status, v).toBe("done");
      for (const e of events) expect(advanceSession({ value: v, context: p.state.context }, e).changed, `${e.type} from ${v}`).toBe(false);
    }
  });
});
