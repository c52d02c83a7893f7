// One round trip through our bus library (runConsumer + publishToStream) between two processes' worth of
// connections on a fresh nats-server: two publishes, two durable deliveries. The floor under any hop
// of ours. `node bench/micro/bus-hop.mjs`.
import { startNatsServer } from "@orch/nats-server";
import { connectBus, runConsumer, publishToStream } from "@orch/bus";
import { createLogger } from "@orch/logging";
import { AckPolicy, DeliverPolicy } from "@nats-io/jetstream";
const s = await startNatsServer({});
const logger = createLogger({ service: "hop", level: "silent" });
const a = await connectBus({ url: s.url, name: "a", logger });
const b = await connectBus({ url: s.url, name: "b", logger });
await a.jsm.streams.add({ name: "X", subjects: ["x.>"] });
await a.jsm.streams.add({ name: "Y", subjects: ["y.>"] });
for (const [st, f] of [
  ["X", "x.>"],
  ["Y", "y.>"],
])
  await a.jsm.consumers.add(st, {
    durable_name: "c",
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    filter_subject: f,
    max_ack_pending: 1000,
  });
const pending = new Map();
// b: consumes X, publishes to Y (like a hub)
await runConsumer(b, {
  stream: "X",
  consumer: "c",
  origin: "b",
  decode: (d) => ({ ok: true, value: d }),
  concurrency: 16,
  async handler(v, ctx) {
    await publishToStream(b, "y." + ctx.streamSeq, v);
  },
});
// a: consumes Y, resolves
await runConsumer(a, {
  stream: "Y",
  consumer: "c",
  origin: "a",
  decode: (d) => ({ ok: true, value: d }),
  concurrency: 16,
  async handler(v) {
    const id = new TextDecoder().decode(v);
    pending.get(id)?.();
  },
});
const d = [];
for (let i = 0; i < 500; i++) {
  const t = performance.now();
  const id = String(i);
  const p = new Promise((r) => pending.set(id, r));
  await publishToStream(a, "x." + i, new TextEncoder().encode(id));
  await p;
  d.push(performance.now() - t);
}
const q = (x, p) => [...x].sort((m, n) => m - n)[Math.floor(x.length * p)].toFixed(3);
console.log("round trip (2 publishes, 2 deliveries) p50", q(d.slice(100), 0.5), "p90", q(d.slice(100), 0.9));
await a.close();
await b.close();
await s.stop();
process.exit(0);
