import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, http, Stack, waitFor } from "@orch/testing";

/**
 * Schedules over HTTP on a real stack: an every-second schedule creating job runs, labelled with the
 * schedule and the due time; pause, resume, trigger, delete; a bad cron refused; and the scheduler,
 * then the core, killed across due times: afterwards every due time since the resume has exactly one
 * run (catch-up `all`, overlap `queue`, so none is skipped on purpose). Then seed 001's periodic runs
 * (`ORCH_SCHEDULER_ENABLED`) as a schedule: on, off (cancelled), on again (the next of its chain).
 */

let stack: Stack;
let api: string;

beforeAll(async () => {
  stack = await Stack.start({ serviceEnv: { gateway: { ORCH_RATE_LIMIT_ENABLED: "false" } } });
  api = `${stack.baseUrl}/api/v1`;
});

afterAll(async () => {
  await stack?.stop();
});

const ID = "every-second";
const SECOND = 1_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ok = (r: { status: number; text: string; json: () => any }, status = 200) => {
  expect(r.status, r.text).toBe(status);
  return r.json();
};
const schedule = async () => ok(await http("GET", `${api}/schedules/${ID}`));

/** The runs the schedule created at due times (not by hand), by due time (ms), from the run index. */
async function dueRuns(): Promise<{ id: string; at: number }[]> {
  const page = ok(await http("GET", `${api}/runs?label=schedule:${ID}&limit=500`));
  return page.items
    .filter((r: any) => !r.id.startsWith(`${ID}-now-`))
    .map((r: any) => ({ id: r.id as string, at: Date.parse(r.labels.scheduled_at) }))
    .sort((a: { at: number }, b: { at: number }) => a.at - b.at);
}

