import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectBus, readEvents, type Bus } from "@orch/bus";
import { createLogger } from "@orch/logging";
import { Stack, http, waitFor } from "@orch/testing";

/**
 * Finished runs are purged once their retention has passed (here 0.0001 days, 8.64 s): their history,
 * their summary and their place in the list go; a run still open stays whatever its age, and a
 * restarted event-bus does not bring a purged run back.
 */

const RETENTION_MS = 8_640;
let stack: Stack;
let bus: Bus;

beforeAll(async () => {
  stack = await Stack.start({ env: { ORCH_RUN_RETENTION_DAYS: "0.0001" } });
  bus = await connectBus({ url: stack.nats.url, name: "probe", logger: createLogger({ service: "test", level: "silent" }) });
});

afterAll(async () => {
  await bus?.close();
  await stack?.stop();
});

const job = async (steps: unknown[]) => {
  const r = await http("POST", `${stack.baseUrl}/api/orchestrator/jobs`, {
    json: { goal: "kept for a while", steps, limits: { maxSteps: steps.length, maxWallMs: 120_000 } },
  });
  expect(r.status, r.text).toBe(200);
  return r.json().job_id as string;
};
const run = (id: string) => http("GET", `${stack.baseUrl}/api/v1/runs/${id}`);
const listed = async () => ((await http("GET", `${stack.baseUrl}/api/v1/runs?limit=100`)).json().items as { id: string }[]).map((r) => r.id);
const history = async (id: string) => (await readEvents(bus, bus.names.subjects.runOf(id))).length;

describe("run retention", () => {
  it("purges a finished run after its retention and keeps an open one", async () => {
    const done = await job([{ type: "docs" }]);
    const open = await job([{ type: "ci", payload: { mock: { delayMs: 100_000 } } }]);
    await waitFor(async () => (await run(done)).json().status === "completed", { what: "the short job to finish" });
    await waitFor(async () => (await run(open)).json().status === "running", { what: "the long job to run" });
    expect(await history(done)).toBeGreaterThan(0);
    expect(await listed()).toEqual(expect.arrayContaining([done, open]));

    const t0 = Date.now();
    await waitFor(async () => (await run(done)).status === 404, { timeoutMs: 30_000, what: "the finished run to be purged" });
    expect(Date.now() - t0).toBeGreaterThan(RETENTION_MS / 2);
    expect(await history(done)).toBe(0);
    expect(await listed()).not.toContain(done);
    expect(stack.service("event-bus").lines.some((l) => l.msg === "finished runs past their retention purged" && Number(l.purged) >= 1)).toBe(true);

    // Older than the retention by now, but not finished: kept.
    await new Promise((r) => setTimeout(r, Math.max(0, RETENTION_MS + 3_000 - (Date.now() - t0))));
    expect((await run(open)).json().status).toBe("running");
    expect(await listed()).toContain(open);

    await stack.kill("event-bus");
    await stack.restart("event-bus");
    await waitFor(async () => (await listed()).includes(open), { what: "the run list after an event-bus restart" });
    expect(await listed()).not.toContain(done);
    expect((await run(done)).status).toBe(404);
  }, 90_000);
});
