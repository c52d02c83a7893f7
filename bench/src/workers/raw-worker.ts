import { connect } from "@nats-io/transport-node";
import { jetstream, type JsMsg } from "@nats-io/jetstream";
import { argOf } from "../proc.js";
import { RAW, type RawState } from "../suites/raw-shared.js";

/**
 * Reference A's worker: takes a step message off the work-queue stream, runs the no-op step, and
 * publishes the next step's message carrying the state (or `done` after the last), then acks.
 * Messages are handled concurrently: each waits for its publish acknowledgement, as a durable
 * chain must, and a serial loop would measure one round trip per step instead of the server.
 *
 *   node dist/workers/raw-worker.js --url nats://… --noAsyncTraces true|false
 */
const argv = process.argv.slice(2);
const url = argOf(argv, "url") ?? "nats://127.0.0.1:4222";
const noAsyncTraces = argOf(argv, "noAsyncTraces") !== "false";

const enc = new TextEncoder();
const dec = new TextDecoder();

const nc = await connect({ servers: url, name: "bench-raw-worker", noAsyncTraces });
const js = jetstream(nc);
const consumer = await js.consumers.get(RAW.workStream, RAW.consumer);
const messages = await consumer.consume({ max_messages: 512 });

async function handle(m: JsMsg): Promise<void> {
  const state = JSON.parse(dec.decode(m.data)) as RawState;
  state.results.push({ i: state.step, at: Date.now() });
  if (state.step < state.steps) {
    await js.publish(RAW.stepSubject, enc.encode(JSON.stringify({ ...state, step: state.step + 1 })));
  } else {
    await js.publish(RAW.doneSubject, enc.encode(JSON.stringify(state)));
  }
  m.ack();
}

const stop = async () => {
  await messages.close().catch(() => undefined);
  await nc.drain().catch(() => undefined);
  process.exit(0);
};
process.on("SIGTERM", () => void stop());
process.on("SIGINT", () => void stop());

console.log("ready");
for await (const m of messages) {
  handle(m).catch((err: unknown) => {
    console.error(`step failed: ${(err as Error).message}`);
    m.nak(100);
  });
}