describe("schedules (/api/v1/schedules)", () => {
  it("refuses a bad cron, saying which field and why", async () => {
    const r = await http("POST", `${api}/schedules`, { json: { cron: "61 * * * *", creates: { definition: "job", input: { goal: "x" } } } });
    expect(r.status, r.text).toBe(400);
    expect(r.json().error).toMatchObject({ code: "BAD_REQUEST", message: expect.stringMatching(/cron/) });
    const tz = await http("POST", `${api}/schedules`, { json: { cron: "0 3 * * *", timezone: "Mars/Olympus", creates: { definition: "job" } } });
    expect(tz.status, tz.text).toBe(400);
    expect(tz.json().error.message).toMatch(/IANA/);
    const none = await http("POST", `${api}/schedules`, { json: { everyMs: 1_000, creates: { definition: "no.such.definition" } } });
    expect(none.status, none.text).toBe(400);
  });

  it("fires every second, pauses, resumes, triggers; across scheduler and core kills each due time has one run; delete stops it", async () => {
    const created = await http("POST", `${api}/schedules`, {
      json: {
        id: ID,
        title: "Every second",
        everyMs: SECOND,
        overlap: "queue",
        queueMax: 1_000,
        catchUp: "all",
        catchUpMax: 1_000,
        creates: { definition: "job", input: { goal: "tick ${scheduledAt}" }, labels: { kind: "tick" } },
      },
    });
    expect([201, 202], created.text).toContain(created.status);
    expect(created.headers.location).toBe(`/api/v1/schedules/${ID}`);
    const s0 = await waitFor(async () => (await schedule()).schedule ?? undefined, { what: "the schedule created" });
    expect(s0.spec).toMatchObject({ everyMs: SECOND, overlap: "queue", catchUp: "all", timezone: "UTC" });
    expect(ok(await http("GET", `${api}/schedules`)).items.map((x: any) => x.id)).toContain(ID);
    // Again with the same id: what exists.
    expect(ok(await http("POST", `${api}/schedules`, { json: { id: ID, everyMs: SECOND, creates: { definition: "job" } } })).id).toBe(ID);

    // Runs appear, labelled with the schedule and their due time.
    await waitFor(async () => ((await dueRuns()).length >= 2 ? true : undefined), { timeoutMs: 20_000, what: "two scheduled runs" });
    const first = (await dueRuns())[0]!;
    expect(first.id).toBe(`${ID}-${first.at}`);
    expect(first.at % SECOND).toBe(0);
    const run = ok(await http("GET", `${api}/runs/${first.id}`));
    expect(run.labels).toMatchObject({ schedule: ID, kind: "tick", scheduled_at: new Date(first.at).toISOString() });
    expect(run.input).toMatchObject({ goal: `tick ${new Date(first.at).toISOString()}` });

    // Paused, nothing fires; resumed, it fires again (from now).
    expect(ok(await http("POST", `${api}/schedules/${ID}/pause`)).status).toBe("paused");
    await sleep(SECOND); // a firing already sent when it paused lands in the index
    const paused = (await dueRuns()).length;
    await sleep(2.5 * SECOND);
    expect((await dueRuns()).length).toBe(paused);
    const resumed = ok(await http("POST", `${api}/schedules/${ID}/resume`));
    expect(resumed.status).not.toBe("paused");
    const since = Date.parse(resumed.schedule.nextAt);
    await waitFor(async () => ((await dueRuns()).length > paused ? true : undefined), { timeoutMs: 20_000, what: "a run after the resume" });

    // Trigger now: one run of its own.
    ok(await http("POST", `${api}/schedules/${ID}/trigger`));
    await waitFor(
      async () => {
        const page = ok(await http("GET", `${api}/runs?label=schedule:${ID}&limit=500`));
        return page.items.some((r: any) => r.id.startsWith(`${ID}-now-`)) ? true : undefined;
      },
      { what: "the triggered run" },
    );

    // The scheduler, then the core, killed across due times.
    for (const service of ["scheduler", "orchestrator"] as const) {
      await stack.kill(service);
      await sleep(2.5 * SECOND);
      await stack.restart(service);
      const back = Date.now();
      await waitFor(async () => ((await dueRuns()).some((r) => r.at > back + SECOND) ? true : undefined), {
        timeoutMs: 30_000,
        what: `runs after the ${service} restart`,
      });
    }

    // Delete: cancelled, nothing fires again.
    const deleted = ok(await http("DELETE", `${api}/schedules/${ID}`));
    expect(deleted.status).toBe("cancelled");
    const last = (await schedule()).schedule;
    expect(last.nextAt).toBeUndefined();
    const lastAt = Date.parse(last.lastAt);
    // Every due time from the resume to the last one considered: exactly one run (created, or queued behind one).
    const want: number[] = [];
    for (let t = since; t <= lastAt; t += SECOND) want.push(t);
    expect(want.length, "due times across both kills").toBeGreaterThanOrEqual(6);
    const queued = new Set<number>(last.queued.map((q: string) => Date.parse(q)));
    const got = await waitFor(
      async () => {
        const runs = (await dueRuns()).filter((r) => r.at >= since);
        return runs.length + queued.size >= want.length ? runs : undefined;
      },
      { timeoutMs: 20_000, what: "every due run in the index" },
    );
    const times = [...got.map((r) => r.at), ...queued].sort((a, b) => a - b);
    expect(times).toEqual(want);
    for (const r of got.slice(0, 3)) {
      const events: any[] = ok(await http("GET", `${api}/runs/${r.id}/history`)).items;
      expect(events.filter((e) => e.type === "run.created")).toHaveLength(1);
    }
    const after = (await dueRuns()).length;
    await sleep(2 * SECOND);
    expect((await dueRuns()).length).toBe(after);
    // An ended schedule refuses its actions.
    expect((await http("POST", `${api}/schedules/${ID}/trigger`)).status).toBe(409);
  });

  it("keeps ORCH_SCHEDULER_ENABLED's schedule: on, it is listed; off, cancelled; on again, the next of its chain", async () => {
    await stack.kill("orchestrator");
    const core = async (on: boolean) =>
      stack.spawn("orchestrator", {
        ORCH_INSTANCE_ID: `core-${on ? "on" : "off"}-${Date.now()}`,
        ORCH_GRPC_PORT: String(await freePort()),
        ORCH_SCHEDULER_ENABLED: String(on),
        ORCH_SCHEDULE_INTERVAL_MS: "3600000",
      });
    const statusOf = async (id: string) => {
      const r = await http("GET", `${api}/schedules/${id}`);
      return r.status === 200 ? (r.json().status as string) : undefined;
    };
    let p = await core(true);
    await waitFor(async () => ((await statusOf("tasks-periodic")) === "waiting" ? true : undefined), { timeoutMs: 20_000, what: "tasks-periodic" });
    const listed = ok(await http("GET", `${api}/schedules`)).items;
    expect(listed.find((x: any) => x.id === "tasks-periodic").schedule.spec).toMatchObject({ everyMs: 3_600_000, overlap: "allow" });
    await p.stop();
    p = await core(false);
    await waitFor(async () => ((await statusOf("tasks-periodic")) === "cancelled" ? true : undefined), { timeoutMs: 20_000, what: "tasks-periodic off" });
    await p.stop();
    p = await core(true);
    const next = await waitFor(
      async () => {
        const items: any[] = ok(await http("GET", `${api}/schedules`)).items;
        return items.find((x) => x.id.startsWith("tasks-periodic-") && x.status === "waiting");
      },
      { timeoutMs: 20_000, what: "the next schedule of the chain" },
    );
    expect(next.id).toMatch(/^tasks-periodic-\d+$/);
    expect(await statusOf("tasks-periodic")).toBe("cancelled");
    await p.stop();
    await stack.restart("orchestrator");
  });
});
