import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Stack, http, sse, waitFor, type LogLine, type ServiceProcess } from "@orch/testing";

/**
 * Two schedulers on one stack: one holds the leader lease and fires, the other stands by. The
 * active one is SIGKILLed while a schedule fires every second and one-shot timers (jobs' wall
 * clocks, some already written to the timers bucket, some still held in unacknowledged transitions;
 * retry backoffs) fall due across the takeover. The standby takes over within about a TTL and every
 * due firing happens exactly once: the schedule's runs `<schedule>-<due ms>` are contiguous, with no
 * gap and no repeat, and each job ends once, the way its timer says.
 */

const TTL = 2_000;
const SECOND = 1_000;
const ID = "lease-every-second";

let stack: Stack;
let api: string;
let standby: ServiceProcess;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ok = (r: { status: number; text: string; json: () => any }, status = 200) => {
  expect(r.status, r.text).toBe(status);
  return r.json();
};
const acquired = (l: LogLine) => l.msg === "lease acquired";

beforeAll(async () => {
  stack = await Stack.start({
    serviceEnv: {
      gateway: { ORCH_RATE_LIMIT_ENABLED: "false" },
      scheduler: { ORCH_INSTANCE_ID: "sched-a", ORCH_SCHEDULER_LEASE_TTL_MS: String(TTL) },
    },
  });
  api = `${stack.baseUrl}/api/v1`;
});

afterAll(async () => {
  await stack?.stop();
});

async function submit(packet: unknown): Promise<string> {
  const r = await http("POST", `${stack.baseUrl}/api/orchestrator/jobs`, { json: packet });
  expect(r.status, r.text).toBe(200);
  return r.json().job_id;
}

/** A job's whole event stream, replayed once it has ended. */
async function ended(id: string) {
  const s = await sse(`${stack.baseUrl}/api/orchestrator/events?job=${id}`);
  await Promise.race([s.ended, sleep(60_000)]);
  s.close();
  return s.frames.map((f) => f.event);
}

/** The runs the schedule created at due times, by due time (ms). */
async function dueRuns(): Promise<{ id: string; at: number }[]> {
  const page = ok(await http("GET", `${api}/runs?label=schedule:${ID}&limit=500`));
  return page.items
    .map((r: any) => ({ id: r.id as string, at: Date.parse(r.labels.scheduled_at) }))
    .sort((a: { at: number }, b: { at: number }) => a.at - b.at);
}

