import { z } from "zod";
import { TimerCommand, WorkItem } from "./messages.js";
import { Id, Millis, RunSummary, RunView, type RunViewInput } from "./run-views.js";
import { TimerKind } from "./vocabulary.js";

/**
 * A run's history is a sequence of transitions: each command the core applies to a run is stored as
 * ONE message on the run's subject (`<p>.run.<projectId>.<runId>`), written with compare-and-set on
 * that subject's last sequence. The message is at once the run's state (its latest transition is the
 * run as it stands: load = read the subject's last message), its events, the work it dispatches and
 * the timers it sets or cancels. Nothing else is written for it, so a transition is stored once and
 * is never replayed into a second copy of its effects, however late a command is redelivered.
 *
 * The message is four JSON lines, in the order readers need them, so each reads only what it uses:
 *
 *   1. head   (TransitionHead) number, cause, the run's summary, work, timers   hub, scheduler, index
 *   2. events (StoredEvent[])  the events appended, numbered gaplessly per run   SSE, history, gRPC
 *   3. view   (RunView)        the run with its steps, as it stands               the API
 *   4. state                   the kernel's own state (opaque: the core's alone)  the core
 *
 * The view's line leaves out what the head's summary already says (the reader puts them together).
 *
 * `JSON.stringify` never writes a raw newline, so a newline always ends a line.
 */
export const TRANSITION_VERSION = 1;

/**
 * The most events one transition appends (a run's whole cancellation, a thousand added steps come to
 * far fewer). An event's position in the runs stream is `streamSeq × EVENTS_PER_TRANSITION + index`.
 */
export const EVENTS_PER_TRANSITION = 10_000;

/**
 * A timer a transition sets (`set`) or withdraws (`cancel`); the scheduler fires `timer.fired` for a
 * set one when due, or, for a timer that carries a `command`, sends that command.
 */
export const TimerOp = z.discriminatedUnion("op", [
  z.object({
    op: z.literal("set"),
    timerId: z.string().min(1).max(300),
    dueAt: Millis,
    kind: TimerKind,
    stepId: z.string().min(1).max(64).optional(),
    command: TimerCommand.optional(),
  }),
  z.object({ op: z.literal("cancel"), timerId: z.string().min(1).max(300) }),
]);
export type TimerOp = z.infer<typeof TimerOp>;

export const TransitionCause = z.object({
  /** The command's type (`run.create`, `run.signal`, `step.result`, `timer.fired`). */
  type: z.string(),
  commandId: z.string(),
  actor: z.string().optional(),
  /** The signal's name, for `run.signal`. */
  signal: z.string().optional(),
  /** The attempt a `step.result` reports. */
  attemptId: z.string().optional(),
});
export type TransitionCause = z.infer<typeof TransitionCause>;

export const TransitionHead = z.object({
  v: z.literal(TRANSITION_VERSION),
  runId: Id,
  projectId: Id,
  /** The transition's number in its run, from 1 (a run's first transition creates it). */
  n: z.int().min(1),
  /** The sequence of the run's last event after this transition (its events are `seq - events + 1 … seq`). */
  seq: z.int().nonnegative(),
  /** How many events this transition appended. */
  events: z.int().nonnegative(),
  at: Millis,
  cause: TransitionCause,
  /** The run as it stands after the transition (absent on the system feed). */
  run: RunSummary.optional(),
  /** Steps dispatched to the agent hub (at least once: `attemptId` makes the result idempotent). */
  work: z.array(WorkItem).optional(),
  timers: z.array(TimerOp).optional(),
  /** Attempts the run no longer waits for (cancelled, timed out, superseded): their sessions stop. */
  withdrawn: z.array(z.string()).optional(),
});
export type TransitionHead = z.infer<typeof TransitionHead>;

/** The head's fields that say which run a transition is of. */
const HeadIds = TransitionHead.pick({ runId: true, projectId: true });

