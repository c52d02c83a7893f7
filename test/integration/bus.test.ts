import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Writable } from "node:stream";
import { z } from "zod";
import {
  connectBus,
  decode,
  missingTopology,
  PermanentError,
  provisionTopology,
  publish,
  runConsumer,
  topologySpec,
  DEFAULT_TOPOLOGY,
  TopologyMismatchError,
  waitForTopology,
  type Bus,
} from "@orch/bus";
import { DeadLetter } from "@orch/contracts";
import { createLogger } from "@orch/logging";
import { startNats, waitFor, type NatsServer } from "@orch/testing";

/** The bus library against a real nats-server: topology, de-duplication, the consumer and dead letters. */

let nats: NatsServer;
let bus: Bus;
const logLines: any[] = [];
const logger = createLogger({ service: "test", level: "debug" }, new Writable({ write: (c, _e, cb) => (logLines.push(JSON.parse(String(c))), cb()) }));

beforeAll(async () => {
  nats = await startNats();
  bus = await connectBus({ url: nats.url, name: "test", prefix: "bt", logger });
});

afterAll(async () => {
  await bus?.close();
  await nats?.stop();
});

const spec = () => topologySpec(bus.names, DEFAULT_TOPOLOGY);

async function deadLetters(origin: string): Promise<DeadLetter[]> {
  const out: DeadLetter[] = [];
  const c = await bus.js.consumers.get(bus.names.streams.dlq, { filter_subjects: bus.names.subjects.dlq(origin) });
  const info = await bus.jsm.streams.info(bus.names.streams.dlq, { subjects_filter: bus.names.subjects.dlq(origin) });
  const n = Object.values(info.state.subjects ?? {}).reduce((a, b) => a + b, 0);
  if (n === 0) return out;
  for await (const m of await c.consume()) {
    const d = decode(DeadLetter, m.data);
    if (d.ok) out.push(d.value);
    if (m.info.pending === 0) break;
  }
  return out;
}

describe("topology", () => {
  it("waits, logging what is missing, until the topology is provisioned", async () => {
    expect(await missingTopology(bus, spec())).toContain("stream BT_CMD");
    let done = false;
    const waiting = waitForTopology(bus, spec(), { pollMs: 50 }).then(() => (done = true));
    await waitFor(() => logLines.some((l) => l.msg?.includes("waiting for the event-bus service")));
    expect(done).toBe(false);
    const first = await provisionTopology(bus, spec());
    expect(first.created).toContain("stream BT_CMD");
    expect(first.created).toContain("consumer BT_RUNS/agent-hub");
    expect(first.created).toContain("bucket bt_timers");
    await waiting;
    expect(await missingTopology(bus, spec())).toEqual([]);
  });

  it("provisions idempotently and repairs drift", async () => {
    expect(await provisionTopology(bus, spec())).toEqual({ created: [], updated: [] });
    await bus.jsm.consumers.update(bus.names.streams.runs, "agent-hub", { max_ack_pending: 3 });
    await bus.jsm.consumers.delete(bus.names.streams.runs, "scheduler");
    const again = await provisionTopology(bus, spec());
    expect(again.created).toEqual(["consumer BT_RUNS/scheduler"]);
    expect(again.updated).toEqual(["consumer BT_RUNS/agent-hub (max_ack_pending)"]);
  });

  it("turns a consumer made before it read headers only into one that does, in place", async () => {
    // An installation from before the scheduler read headers only: its consumer delivers bodies.
    await bus.jsm.consumers.update(bus.names.streams.runs, "scheduler", { headers_only: false });
    expect((await bus.jsm.consumers.info(bus.names.streams.runs, "scheduler")).config.headers_only ?? false).toBe(false);
    const again = await provisionTopology(bus, spec());
    expect(again.updated).toEqual(["consumer BT_RUNS/scheduler (headers_only)"]);
    expect((await bus.jsm.consumers.info(bus.names.streams.runs, "scheduler")).config.headers_only).toBe(true);
    expect(await provisionTopology(bus, spec())).toEqual({ created: [], updated: [] });
  });

  it("refuses to switch a stream's storage in place", async () => {
    await expect(provisionTopology(bus, topologySpec(bus.names, { ...DEFAULT_TOPOLOGY, storage: "memory" }))).rejects.toThrow(TopologyMismatchError);
  });
});

