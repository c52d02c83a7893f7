import type { ConsumerMessages, JsMsg } from "@nats-io/jetstream";
import { DeadLetter, Header } from "@orch/contracts";
import type { z } from "zod";
import { decode, headersToRecord, publish, type Decoded } from "./codec.js";
import type { Bus } from "./connect.js";

/** Thrown by a handler when retrying cannot help: the message goes to the dead letters at once. */
export class PermanentError extends Error {
  override readonly name = "PermanentError";
  readonly code = "PERMANENT";
}

export interface HandlerContext {
  readonly msg: JsMsg;
  readonly subject: string;
  readonly streamSeq: number;
  /** 1 on first delivery. */
  readonly deliveries: number;
  readonly correlationId: string | undefined;
}

/**
 * How a message becomes the handler's value: a zod schema (JSON validated by it), or a decoder of
 * its own. What cannot be decoded is parked as a dead letter.
 */
export type MessageSource<T> =
  | { schema: z.ZodType<T>; decode?: never; decodeMsg?: never }
  | { decode: (data: Uint8Array) => Decoded<T>; schema?: never; decodeMsg?: never }
  /** From the whole message (its headers: a consumer that reads headers only). */
  | { decodeMsg: (msg: JsMsg) => Decoded<T>; schema?: never; decode?: never };

export type ConsumerRunOptions<T> = MessageSource<T> & {
  stream: string;
  consumer: string;
  /** Names this consumer in logs and in dead letters (`<prefix>.dlq.<origin>`). */
  origin: string;
  handler: (value: NoInfer<T>, ctx: HandlerContext) => Promise<void>;
  /** Handlers running at once. */
  concurrency?: number;
  /** Messages with the same key are handled one at a time, in stream order. */
  keyOf?: (value: NoInfer<T>) => string;
  /** Deliveries after which a message whose handler keeps failing is parked. */
  maxDeliveries?: number;
  /** While a message waits or runs, tell the server it is still being worked on this often. */
  heartbeatMs?: number;
};

export interface RunningConsumer {
  stop(): Promise<void>;
  readonly done: Promise<void>;
}

/**
 * Pull requests expire (and are renewed) this often. The client notices a lost pull (a server
 * restart, a consumer re-created under it) only after two missed idle heartbeats, at half this
 * period each: 5 s keeps recovery to seconds for one cheap request per idle consumer per 5 s.
 */
export const PULL_EXPIRES_MS = 5_000;

const backoffMs = (deliveries: number) => Math.min(30_000, 250 * 2 ** Math.min(deliveries - 1, 7));

/** Parks an undecodable or unhandleable message as a dead letter; the caller then acks it. */
export async function parkDeadLetter(bus: Bus, origin: string, msg: JsMsg, reason: DeadLetter["reason"], error: string): Promise<void> {
  const letter: DeadLetter = {
    origin,
    stream: msg.info.stream,
    subject: msg.subject,
    streamSeq: msg.seq,
    deliveries: msg.info.deliveryCount,
    reason,
    error: error.slice(0, 4_000),
    at: Date.now(),
    data: Buffer.from(msg.data).toString("base64"),
  };
  const headers = headersToRecord(msg.headers);
  if (headers) letter.headers = headers;
  await publish(bus, bus.names.subjects.dlq(origin), DeadLetter, letter, {
    msgId: `dlq:${origin}:${msg.info.stream}:${msg.seq}`,
    correlationId: msg.headers?.get(Header.CorrelationId) || undefined,
  });
  bus.stats.deadLettered++;
  bus.logger.error({ origin, subject: msg.subject, streamSeq: msg.seq, reason, error: letter.error }, "message parked as a dead letter");
}

/**
 * Consumes a durable pull consumer with `for await`, decoding every message with its schema.
 * A message is acked only after its handler resolves. An undecodable one is parked as a dead
 * letter and acked, so the consumer keeps going; a failing handler is retried with backoff and
 * parked after `maxDeliveries` (or at once on PermanentError).
 */
export async function runConsumer<T>(bus: Bus, opts: ConsumerRunOptions<T>): Promise<RunningConsumer> {
  const concurrency = opts.concurrency ?? 1;
  const maxDeliveries = opts.maxDeliveries ?? 10;
  const log = bus.logger.child({ consumer: opts.consumer, stream: opts.stream });
  const consumer = await bus.js.consumers.get(opts.stream, opts.consumer);
  const messages: ConsumerMessages = await consumer.consume({ max_messages: Math.min(1_000, Math.max(16, concurrency * 2)), expires: PULL_EXPIRES_MS });

  let active = 0;
  const waiters: (() => void)[] = [];
  const idle: (() => void)[] = [];
  const acquire = async () => {
    while (active >= concurrency) await new Promise<void>((r) => waiters.push(r));
    active++;
  };
  const release = () => {
    active--;
    waiters.shift()?.();
    if (active === 0) for (const r of idle.splice(0)) r();
  };
  const chains = new Map<string, Promise<void>>();

  // Messages waiting or running are told to the server as still in progress, all by one timer.
  const held = new Set<JsMsg>();
  const beat = opts.heartbeatMs
    ? setInterval(() => {
        for (const m of held) m.working();
      }, opts.heartbeatMs)
    : undefined;
  beat?.unref();

  const handle = async (msg: JsMsg, value: T) => {
    const ctx: HandlerContext = {
      msg,
      subject: msg.subject,
      streamSeq: msg.seq,
      deliveries: msg.info.deliveryCount,
      correlationId: msg.headers?.get(Header.CorrelationId) || undefined,
    };
    try {
      await opts.handler(value, ctx);
      msg.ack();
    } catch (err) {
      bus.stats.handlerErrors++;
      const permanent = err instanceof PermanentError;
      if (permanent || ctx.deliveries >= maxDeliveries) {
        try {
          await parkDeadLetter(bus, opts.origin, msg, "handler_failed", (err as Error).message ?? String(err));
          msg.ack();
        } catch (parkErr) {
          log.error({ err: parkErr }, "could not park a dead letter; will retry");
          msg.nak(backoffMs(ctx.deliveries));
        }
      } else {
        log.warn({ err, subject: msg.subject, deliveries: ctx.deliveries }, "handler failed; message will be redelivered");
        msg.nak(backoffMs(ctx.deliveries));
      }
    }
  };

  const loop = (async () => {
    for await (const msg of messages) {
      bus.stats.consumed++;
      const d = opts.decodeMsg ? opts.decodeMsg(msg) : opts.decode ? opts.decode(msg.data) : decode(opts.schema!, msg.data);
      if (!d.ok) {
        try {
          await parkDeadLetter(bus, opts.origin, msg, d.reason, d.error);
          msg.ack();
        } catch (err) {
          log.error({ err }, "could not park a dead letter; will retry");
          msg.nak(1_000);
        }
        continue;
      }
      if (beat) held.add(msg);
      await acquire();
      const key = opts.keyOf?.(d.value);
      const run = () => handle(msg, d.value);
      let task: Promise<void>;
      if (key === undefined) {
        task = run();
      } else {
        const prev = chains.get(key);
        task = prev ? prev.then(run) : run();
        chains.set(key, task);
      }
      void task.finally(() => {
        held.delete(msg);
        if (key !== undefined && chains.get(key) === task) chains.delete(key);
        release();
      });
    }
  })();

  const done = loop.then(async () => {
    if (active > 0) await new Promise<void>((r) => idle.push(r));
    if (beat) clearInterval(beat);
  });
  return {
    done,
    async stop() {
      messages.stop();
      await done.catch((err: unknown) => log.warn({ err }, "consumer stopped with an error"));
    },
  };
}