/** What the agent hub reads of a head: the work it dispatches. */
export const WorkHead = TransitionHead.pick({ v: true, runId: true, projectId: true, n: true, at: true, work: true });
export type WorkHead = z.infer<typeof WorkHead>;

/** What the scheduler reads of a head: the timers it sets or withdraws (the transition's `Orch-Timers` header). */
export const TimerHead = TransitionHead.pick({ v: true, runId: true, projectId: true, seq: true, at: true, timers: true });
export type TimerHead = z.infer<typeof TimerHead>;

/** The `Orch-Timers` header of a transition: its TimerHead as JSON, or `-` when it sets and cancels nothing. */
export function timersHeader(head: TransitionHead): string {
  if (!head.timers?.length) return NO_TIMERS;
  const t: TimerHead = { v: head.v, runId: head.runId, projectId: head.projectId, seq: head.seq, at: head.at, timers: head.timers };
  return JSON.stringify(t);
}
const NO_TIMERS = "-";

/** Reads an `Orch-Timers` header: the timer operations, null when there are none; throws on garbage. */
export function timerHeadOf(header: string): TimerHead | null {
  if (header === NO_TIMERS) return null;
  return TimerHead.parse(JSON.parse(header));
}

/** An event as stored in a transition (its run and project are the head's). */
export const StoredEvent = z.object({
  /** Gapless per run, from 1. */
  seq: z.int().min(1),
  type: z.string().min(1).max(100),
  at: Millis,
  data: z.record(z.string(), z.unknown()).optional(),
});
export type StoredEvent = z.infer<typeof StoredEvent>;

const StoredEvents = z.array(StoredEvent);

/** An event as readers see it: with its run and project. */
export const RunEvent = StoredEvent.extend({ runId: Id, projectId: Id });
export type RunEvent = z.infer<typeof RunEvent>;

export interface TransitionParts {
  head: TransitionHead;
  events: StoredEvent[];
  /** Absent on the system feed. */
  view?: RunViewInput;
  /** The kernel's state: written and read by the core only (its JSON, or a value to write as JSON). */
  state?: unknown;
}

/** A part already written as JSON (the core builds its state's JSON from fragments). */
export class Json {
  constructor(readonly text: string) {}
}

/**
 * JSON of objects that do not change (a step's view or stored state, between the transitions that
 * leave the step as it was), by object: a run's unchanged steps are not written out again.
 */
const FRAGMENTS = new WeakMap<object, string>();

/** `JSON.stringify(o)`, once per object (which must not change afterwards). */
export function jsonOnce(o: object): string {
  let text = FRAGMENTS.get(o);
  if (text === undefined) {
    text = JSON.stringify(o);
    FRAGMENTS.set(o, text);
  }
  return text;
}

/** The view's fields that are the summary's too: written once, in the head. */
const SUMMARY_KEYS: ReadonlySet<string> = new Set(Object.keys(RunSummary.shape));

/** The view's line: without what the summary says, its steps from their fragments. */
function viewLine(view: RunViewInput): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(view)) {
    if (v === undefined || SUMMARY_KEYS.has(k)) continue;
    if (k === "steps") parts.push(`"steps":[${(v as object[]).map(jsonOnce).join(",")}]`);
    else if (k === "planning") parts.push(`"planning":${jsonOnce(v as object)}`);
    else parts.push(`${JSON.stringify(k)}:${JSON.stringify(v)}`);
  }
  return `{${parts.join(",")}}`;
}

/** A transition message that does not parse, or whose part fails its schema. */
export class TransitionDecodeError extends Error {
  override readonly name = "TransitionDecodeError";
  readonly code = "TRANSITION_UNDECODABLE";
  constructor(
    readonly part: "head" | "events" | "view" | "state",
    message: string,
  ) {
    super(`transition ${part}: ${message}`);
  }
}

const enc = new TextEncoder();
const dec = new TextDecoder();
const NL = 10;

