import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Stack, http, sse, waitFor, type SseFrame } from "@orch/testing";

/**
 * Nothing that matters lives only in memory: SIGKILL any service in the middle of a job, start it
 * again, and the job finishes, with no step reported done twice and no event lost or repeated.
 */

let stack: Stack;

beforeAll(async () => {
  stack = await Stack.start();
});

afterAll(async () => {
  await stack?.stop();
});

async function submit(packet: unknown): Promise<string> {
  const r = await http("POST", `${stack.baseUrl}/api/orchestrator/jobs`, { json: packet });
  expect(r.status, r.text).toBe(200);
  return r.json().job_id;
}

const job = async (id: string) => (await http("GET", `${stack.baseUrl}/api/orchestrator/jobs/${id}`)).json();

async function finished(id: string, timeoutMs = 30_000) {
  return waitFor(
    async () => {
      const j = await job(id);
      return ["succeeded", "failed", "canceled"].includes(j.status) ? j : undefined;
    },
    { timeoutMs, what: `job ${id} to finish` },
  );
}

/** The whole stream, replayed from the start. */
async function replay(id: string): Promise<SseFrame[]> {
  const s = await sse(`${stack.baseUrl}/api/orchestrator/events?job=${id}`);
  await s.ended;
  return s.frames;
}

/** Every step reported ok exactly once, in order, and no stream id repeated. */
function expectEachStepOnce(frames: SseFrame[], steps: number) {
  const oks = frames.filter((f) => f.event === "step.ok").map((f) => f.json.data.i);
  expect(oks).toEqual(Array.from({ length: steps }, (_, i) => i));
  const ids = frames.filter((f) => f.id !== undefined).map((f) => f.id);
  expect(new Set(ids).size).toBe(ids.length);
}

