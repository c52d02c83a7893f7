import { randomBytes } from "node:crypto";
import { decode, encode, type Bus } from "@orch/bus";
import {
  SUPERVISOR_ASK,
  SUPERVISOR_CANCEL,
  SUPERVISOR_IDLE_MS,
  SupervisorAsk,
  SupervisorCancel,
  SupervisorErrorCode,
  SupervisorFrame,
  type SupervisorUsage,
} from "@orch/contracts";

type Subscription = ReturnType<Bus["nc"]["subscribe"]>;
type Msg = { data: Uint8Array };

/**
 * The asking side of the supervisor protocol (@orch/contracts `supervisor.ts`): subscribes to an
 * inbox, publishes the ask with it as the reply subject, and reads the hub's frames in order. A
 * front end (the gateway's `POST /api/v1/runs/{id}/ask`) waits with `first()` for the answer's first
 * piece or its refusal before it answers anything, then reads the rest with `next()`.
 */

/** How long an agent hub has to say it took the ask (its first frame). */
export const SUPERVISOR_ACCEPT_MS = 5_000;

/** The answer cannot go on, or never started: a code of SupervisorErrorCode and a message. */
export class SupervisorError extends Error {
  override readonly name = "SupervisorError";
  constructor(
    readonly code: SupervisorErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** The asker stopped waiting (its client went away). */
export class SupervisorAbortedError extends Error {
  override readonly name = "SupervisorAbortedError";
}

export type AnswerPiece = { kind: "delta"; text: string } | { kind: "done"; model: string; usage: SupervisorUsage };

type Item = { msg: Msg } | { noHub: true };

export class SupervisorAnswer {
  readonly askId = randomBytes(12).toString("hex");
  /** The model the hub said it asks (from its `start` frame). */
  model: string | undefined;
  readonly #bus: Bus;
  readonly #sub: Subscription;
  readonly #queue: Item[] = [];
  #wake: (() => void) | undefined;
  #expected = 0;
  #finished = false;
  #closed = false;

  private constructor(bus: Bus) {
    this.#bus = bus;
    const inbox = `_INBOX.${randomBytes(12).toString("hex")}`;
    this.#sub = bus.nc.subscribe(inbox, {
      callback: (_err, msg) => {
        this.#queue.push(msg.headers?.code === 503 ? { noHub: true } : { msg });
        this.#wake?.();
      },
    });
    this.inbox = inbox;
  }

  readonly inbox: string;

  /** Publishes the ask (after subscribing to its inbox, on the same connection, so no frame is missed). */
  static ask(bus: Bus, ask: Omit<SupervisorAsk, "askId">): SupervisorAnswer {
    const a = new SupervisorAnswer(bus);
    const subject = bus.names.subjects.query(SUPERVISOR_ASK);
    try {
      bus.nc.publish(subject, encode(SupervisorAsk, { ...ask, askId: a.askId }, subject), { reply: a.inbox });
    } catch (err) {
      a.close();
      throw err;
    }
    return a;
  }

  /**
   * The next frame: the hub's first within `acceptMs` (it says at once that it took the ask), any
   * other within SUPERVISOR_IDLE_MS of the one before; pings are skipped (they only prove the hub alive).
   */
  async #frame(acceptMs: number, signal?: AbortSignal): Promise<Exclude<SupervisorFrame, { kind: "ping" }>> {
    for (;;) {
      const item = this.#queue.shift() ?? (await this.#wait(this.#expected === 0 ? acceptMs : SUPERVISOR_IDLE_MS, signal));
      if ("noHub" in item) throw new SupervisorError(SupervisorErrorCode.Unavailable, "No agent hub is answering; the supervisor runs there");
      const d = decode(SupervisorFrame, item.msg.data);
      if (!d.ok || d.value.askId !== this.askId) throw new SupervisorError(SupervisorErrorCode.Unavailable, "The agent hub's answer is unreadable");
      const f = d.value;
      if (f.seq !== this.#expected)
        throw new SupervisorError(SupervisorErrorCode.Unavailable, `A piece of the answer was lost (frame ${this.#expected} missing)`);
      this.#expected++;
      if (f.kind === "ping") continue;
      return f;
    }
  }

  #wait(timeoutMs: number, signal?: AbortSignal): Promise<Item> {
    return new Promise<Item>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        this.#wake = undefined;
      };
      const timer = setTimeout(() => {
        done();
        reject(
          new SupervisorError(
            SupervisorErrorCode.Unavailable,
            this.#expected === 0 ? "No agent hub answered in time; the supervisor runs there" : "The agent hub stopped answering",
          ),
        );
      }, timeoutMs);
      const onAbort = () => {
        done();
        reject(new SupervisorAbortedError("the asker went away"));
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#wake = () => {
        const item = this.#queue.shift();
        if (!item) return;
        done();
        resolve(item);
      };
    });
  }

  /**
   * Waits for the hub to take the ask, then for the answer's first piece: the first delta, or
   * `done` for an empty answer. A refusal or failure before it throws SupervisorError.
   */
  async first(signal?: AbortSignal, acceptMs = SUPERVISOR_ACCEPT_MS): Promise<AnswerPiece> {
    const f = await this.#frame(acceptMs, signal);
    if (f.kind === "error") return this.#failed(f.error);
    if (f.kind === "start") this.model = f.model;
    else return this.#piece(f);
    return this.next(signal);
  }

  /** The next piece; SupervisorError when the answer broke off. */
  async next(signal?: AbortSignal): Promise<AnswerPiece> {
    const f = await this.#frame(SUPERVISOR_ACCEPT_MS, signal);
    if (f.kind === "error") return this.#failed(f.error);
    if (f.kind === "start") throw new SupervisorError(SupervisorErrorCode.Unavailable, "The agent hub's answer is out of order");
    return this.#piece(f);
  }

  #piece(f: Extract<SupervisorFrame, { kind: "delta" | "done" }>): AnswerPiece {
    if (f.kind === "done") {
      this.#finished = true;
      return { kind: "done", model: f.model, usage: f.usage };
    }
    return { kind: "delta", text: f.text };
  }

  #failed(e: { code: SupervisorErrorCode; message: string }): never {
    this.#finished = true;
    throw new SupervisorError(e.code, e.message);
  }

  /** Stops listening; an answer that had not finished is cancelled in the hub (its model request aborted). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#sub.unsubscribe();
    if (!this.#finished) {
      try {
        const subject = this.#bus.names.subjects.ctl(SUPERVISOR_CANCEL);
        this.#bus.nc.publish(subject, encode(SupervisorCancel, { askId: this.askId }, subject));
      } catch {
        /* the connection is gone: the hub's own timeout ends the model request */
      }
    }
  }
}
