import { describe, expect, it } from "vitest";
import { Command, TransitionReader, encodeTransition, taskStep, type TaskRole } from "@orch/contracts";
import { builtin } from "@orch/engine";
import { decide, storedState, type RunAsStored } from "../../orchestrator/src/core/decide.js";
import { TasksProjection } from "../src/tasks.js";

/**
 * Seed 001's queue as the event-bus projects it, fed real transitions (the core's pure decision,
 * encoded and read back as the event-bus reads them), at stream sequences a test chooses: the queue
 * is in the order tasks were queued (sequences), a repeat id's latest place is the task, a run's
 * status is derived from its tasks, and neither a transition seen twice nor runs replayed one after
 * the other (as at start) changes what it says.
 */

const taskQueue = builtin("task.queue");

interface Written {
  seq: number;
  head: ReturnType<TransitionReader["head"]>;
  reader: TransitionReader;
}

/** A little core: runs of tasks, each command decided and written at the next stream sequence. */
class Core {
  readonly runs = new Map<string, RunAsStored>();
  readonly log: Written[] = [];
  seq = 100;
  now = 1_000;
  n = 0;
  worker = { enabled: false };

  #write(runId: string, cmd: Command): Written {
    const d = decide(this.runs.get(runId) ?? null, cmd, taskQueue, { now: (this.now += 10), rand: 0 }, [], {}, this.worker);
    if (d.kind !== "write") throw new Error(`noop: ${d.reason}`);
    const t = d.transition;
    const reader = new TransitionReader(encodeTransition({ ...t, state: storedState(t.state) }));
    this.runs.set(runId, { head: t.head, run: t.head.run, state: t.state });
    const w = { seq: (this.seq += 3), head: reader.head(), reader };
    this.log.push(w);
    return w;
  }

  create(runId: string, tasks: { id: string; role?: TaskRole }[], type = "manual") {
    return this.#write(
      runId,
      Command.parse({
        type: "run.create",
        commandId: `create:${runId}`,
        runId,
        issuedAt: this.now,
        projectId: "_default",
        definition: { id: "task.queue" },
        input: { type, payload: { p: 1 }, metadata: { m: 1 } },
        steps: tasks.map((t) => taskStep({ taskId: t.id, role: t.role ?? "implementer", description: `do ${t.id}` })),
      }),
    );
  }

  signal(runId: string, signal: Record<string, unknown>) {
    return this.#write(runId, Command.parse({ type: "run.signal", commandId: `c${++this.n}`, runId, issuedAt: this.now, signal }));
  }

  add(runId: string, id: string, role: TaskRole = "implementer", description = `do ${id}`) {
    return this.signal(runId, { name: "add_steps", steps: [taskStep({ taskId: id, role, description })], replace: true });
  }

  result(runId: string, stepId: string, ok: boolean, retryable = false) {
    const s = this.runs.get(runId)!.state.kernel!.steps[stepId]!.context;
    return this.#write(
      runId,
      Command.parse({
        type: "step.result",
        commandId: `r${++this.n}`,
        runId,
        issuedAt: this.now,
        stepId,
        attemptId: `${runId}.${stepId}.${s.attempt}`,
        kind: "execute",
        ok,
        ...(ok ? { output: { done: stepId } } : { error: { code: "MOCK_FAILURE", message: "red", retryable } }),
        notes: [ok ? "fine" : "red"],
        startedAt: this.now,
        finishedAt: this.now,
      }),
    );
  }

  timer(runId: string, timerId: string, stepId: string) {
    return this.#write(runId, Command.parse({ type: "timer.fired", commandId: `t${++this.n}`, runId, issuedAt: this.now, timerId, kind: "retry", stepId }));
  }
}

const feed = (p: TasksProjection, ws: Written[]) => {
  for (const w of ws) {
    p.apply(w.seq, w.head, w.reader);
    p.noteApplied(w.seq);
  }
};