describe("restarts", () => {
  it("finishes a job when the orchestrator is SIGKILLed mid-job", async () => {
    const steps = 4;
    const id = await submit({
      goal: "survive the core",
      steps: Array.from({ length: steps }, () => ({ type: "ci", payload: { mock: { delayMs: 400 } } })),
      limits: { maxSteps: steps, maxWallMs: 60_000 },
    });
    const live = await sse(`${stack.baseUrl}/api/orchestrator/events?job=${id}`);
    await live.waitFor((f) => f.event === "step.ok");
    await stack.kill("orchestrator");
    // Steps finish while the core is down: their results wait in the command stream.
    await new Promise((r) => setTimeout(r, 900));
    await stack.restart("orchestrator");
    const j = await finished(id);
    expect(j).toMatchObject({ status: "succeeded", stepsRun: steps });
    await live.ended;
    expectEachStepOnce(live.frames, steps);
    expectEachStepOnce(await replay(id), steps);
  });

  it("finishes a job when the agent hub is SIGKILLed mid-step (the step is redelivered)", async () => {
    const id = await submit({
      goal: "survive the hub",
      steps: [{ type: "ci" }, { type: "docs", payload: { mock: { delayMs: 3_000 } } }, { type: "ci" }],
      limits: { maxSteps: 3, maxWallMs: 120_000 },
    });
    const live = await sse(`${stack.baseUrl}/api/orchestrator/events?job=${id}`);
    await live.waitFor((f) => f.event === "step.start" && f.json.data.i === 1);
    await new Promise((r) => setTimeout(r, 200));
    await stack.kill("agent-hub");
    await stack.restart("agent-hub");
    const j = await finished(id, 60_000);
    expect(j).toMatchObject({ status: "succeeded", stepsRun: 3 });
    await live.ended;
    expectEachStepOnce(live.frames, 3);
  });

  it("fires a stored timer after the scheduler is SIGKILLed", async () => {
    const id = await submit({
      goal: "survive the scheduler",
      steps: [{ type: "ci", payload: { mock: { delayMs: 30_000 } } }],
      limits: { maxSteps: 1, maxWallMs: 1_500 },
    });
    const live = await sse(`${stack.baseUrl}/api/orchestrator/events?job=${id}`);
    await live.waitFor((f) => f.event === "step.start");
    await new Promise((r) => setTimeout(r, 300));
    await stack.kill("scheduler");
    // The wall-clock timer falls due while nobody is there to fire it.
    await new Promise((r) => setTimeout(r, 1_800));
    expect((await job(id)).status).toBe("running");
    await stack.restart("scheduler");
    const j = await finished(id, 10_000);
    expect(j).toMatchObject({ status: "failed", error: "wall_clock_exceeded" });
  });

  it("retries with backoff across a scheduler restart", async () => {
    await stack.kill("scheduler");
    const id = await submit({ goal: "backoff", steps: [{ type: "ci", payload: { mock: { failTimes: 2 } } }], limits: { maxSteps: 1, maxWallMs: 60_000 } });
    const live = await sse(`${stack.baseUrl}/api/orchestrator/events?job=${id}`);
    await live.waitFor((f) => f.event === "step.retry");
    await new Promise((r) => setTimeout(r, 500));
    expect(live.frames.filter((f) => f.event === "step.retry")).toHaveLength(1);
    await stack.restart("scheduler");
    await live.ended;
    expect(live.frames.map((f) => f.event)).toEqual(["ready", "start", "step.start", "step.retry", "step.retry", "step.ok", "end"]);
  });

  it("resumes an SSE stream on a restarted gateway from Last-Event-ID, with no gap and no duplicate", async () => {
    const steps = 3;
    const id = await submit({
      goal: "survive the gateway",
      steps: Array.from({ length: steps }, () => ({ type: "ci", payload: { mock: { delayMs: 500 } } })),
      limits: { maxSteps: steps, maxWallMs: 60_000 },
    });
    const first = await sse(`${stack.baseUrl}/api/orchestrator/events?job=${id}`);
    await first.waitFor((f) => f.event === "step.ok");
    const lastId = first.frames.filter((f) => f.id).at(-1)!.id!;
    await stack.kill("gateway");
    await first.ended;
    await stack.restart("gateway");
    const second = await sse(`${stack.baseUrl}/api/orchestrator/events?job=${id}`, { "last-event-id": lastId });
    await second.ended;
    const resumed = second.frames.filter((f) => f.id);
    expect(Number(resumed[0]!.id)).toBeGreaterThan(Number(lastId));
    const seen = [...first.frames.filter((f) => f.id), ...resumed];
    expect(seen.map((f) => f.event)).toEqual(["start", ...Array.from({ length: steps }, () => ["step.start", "step.ok"]).flat(), "end"]);
    const all = (await replay(id)).filter((f) => f.id);
    expect(seen.map((f) => f.id)).toEqual(all.map((f) => f.id));
  });

  it("keeps running jobs while the event-bus is down, and re-provisions nothing on restart", async () => {
    await stack.kill("event-bus");
    const id = await submit({ goal: "no event-bus", steps: [{ type: "ci" }], limits: { maxSteps: 1 } });
    expect((await finished(id)).status).toBe("succeeded");
    const eb = stack.service("event-bus");
    const from = eb.lines.length;
    await stack.restart("event-bus");
    const line = await eb.waitForLog((l) => l.msg === "stream topology provisioned", { from });
    expect(line.created).toEqual([]);
  });

  it("keeps every job across a restart of all five services", async () => {
    const id = await submit({
      goal: "everything restarts",
      steps: [{ type: "ci", payload: { mock: { delayMs: 1_500 } } }, { type: "docs" }],
      limits: { maxSteps: 2, maxWallMs: 60_000 },
    });
    await waitFor(async () => (await job(id)).status === "running");
    for (const s of ["gateway", "orchestrator", "agent-hub", "scheduler", "event-bus"] as const) await stack.kill(s);
    for (const s of ["event-bus", "orchestrator", "agent-hub", "scheduler", "gateway"] as const) await stack.restart(s);
    const j = await finished(id, 60_000);
    expect(j).toMatchObject({ status: "succeeded", stepsRun: 2 });
    expectEachStepOnce(await replay(id), 2);
  });
});