describe("publish and consume", () => {
  const Msg = z.object({ n: z.int(), fail: z.enum(["no", "transient", "permanent"]).default("no") });
  // The command stream's subjects for one run, and the partition consumer that reads them.
  const subjectOf = (runId: string) => bus.names.subjects.cmd(runId);
  const consumerOf = (runId: string) => bus.names.consumers.corePartition(bus.names.subjects.partitionOf(runId));

  it("de-duplicates by Nats-Msg-Id and refuses to send an invalid message", async () => {
    const a = await publish(bus, subjectOf("dedupe"), Msg, { n: 1 }, { msgId: "same" });
    const b = await publish(bus, subjectOf("dedupe"), Msg, { n: 1 }, { msgId: "same" });
    expect(b.duplicate).toBe(true);
    expect(b.seq).toBe(a.seq);
    await expect(publish(bus, subjectOf("dedupe"), Msg, { n: "x" } as never, { msgId: "bad" })).rejects.toThrow(/refusing to publish an invalid message/);
    await bus.jsm.streams.purge(bus.names.streams.cmd);
  });

  it("parks undecodable messages and failing handlers as dead letters, and keeps going", async () => {
    const seen: number[] = [];
    const attempts = new Map<number, number>();
    const consumer = await runConsumer(bus, {
      stream: bus.names.streams.cmd,
      consumer: consumerOf("test"),
      schema: Msg,
      origin: "bus-test",
      maxDeliveries: 3,
      concurrency: 4,
      async handler(m) {
        attempts.set(m.n, (attempts.get(m.n) ?? 0) + 1);
        if (m.fail === "permanent") throw new PermanentError("cannot ever work");
        if (m.fail === "transient") throw new Error("flaky dependency");
        seen.push(m.n);
      },
    });
    const subj = subjectOf("test");
    await bus.js.publish(subj, new TextEncoder().encode("{not json"), { msgID: "g1" });
    await bus.js.publish(subj, new TextEncoder().encode(JSON.stringify({ n: "wrong" })), { msgID: "g2" });
    await publish(bus, subj, Msg, { n: 1 }, { msgId: "m1", correlationId: "corr-1" });
    await publish(bus, subj, Msg, { n: 2, fail: "permanent" }, { msgId: "m2" });
    await publish(bus, subj, Msg, { n: 3, fail: "transient" }, { msgId: "m3" });
    await publish(bus, subj, Msg, { n: 4 }, { msgId: "m4" });

    await waitFor(async () => (await deadLetters("bus-test")).length === 4, { timeoutMs: 20_000, what: "four dead letters" });
    await consumer.stop();
    expect(seen.sort()).toEqual([1, 4]);
    expect(attempts.get(2)).toBe(1);
    expect(attempts.get(3)).toBe(3);

    const letters = await deadLetters("bus-test");
    const byReason = (r: string) => letters.filter((l) => l.reason === r);
    expect(byReason("undecodable")).toHaveLength(1);
    expect(byReason("undecodable")[0]!.error).toMatch(/not JSON/);
    expect(Buffer.from(byReason("undecodable")[0]!.data, "base64").toString()).toBe("{not json");
    expect(byReason("invalid")).toHaveLength(1);
    expect(byReason("invalid")[0]!.error).toMatch(/^n: /);
    expect(
      byReason("handler_failed")
        .map((l) => l.error)
        .sort(),
    ).toEqual(["cannot ever work", "flaky dependency"]);
    for (const l of letters) expect(l).toMatchObject({ origin: "bus-test", stream: "BT_CMD", subject: subj });
    expect(bus.stats.deadLettered).toBe(4);
    // Every message was acked, parked ones included: nothing is waiting or in flight.
    const info = await bus.jsm.consumers.info(bus.names.streams.cmd, consumerOf("test"));
    expect([info.num_pending, info.num_ack_pending]).toEqual([0, 0]);
  });

  it("handles messages with the same key one at a time, in order", async () => {
    const order: string[] = [];
    let inFlight = 0;
    let maxInFlightPerKey = 0;
    const consumer = await runConsumer(bus, {
      stream: bus.names.streams.cmd,
      consumer: consumerOf("order"),
      schema: z.object({ key: z.string(), i: z.int() }),
      origin: "order-test",
      concurrency: 8,
      keyOf: (m) => m.key,
      async handler(m) {
        inFlight++;
        if (m.key === "a") maxInFlightPerKey = Math.max(maxInFlightPerKey, inFlight);
        await new Promise((r) => setTimeout(r, 5));
        order.push(`${m.key}${m.i}`);
        inFlight--;
      },
    });
    const subj = subjectOf("order");
    for (let i = 0; i < 10; i++) await bus.js.publish(subj, new TextEncoder().encode(JSON.stringify({ key: i % 2 ? "b" : "a", i })), { msgID: `o${i}` });
    await waitFor(() => order.length === 10);
    await consumer.stop();
    expect(order.filter((x) => x.startsWith("a"))).toEqual(["a0", "a2", "a4", "a6", "a8"]);
    expect(order.filter((x) => x.startsWith("b"))).toEqual(["b1", "b3", "b5", "b7", "b9"]);
  });
});