describe("the tasks projection", () => {
  it("queues tasks in the order they were queued, across runs; head, next after, size; a dispatched one leaves the queue", () => {
    const core = new Core();
    const p = new TasksProjection();
    const a = core.create("r1", [{ id: "a" }]);
    core.create("r2", [{ id: "b", role: "reviewer" }]);
    core.add("r1", "c");
    feed(p, core.log);
    expect(p.size()).toBe(3);
    expect(p.list({ status: "queued" }).map((t) => t.id)).toEqual(["a", "b", "c"]);
    expect(p.head()).toMatchObject({ id: "a", runId: "r1", stepId: "a", seq: a.seq, status: "queued", attempts: 0, description: "do a", metadata: {} });
    expect(p.head(a.seq)!.id).toBe("b");
    feed(p, [core.signal("r2", { name: "run_step", stepId: "b" })]);
    expect(p.head()!.id).toBe("a");
    expect(p.head(a.seq)!.id).toBe("c");
    expect(p.size()).toBe(2);
    expect(p.get("b").task).toMatchObject({ status: "running", attempts: 1 });
  });

  it("builds history and result from events and views; a run's status is derived from its tasks", () => {
    const core = new Core();
    const p = new TasksProjection();
    core.create("r1", [{ id: "a" }, { id: "b" }]);
    feed(p, core.log.splice(0));
    expect(p.run("r1").run).toMatchObject({ id: "r1", type: "manual", payload: { p: 1 }, metadata: { m: 1 }, status: "queued", taskIds: ["a", "b"] });
    feed(p, [core.signal("r1", { name: "run_step", stepId: "a" }), core.result("r1", "a", true)]);
    expect(p.run("r1").run!.status).toBe("running");
    feed(p, [core.signal("r1", { name: "run_step", stepId: "b" }), core.result("r1", "b", false)]);
    expect(p.run("r1").run!.status).toBe("failed");
    const b = p.get("b").task!;
    expect(b).toMatchObject({ status: "failed", attempts: 1, notes: ["red"], error: "red", errorCode: "MOCK_FAILURE" });
    expect(b.history.map((h) => h.status)).toEqual(["queued", "running", "failed"]);
    expect(p.get("a").task).toMatchObject({ status: "completed", output: { done: "a" } });
    expect(p.listRuns({ offset: 0, limit: 10 })).toMatchObject({ total: 1, runs: [{ id: "r1", status: "failed" }] });
    expect(p.listRuns({ status: "completed", offset: 0, limit: 10 }).total).toBe(0);
  });

  it("a repeat id: in another run that place is the task (the old one left behind, listed to withdraw); in the same run, reset with its history", () => {
    const core = new Core();
    const p = new TasksProjection();
    core.create("r1", [{ id: "x" }]);
    core.create("r2", [{ id: "y" }]);
    core.add("r2", "x", "tester", "moved");
    feed(p, core.log.splice(0));
    expect(p.get("x")).toMatchObject({ task: { runId: "r2", role: "tester", description: "moved" }, others: [{ runId: "r1", stepId: "x" }] });
    expect(p.run("r1").run!.taskIds).toEqual([]);
    expect(p.run("r2").run!.taskIds).toEqual(["y", "x"]);
    expect(p.list().map((t) => t.id)).toEqual(["y", "x"]);
    expect(p.size()).toBe(2);
    feed(p, [core.signal("r1", { name: "withdraw_step", stepId: "x" })]);
    expect(p.get("x").others).toEqual([]);
    // Run, done, queued again in its run: queued, attempts from 0, history from the new queueing.
    feed(p, [core.signal("r2", { name: "run_step", stepId: "x" }), core.result("r2", "x", true)]);
    expect(p.get("x").task).toMatchObject({ status: "completed", attempts: 1 });
    feed(p, [core.add("r2", "x", "tester", "again")]);
    expect(p.get("x").task).toMatchObject({ status: "queued", attempts: 0, description: "again", history: [{ status: "queued" }] });
    expect(p.head()!.id).toBe("y");
    expect(p.list({ status: "queued" }).map((t) => t.id)).toEqual(["y", "x"]);
    // Metadata is the step's (merged by the core).
    feed(p, [core.signal("r2", { name: "set_step_metadata", stepId: "x", metadata: { k: 1 } })]);
    expect(p.get("x").task!.metadata).toEqual({ k: 1 });
  });

  it("with the worker's retries, a failed attempt shows as failed, then running again", () => {
    const core = new Core();
    core.worker = { enabled: true, maxRetries: 1, backoffMs: 10 } as never;
    const p = new TasksProjection();
    core.create("r1", [{ id: "w" }]);
    core.result("r1", "w", false, true);
    feed(p, core.log.splice(0));
    expect(p.get("w").task!.status).toBe("failed");
    feed(p, [core.timer("r1", "r1.w.1.retry", "w"), core.result("r1", "w", true)]);
    const w = p.get("w").task!;
    expect(w.attempts).toBe(2);
    expect(w.history.map((h) => h.status)).toEqual(["queued", "running", "failed", "running", "completed"]);
  });

  it("changes nothing for a transition seen twice, and says the same when runs are replayed one after the other (as at start)", () => {
    const core = new Core();
    core.create("r1", [{ id: "a" }]);
    core.create("r2", [{ id: "b" }]);
    core.add("r1", "b");
    core.signal("r1", { name: "run_step", stepId: "a" });
    core.add("r2", "c");
    const live = new TasksProjection();
    feed(live, core.log);
    feed(live, core.log.slice(0, 3));
    const replayed = new TasksProjection();
    // r2's transitions first, then r1's: what decides is the sequence, not the order of arrival.
    for (const runId of ["r2", "r1"]) for (const w of core.log.filter((x) => x.head.runId === runId)) replayed.apply(w.seq, w.head, w.reader);
    for (const q of [live, replayed]) {
      expect(q.list().map((t) => [t.id, t.runId, t.status])).toEqual([
        ["a", "r1", "running"],
        ["b", "r1", "queued"],
        ["c", "r2", "queued"],
      ]);
      expect(q.get("b").others).toEqual([{ runId: "r2", stepId: "b" }]);
      expect(q.head()!.id).toBe("b");
    }
  });

  it("answers a query naming a sequence once it has applied it", async () => {
    const p = new TasksProjection();
    p.noteApplied(10);
    expect(await p.caughtUp(10, 1_000)).toBe(true);
    const later = p.caughtUp(20, 2_000);
    p.noteApplied(15);
    p.noteApplied(21);
    expect(await later).toBe(true);
    expect(await p.caughtUp(99, 20)).toBe(false);
  });
});