describe("schedulers among replicas: one active, a standby that takes over", () => {
  it("fires every due timer exactly once across a SIGKILL of the active scheduler", async () => {
    const a = stack.service("scheduler");
    await a.waitForLog(acquired);
    expect(a.lines.find(acquired)).toMatchObject({ instanceId: "sched-a" });
    standby = await stack.spawn("scheduler", { ORCH_INSTANCE_ID: "sched-b", ORCH_SCHEDULER_LEASE_TTL_MS: String(TTL) });
    await standby.waitForLog((l) => l.msg === "standing by for the leader lease");

    ok(
      await http("POST", `${api}/schedules`, {
        json: {
          id: ID,
          everyMs: SECOND,
          overlap: "queue",
          queueMax: 1_000,
          catchUp: "all",
          catchUpMax: 1_000,
          creates: { definition: "job", input: { goal: "tick ${scheduledAt}" } },
        },
      }),
      201,
    );
    // Wall clocks that will have been written to the timers bucket (armed for more than 5 s) when the active one dies.
    const stored = await Promise.all(
      [20_000, 21_000].map((ms) =>
        submit({ goal: `stored ${ms}`, steps: [{ type: "ci", payload: { mock: { delayMs: 60_000 } } }], limits: { maxSteps: 1, maxWallMs: ms } }),
      ),
    );
    await waitFor(async () => ((await dueRuns()).length >= 3 ? true : undefined), { timeoutMs: 20_000, what: "three scheduled runs" });
    await sleep(6 * SECOND);
    // Standing by all along: it has armed and fired nothing.
    expect(standby.lines.some(acquired)).toBe(false);
    const before = ok(await http("GET", `${api}/timers`));
    expect(before.scheduler).toEqual({ instanceId: "sched-a", epoch: 1 });
    const timers = before.items as { runId: string; kind: string }[];
    expect(timers.filter((t) => t.kind === "wall_clock" && stored.includes(t.runId))).toHaveLength(2);

    // Wall clocks still held in memory (their transitions unacknowledged), and retry backoffs, due across the takeover.
    const held = await Promise.all(
      [3_000, 4_000].map((ms) =>
        submit({ goal: `held ${ms}`, steps: [{ type: "ci", payload: { mock: { delayMs: 60_000 } } }], limits: { maxSteps: 1, maxWallMs: ms } }),
      ),
    );
    const retried = await submit({ goal: "backoff", steps: [{ type: "ci", payload: { mock: { failTimes: 2 } } }], limits: { maxSteps: 1, maxWallMs: 60_000 } });
    const retrying = await sse(`${stack.baseUrl}/api/orchestrator/events?job=${retried}`);
    await retrying.waitFor((f) => f.event === "step.retry");
    retrying.close();
    await sleep(300);

    await stack.kill("scheduler");
    const killedAt = Date.now();
    const takeover = await standby.waitForLog(acquired, { timeoutMs: 5 * TTL });
    const tookMs = Date.parse(String(takeover.time)) - killedAt;
    expect(takeover).toMatchObject({ instanceId: "sched-b", epoch: 2, previous: "sched-a" });
    // Within about a TTL: it saw the last renewal unchanged for a TTL, reading it every quarter TTL.
    expect(tookMs).toBeLessThan(3 * TTL);
    const after = await waitFor(async () => {
      const r = await http("GET", `${api}/timers`);
      return r.status === 200 ? r.json() : undefined;
    });
    expect(after.scheduler).toEqual({ instanceId: "sched-b", epoch: 2 });

    // The schedule goes on from the new active scheduler (the due times missed meanwhile caught up).
    await waitFor(async () => ((await dueRuns()).some((r) => r.at > Date.now() - SECOND && r.at > killedAt + 2 * TTL) ? true : undefined), {
      timeoutMs: 30_000,
      what: "scheduled runs after the takeover",
    });

    // The killed one comes back: it stands by, and the standby it became fires nothing.
    const from = a.lines.length;
    await stack.restart("scheduler");
    await a.waitForLog((l) => l.msg === "standing by for the leader lease", { from });
    await sleep(2 * TTL);
    expect(a.lines.slice(from).some(acquired)).toBe(false);

    // Every one-shot timer fired once: each wall clock ended its job once, each backoff retried once.
    for (const id of [...stored, ...held]) {
      const events = await ended(id);
      expect(
        events.filter((e) => e === "end"),
        `job ${id}: ${events.join(" ")}`,
      ).toHaveLength(1);
      const job = ok(await http("GET", `${stack.baseUrl}/api/orchestrator/jobs/${id}`));
      expect(job).toMatchObject({ status: "failed", error: "wall_clock_exceeded" });
      // Due after the kill: fired by the scheduler that took over.
      expect(Date.parse(job.finished_at)).toBeGreaterThan(killedAt);
    }
    expect(await ended(retried)).toEqual(["ready", "start", "step.start", "step.retry", "step.retry", "step.ok", "end"]);

    // Deleted: every due time from the first to the last has exactly one run (created, or queued behind one).
    const deleted = ok(await http("DELETE", `${api}/schedules/${ID}`));
    expect(deleted.status).toBe("cancelled");
    const last = ok(await http("GET", `${api}/schedules/${ID}`)).schedule;
    const queued: number[] = last.queued.map((q: string) => Date.parse(q));
    const firstAt = (await dueRuns())[0]!.at;
    const lastAt = Date.parse(last.lastAt);
    const want: number[] = [];
    for (let t = firstAt; t <= lastAt; t += SECOND) want.push(t);
    expect(want.length, "due times across the takeover").toBeGreaterThanOrEqual(15);
    const runs = await waitFor(
      async () => {
        const r = await dueRuns();
        return r.length + queued.length >= want.length ? r : undefined;
      },
      { timeoutMs: 20_000, what: "every due run in the index" },
    );
    for (const r of runs) expect(r.id).toBe(`${ID}-${r.at}`);
    expect(new Set(runs.map((r) => r.id)).size).toBe(runs.length);
    expect([...runs.map((r) => r.at), ...queued].sort((x, y) => x - y)).toEqual(want);
  });
});
