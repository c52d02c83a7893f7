import { JetStreamApiError, type PubAck } from "@nats-io/jetstream";
import { createInbox, errors, headers as natsHeaders, type Msg, type MsgHdrs, type Subscription } from "@nats-io/transport-node";
import { Header } from "@orch/contracts";
import type { Bus } from "./connect.js";

/**
 * Answers to what this process asks, on one subscription per connection (`<inbox>.<token>`): the
 * core's verdicts on commands, and JetStream's acknowledgements of publishes. One map entry per
 * question and one timer for all of them, where a request through the client library costs a
 * subscription entry, a timer and (nats.js 3.4) an error object allocated even when it succeeds.
 */
class Replies {
  readonly #prefix = createInbox();
  readonly #waiting = new Map<string, { resolve: (m: Msg | null) => void; deadline: number }>();
  readonly #sub: Subscription;
  readonly #sweep: NodeJS.Timeout;
  #next = 0;

  constructor(bus: Bus) {
    this.#sub = bus.nc.subscribe(`${this.#prefix}.*`, {
      callback: (_err, m) => {
        const token = m.subject.slice(this.#prefix.length + 1);
        const w = this.#waiting.get(token);
        if (w) {
          this.#waiting.delete(token);
          w.resolve(m);
        }
      },
    });
    this.#sweep = setInterval(() => {
      const now = Date.now();
      for (const [token, w] of this.#waiting) {
        if (w.deadline > now) continue;
        this.#waiting.delete(token);
        w.resolve(null);
      }
    }, SWEEP_MS);
    this.#sweep.unref();
  }

  /** A reply subject and the promise of what arrives on it (null once `timeoutMs` has passed, give or take SWEEP_MS). */
  expect(timeoutMs: number): { subject: string; reply: Promise<Msg | null>; cancel(): void } {
    const token = (this.#next++).toString(36);
    const reply = new Promise<Msg | null>((resolve) => this.#waiting.set(token, { resolve, deadline: Date.now() + timeoutMs }));
    return { subject: `${this.#prefix}.${token}`, reply, cancel: () => this.#waiting.delete(token) };
  }

  get closed(): boolean {
    return this.#sub.isClosed();
  }

  close(): void {
    clearInterval(this.#sweep);
  }
}

/** How often unanswered questions are looked at for their timeout. */
const SWEEP_MS = 200;

const replies = new WeakMap<Bus, Replies>();

/** The reply subscription of this bus (made on first use, and again after the connection closed it). */
export function repliesOf(bus: Bus): Replies {
  let r = replies.get(bus);
  if (!r || r.closed) {
    r?.close();
    r = new Replies(bus);
    replies.set(bus, r);
  }
  return r;
}

export interface JsPublishOptions {
  /** `Nats-Msg-Id`: a republish within the stream's de-duplication window is stored once. */
  msgId?: string;
  /** `Nats-Expected-Last-Subject-Sequence`: stored only if the subject's last message is this one (0: none). */
  expectLastSubjectSequence?: number;
  headers?: MsgHdrs;
  timeoutMs?: number;
}

const dec = new TextDecoder();

/**
 * Publishes to a JetStream stream and waits for its acknowledgement, as `js.publish` does, through
 * the reply subscription. Refusals are the client library's errors (`JetStreamApiError` with the
 * server's error code: a lost compare-and-set is `StreamWrongLastSequence`), no stream a
 * `NoRespondersError`, no answer a `TimeoutError`, so callers handle them as they would its own.
 */
export async function publishToStream(bus: Bus, subject: string, data: Uint8Array, opts: JsPublishOptions = {}): Promise<PubAck> {
  const timeoutMs = opts.timeoutMs ?? 5_000;
  const wait = repliesOf(bus).expect(timeoutMs);
  let h = opts.headers;
  if (opts.msgId !== undefined || opts.expectLastSubjectSequence !== undefined) {
    h ??= natsHeaders();
    if (opts.msgId !== undefined) h.set(Header.MsgId, opts.msgId);
    if (opts.expectLastSubjectSequence !== undefined) h.set("Nats-Expected-Last-Subject-Sequence", String(opts.expectLastSubjectSequence));
  }
  try {
    bus.nc.publish(subject, data, { reply: wait.subject, ...(h ? { headers: h } : {}) });
  } catch (err) {
    wait.cancel();
    throw err;
  }
  const m = await wait.reply;
  if (!m) throw new errors.TimeoutError();
  if (m.headers?.code === 503) throw new errors.NoRespondersError(subject);
  const ack = JSON.parse(dec.decode(m.data)) as PubAck & { error?: { code: number; err_code?: number; description?: string } };
  if (ack.error) throw new JetStreamApiError({ code: ack.error.code, err_code: ack.error.err_code ?? 0, description: ack.error.description ?? "" });
  bus.stats.published++;
  return ack;
}
