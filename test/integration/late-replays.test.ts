import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectBus, readEvents, type Bus } from "@orch/bus";
import { createLogger } from "@orch/logging";
import { Stack, http, waitFor } from "@orch/testing";

/**
 * A command redelivered, or a core restarted, long after the fact (past JetStream's de-duplication
 * window, here shortened to half a second) never stores a run's events again nor dispatches its work
 * again: each fact is written once, with compare-and-set, and nothing is republished.
 */

let stack: Stack;
let bus: Bus;
const WINDOW_MS = 500;

beforeAll(async () => {
  stack = await Stack.start({ env: { ORCH_DUPLICATE_WINDOW_MS: String(WINDOW_MS) } });
  bus = await connectBus({ url: stack.nats.url, name: "probe", logger: createLogger({ service: "test", level: "silent" }) });
});

afterAll(async () => {
  await bus?.close();
  await stack?.stop();
});

const job = async (steps: unknown[]) => {
  const r = await http("POST", `${stack.baseUrl}/api/orchestrator/jobs`, {
    json: { goal: "once", steps, limits: { maxSteps: steps.length, maxWallMs: 60_000 } },
  });
  expect(r.status, r.text).toBe(200);
  return r.json().job_id as string;
};
const status = async (id: string) => (await http("GET", `${stack.baseUrl}/api/orchestrator/jobs/${id}`)).json().status as string;
const history = async (id: string) => (await readEvents(bus, bus.names.subjects.runOf(id))).map((e) => e.event);
/** How many times the agent hub ran each attempt of a run. */
const runsOf = (id: string) => {
  const n = new Map<string, number>();
  for (const l of stack.service("agent-hub").lines)
    if (l.msg === "step finished" && l.runId === id) n.set(String(l.attemptId), (n.get(String(l.attemptId)) ?? 0) + 1);
  return n;
};

describe("late replays", () => {
  it("a cancel of a job finished long ago, after a core restart, changes nothing and repeats nothing", async () => {
    const id = await job([{ type: "ci" }, { type: "docs" }]);
    await waitFor(async () => (await status(id)) === "succeeded", { what: "the job to succeed" });
    const before = await history(id);
    await new Promise((r) => setTimeout(r, 3 * WINDOW_MS));
    await stack.kill("orchestrator");
    await stack.restart("orchestrator");
    const c = await http("POST", `${stack.baseUrl}/api/orchestrator/jobs/${id}/cancel`);
    expect(c.json()).toEqual({ ok: true });
    // Another job through the restarted core: once it is done, the cancel was long since applied.
    const other = await job([{ type: "dev.log" }]);
    await waitFor(async () => (await status(other)) === "succeeded", { what: "a later job" });
    expect(await history(id)).toEqual(before);
    expect(await status(id)).toBe("succeeded");
    expect([...runsOf(id).values()]).toEqual([1, 1]);
  }, 60_000);

  it("a job whose core died mid-step comes back past the window with every event and every step once", async () => {
    const id = await job([{ type: "ci", payload: { mock: { delayMs: 1_500 } } }, { type: "docs" }]);
    await waitFor(async () => (await history(id)).some((e) => e.type === "step.started"), { what: "its first step to start" });
    await stack.kill("orchestrator");
    await new Promise((r) => setTimeout(r, 3 * WINDOW_MS));
    await stack.restart("orchestrator");
    await waitFor(async () => (await status(id)) === "succeeded", { timeoutMs: 30_000, what: "the job to succeed" });
    const events = await history(id);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    const count = (type: string) => events.filter((e) => e.type === type).length;
    expect([count("step.started"), count("step.succeeded"), count("run.finished")]).toEqual([2, 2, 1]);
    expect([...runsOf(id).values()]).toEqual([1, 1]);
  }, 60_000);
});
