import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectBus, readEvents, type Bus } from "@orch/bus";
import { createLogger } from "@orch/logging";
import { Stack, http, waitFor } from "@orch/testing";

/** A malformed message becomes a dead letter and an error event; the consumer keeps going. */

let stack: Stack;
let bus: Bus;

beforeAll(async () => {
  stack = await Stack.start();
  bus = await connectBus({ url: stack.nats.url, name: "probe", logger: createLogger({ service: "test", level: "silent" }) });
});

afterAll(async () => {
  await bus?.close();
  await stack?.stop();
});

describe("dead letters", () => {
  it("parks malformed commands and transitions, raises error events, and keeps processing", async () => {
    const enc = new TextEncoder();
    await bus.js.publish(bus.names.subjects.cmd("garbage-1"), enc.encode("this is not json"), { msgID: "garbage-1" });
    await bus.js.publish(bus.names.subjects.cmd("garbage-2"), enc.encode(JSON.stringify({ type: "job.explode", runId: "garbage-2" })), { msgID: "garbage-2" });
    // A transition no core wrote: the run index, which reads every head, parks it (the agent hub and
    // the scheduler read only heads that carry work or timers, and this one carries neither).
    await bus.js.publish(bus.names.subjects.run("_default", "garbage-3"), enc.encode(JSON.stringify({ runId: "x" })), { msgID: "garbage-3" });
    // One that claims to dispatch work, malformed: the agent hub parks it too (and the run index).
    const badWork = { v: 1, runId: "garbage-4", projectId: "_default", n: 1, at: 1, work: [{ runId: "garbage-4" }] };
    await bus.js.publish(bus.names.subjects.run("_default", "garbage-4"), enc.encode(JSON.stringify(badWork)), { msgID: "garbage-4" });

    const events = await waitFor(
      async () => {
        const e = await readEvents(bus, bus.names.subjects.system("dlq"));
        return e.length >= 5 ? e : undefined;
      },
      { timeoutMs: 20_000, what: "five dead-letter events" },
    );
    const byOrigin = events.map((e) => [e.event.type, e.event.data?.origin, e.event.data?.reason]);
    expect(byOrigin).toEqual(
      expect.arrayContaining([
        ["error.dead_letter", "core", "undecodable"],
        ["error.dead_letter", "core", "invalid"],
        ["error.dead_letter", "run-index", "invalid"],
        ["error.dead_letter", "agent-hub", "invalid"],
      ]),
    );
    const dlq = await bus.jsm.streams.info(bus.names.streams.dlq);
    expect(dlq.state.messages).toBe(5);
    expect(stack.service("orchestrator").lines.some((l) => l.msg === "message parked as a dead letter" && l.reason === "undecodable")).toBe(true);
    expect(stack.service("event-bus").lines.filter((l) => l.msg === "dead letter")).toHaveLength(5);

    const r = await http("POST", `${stack.baseUrl}/api/orchestrator/jobs`, { json: { goal: "still working", limits: { maxSteps: 1 } } });
    const id = r.json().job_id;
    await waitFor(async () => (await http("GET", `${stack.baseUrl}/api/orchestrator/jobs/${id}`)).json().status === "succeeded");
  });
});
