import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { credentials, Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { loadOrchestratorProto, structToJson, type OrchestratorServiceClient, type SchedulerServiceClient } from "@orch/proto";
import { Stack, waitFor } from "@orch/testing";

/**
 * gRPC `SchedulerService` on a real stack, from an external client (grpc-js + the .proto): a cron
 * schedule every second creates runs labelled with it and their due time; list, get, pause (nothing
 * fires), resume, trigger, backfill a past range (one run per due time), update, delete; bad
 * requests are INVALID_ARGUMENT with the reason, unknown schedules NOT_FOUND.
 */

let stack: Stack;
let schedules: SchedulerServiceClient;
let runs: OrchestratorServiceClient;

beforeAll(async () => {
  stack = await Stack.start();
  const proto = loadOrchestratorProto();
  const at = `127.0.0.1:${stack.grpcPort}`;
  schedules = new proto.orchestrator.v1.SchedulerService(at, credentials.createInsecure());
  runs = new proto.orchestrator.v1.OrchestratorService(at, credentials.createInsecure());
});

afterAll(async () => {
  schedules?.close();
  runs?.close();
  await stack?.stop();
});

type Unary = (req: unknown, md: Metadata, cb: (err: ServiceError | null, res?: any) => void) => unknown;
function call(client: object, method: string, req: unknown): Promise<any> {
  const fn = (client as Record<string, Unary>)[method]!;
  return new Promise((resolve, reject) => fn.call(client, req, new Metadata(), (err, res) => (err ? reject(err) : resolve(res))));
}
const sched = (method: string, req: unknown) => call(schedules, method, req);

const ID = "grpc-every-second";
const SECOND = 1_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const jobSpec = (extra: Record<string, unknown> = {}) => ({
  creates: {
    definition: { id: "job" },
    title: "tick",
    labels: { kind: "grpc-tick" },
    input: { fields: { goal: { stringValue: "tick ${scheduledAt}" } } },
  },
  ...extra,
});

/** The schedule's runs (from the run index), by id. */
async function runsOf(id: string): Promise<{ run_id: string; labels: Record<string, string> }[]> {
  const page = await call(runs, "ListRuns", { labels: { schedule: id }, limit: 500 });
  return page.runs;
}
const dueRuns = async (id: string) => (await runsOf(id)).filter((r) => !r.run_id.startsWith(`${id}-now-`));

describe("gRPC SchedulerService", () => {
  it("refuses bad requests with the reason, and unknown schedules", async () => {
    const bad = (spec: unknown) => sched("CreateSchedule", { spec });
    await expect(bad(jobSpec({ cron: "61 * * * *" }))).rejects.toMatchObject({ code: status.INVALID_ARGUMENT, details: expect.stringMatching(/cron/) });
    await expect(bad(jobSpec({ cron: "0 3 * * *", timezone: "Mars/Olympus" }))).rejects.toMatchObject({
      code: status.INVALID_ARGUMENT,
      details: expect.stringMatching(/IANA/),
    });
    await expect(bad(jobSpec({ cron: "0 3 * * *", overlap: "sometimes" }))).rejects.toMatchObject({
      code: status.INVALID_ARGUMENT,
      details: expect.stringMatching(/^overlap: /),
    });
    await expect(bad(jobSpec({ every_ms: 1_000, cron: "* * * * *" }))).rejects.toMatchObject({
      code: status.INVALID_ARGUMENT,
      details: expect.stringMatching(/exactly one/),
    });
    await expect(bad({ every_ms: 1_000, creates: { definition: { id: "no.such.definition" } } })).rejects.toMatchObject({
      code: status.INVALID_ARGUMENT,
      details: expect.stringMatching(/^creates\.definition: .*no\.such\.definition/),
    });
    await expect(sched("CreateSchedule", {})).rejects.toMatchObject({ code: status.INVALID_ARGUMENT, details: "spec is required" });

    for (const m of ["GetSchedule", "PauseSchedule", "ResumeSchedule", "TriggerSchedule", "DeleteSchedule"])
      await expect(sched(m, { id: "no-such-schedule" }), m).rejects.toMatchObject({ code: status.NOT_FOUND });
    await expect(sched("BackfillSchedule", { id: "no-such-schedule", from: "2026-01-01T00:00:00Z", to: "2026-01-01T00:01:00Z" })).rejects.toMatchObject({
      code: status.NOT_FOUND,
    });
    await expect(sched("GetSchedule", { id: "a.b" })).rejects.toMatchObject({ code: status.INVALID_ARGUMENT });
    // A run that is not a schedule is not one here either.
    const run = await call(runs, "CreateRun", { definition: { id: "job" }, input: { fields: { goal: { stringValue: "not a schedule" } } } });
    await expect(sched("GetSchedule", { id: run.run_id })).rejects.toMatchObject({ code: status.NOT_FOUND, details: expect.stringMatching(/not a schedule/) });
    await expect(sched("CreateSchedule", { id: run.run_id, spec: jobSpec({ every_ms: 60_000 }) })).rejects.toMatchObject({ code: status.ABORTED });
  });

  it("creates a cron schedule every second; lists, gets, pauses, resumes, triggers, backfills, updates and deletes it", async () => {
    const created = await sched("CreateSchedule", {
      id: ID,
      title: "Every second",
      spec: jobSpec({ cron: "* * * * * *", timezone: "Europe/Paris", overlap: "allow" }),
      actor: "grpc-test",
    });
    expect(created).toMatchObject({ id: ID, project_id: "_default", title: "Every second", created: true });
    const s0 = await waitFor(async () => {
      const s = await sched("GetSchedule", { id: ID });
      return s.schedule ? s : undefined;
    });
    expect(structToJson(s0.schedule.spec)).toMatchObject({
      cron: "* * * * * *",
      timezone: "Europe/Paris",
      overlap: "allow",
      creates: { definition: { id: "job" }, labels: { kind: "grpc-tick" } },
    });
    expect(s0.status).toBe("waiting");
    // The same id again: what exists.
    expect(await sched("CreateSchedule", { id: ID, spec: jobSpec({ every_ms: 60_000 }) })).toMatchObject({ id: ID, created: false });
    const list = await sched("ListSchedules", {});
    expect(list.schedules.map((s: any) => s.id)).toContain(ID);
    expect((await sched("ListSchedules", { project_id: "elsewhere" })).schedules).toEqual([]);

    // Runs at each second, labelled with the schedule and their due time.
    const fired = await waitFor(async () => ((await dueRuns(ID)).length >= 2 ? dueRuns(ID) : undefined), { timeoutMs: 20_000, what: "two cron runs" });
    const first = fired[0]!;
    const at = Date.parse(first.labels.scheduled_at!);
    expect(at % SECOND).toBe(0);
    expect(first.run_id).toBe(`${ID}-${at}`);
    expect(first.labels).toMatchObject({ schedule: ID, kind: "grpc-tick" });
    const run = await call(runs, "GetRun", { run_id: first.run_id });
    expect(run.definition_id).toBe("job");

    // Paused: nothing fires.
    const paused = await sched("PauseSchedule", { id: ID, reason: "quiet" });
    expect(paused.status).toBe("paused");
    expect(paused.schedule.next_at).toBeUndefined();
    await sleep(SECOND); // a firing already sent when it paused lands in the index
    const before = (await dueRuns(ID)).length;
    await sleep(2.5 * SECOND);
    expect((await dueRuns(ID)).length).toBe(before);
    await expect(sched("PauseSchedule", { id: ID })).resolves.toMatchObject({ status: "paused" });

    // Backfill a past range: one run per due time in it (inclusive), each once, even asked twice.
    const from = Math.floor((Date.now() - 120_000) / SECOND) * SECOND;
    const to = from + 3 * SECOND;
    const range = { id: ID, from: new Date(from).toISOString(), to: new Date(to).toISOString() };
    expect((await sched("BackfillSchedule", range)).status).toBe("paused");
    await sched("BackfillSchedule", range);
    const want = [0, 1, 2, 3].map((i) => `${ID}-${from + i * SECOND}`);
    const backfilled = await waitFor(
      async () => {
        const ids = (await dueRuns(ID)).map((r) => r.run_id).filter((id) => Number(id.slice(ID.length + 1)) <= to);
        return want.every((w) => ids.includes(w)) ? ids : undefined;
      },
      { timeoutMs: 20_000, what: "the backfilled runs" },
    );
    expect(backfilled.filter((id) => Number(id.slice(ID.length + 1)) >= from).sort()).toEqual(want);
    const hist = await call(runs, "GetHistory", { run_id: want[0] });
    expect(hist.records.filter((r: any) => r.type === "run.created")).toHaveLength(1);
    await expect(sched("BackfillSchedule", { id: ID, from: "yesterday", to: range.to })).rejects.toMatchObject({
      code: status.INVALID_ARGUMENT,
      details: expect.stringMatching(/^from: /),
    });
    await expect(sched("BackfillSchedule", { ...range, from: range.to, to: range.from })).rejects.toMatchObject({
      code: status.INVALID_ARGUMENT,
      details: expect.stringMatching(/from is after to/),
    });

    // Resumed: it fires again.
    const resumed = await sched("ResumeSchedule", { id: ID });
    expect(resumed.status).toBe("waiting");
    expect(Date.parse(resumed.schedule.next_at)).toBeGreaterThan(Date.now() - SECOND);
    const count = (await dueRuns(ID)).length;
    await waitFor(async () => ((await dueRuns(ID)).length > count ? true : undefined), { timeoutMs: 20_000, what: "a run after the resume" });

    // Trigger now: a run of its own, recording which schedule and which time made it.
    const triggeredAt = Date.now();
    await sched("TriggerSchedule", { id: ID });
    const now = await waitFor(async () => (await runsOf(ID)).find((r) => r.run_id.startsWith(`${ID}-now-`)), { what: "the triggered run" });
    expect(now.labels.schedule).toBe(ID);
    expect(Date.parse(now.labels.scheduled_at!)).toBeGreaterThanOrEqual(triggeredAt - SECOND);
    expect(now.run_id).toBe(`${ID}-now-${Date.parse(now.labels.scheduled_at!)}`);

    // Update: hourly from now on; a bad cron is refused and changes nothing.
    await expect(sched("UpdateSchedule", { id: ID, spec: jobSpec({ cron: "* * * *" }) })).rejects.toMatchObject({
      code: status.INVALID_ARGUMENT,
      details: expect.stringMatching(/cron/),
    });
    await expect(
      sched("UpdateSchedule", { id: ID, spec: { ...jobSpec({ every_ms: 3_600_000 }), creates: { definition: { id: "job" }, project_id: "elsewhere" } } }),
    ).rejects.toMatchObject({
      code: status.INVALID_ARGUMENT,
      details: expect.stringMatching(/project/),
    });
    await expect(sched("UpdateSchedule", { id: "no-such-schedule", spec: jobSpec({ every_ms: 3_600_000 }) })).rejects.toMatchObject({ code: status.NOT_FOUND });
    const updated = await sched("UpdateSchedule", { id: ID, spec: jobSpec({ every_ms: 3_600_000, catch_up: "none", jitter_ms: 0 }) });
    expect(structToJson(updated.schedule.spec)).toMatchObject({ everyMs: 3_600_000, catchUp: "none", timezone: "UTC" });
    expect(structToJson(updated.schedule.spec)!.cron).toBeUndefined();
    expect(Date.parse(updated.schedule.next_at) % 3_600_000).toBe(0);

    // Delete: cancelled; an ended schedule refuses its actions.
    const deleted = await sched("DeleteSchedule", { id: ID, reason: "done" });
    expect(deleted.status).toBe("cancelled");
    expect(deleted.schedule.next_at).toBeUndefined();
    await expect(sched("TriggerSchedule", { id: ID })).rejects.toMatchObject({ code: status.FAILED_PRECONDITION });
    await expect(sched("ResumeSchedule", { id: ID })).rejects.toMatchObject({ code: status.FAILED_PRECONDITION });
    // The HTTP API sees the same schedule.
    const res = await fetch(`${stack.baseUrl}/api/v1/schedules/${ID}`);
    expect(await res.json()).toMatchObject({ id: ID, status: "cancelled", schedule: { spec: { everyMs: 3_600_000 } } });
  });
});