/** The four lines of a transition, as bytes. The core builds its parts from typed data: not validated here. */
export function encodeTransition(p: TransitionParts): Uint8Array {
  const view = p.view === undefined ? "null" : viewLine(p.view);
  const state = p.state === undefined ? "null" : p.state instanceof Json ? p.state.text : JSON.stringify(p.state);
  return enc.encode(`${JSON.stringify(p.head)}\n${JSON.stringify(p.events)}\n${view}\n${state}`);
}

const issues = (e: z.ZodError) =>
  e.issues
    .slice(0, 5)
    .map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`)
    .join("; ");

/**
 * Reads a transition lazily: each part is parsed (and validated) the first time it is asked for,
 * so a reader that needs the head never pays for the view or the state.
 */
export class TransitionReader {
  readonly #data: Uint8Array;
  #ends: number[] | undefined;
  #head: TransitionHead | undefined;

  constructor(data: Uint8Array) {
    this.#data = data;
  }

  /** The raw bytes of part `i` (0: head … 3: state). */
  #line(i: number): Uint8Array {
    if (!this.#ends) {
      const ends: number[] = [];
      let from = 0;
      for (let k = 0; k < 3; k++) {
        const at = this.#data.indexOf(NL, from);
        if (at < 0) break;
        ends.push(at);
        from = at + 1;
      }
      ends.push(this.#data.length);
      this.#ends = ends;
    }
    const start = i === 0 ? 0 : (this.#ends[i - 1] ?? this.#data.length) + 1;
    const end = this.#ends[i] ?? this.#data.length;
    return start >= end ? new Uint8Array(0) : this.#data.subarray(start, end);
  }

  #json(i: number, part: TransitionDecodeError["part"]): unknown {
    const bytes = this.#line(i);
    if (bytes.length === 0) throw new TransitionDecodeError(part, "missing");
    try {
      return JSON.parse(dec.decode(bytes));
    } catch (err) {
      throw new TransitionDecodeError(part, `not JSON: ${(err as Error).message}`);
    }
  }

  head(): TransitionHead {
    if (this.#head) return this.#head;
    this.#head = this.headAs(TransitionHead);
    return this.#head;
  }

  #headText: string | undefined;
  #headRaw: unknown;

  /**
   * Whether the head has the field `key` (`work`, `timers`): a look at its text, before any parsing.
   * Never false when it has it (the core writes `"key":`); a rare true without it only costs a parse.
   */
  headHas(key: string): boolean {
    this.#headText ??= dec.decode(this.#line(0));
    return this.#headText.includes(`"${key}":`);
  }

  /** The head, validated by a schema of the fields the reader uses (a pick of TransitionHead). */
  headAs<S extends z.ZodType>(schema: S): z.output<S> {
    if (this.#headRaw === undefined) {
      this.#headText ??= dec.decode(this.#line(0));
      if (this.#headText.length === 0) throw new TransitionDecodeError("head", "missing");
      try {
        this.#headRaw = JSON.parse(this.#headText);
      } catch (err) {
        throw new TransitionDecodeError("head", `not JSON: ${(err as Error).message}`);
      }
    }
    const r = schema.safeParse(this.#headRaw);
    if (!r.success) throw new TransitionDecodeError("head", issues(r.error));
    return r.data;
  }

  /** The events appended, with the head's run and project. */
  events(): RunEvent[] {
    const head = this.headAs(HeadIds);
    const r = StoredEvents.safeParse(this.#json(1, "events"));
    if (!r.success) throw new TransitionDecodeError("events", issues(r.error));
    return r.data.map((e) => ({ runId: head.runId, projectId: head.projectId, ...e }));
  }

  /** The run as it stands after this transition (null on the system feed). */
  view(): RunView | null {
    const raw = this.#json(2, "view");
    if (raw === null) return null;
    const r = RunView.safeParse({ ...(raw as object), ...this.head().run });
    if (!r.success) throw new TransitionDecodeError("view", issues(r.error));
    return r.data;
  }

  /** The kernel's state, unvalidated: the core's own business (it checks the version it wrote). */
  state(): unknown {
    return this.#json(3, "state");
  }
}
