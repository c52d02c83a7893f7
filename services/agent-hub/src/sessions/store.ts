import type { KV } from "@nats-io/kv";
import { getSessionRecord, isCasConflict, publish, retryWhileUnavailable, sessionKey, sessionKeys, type Bus } from "@orch/bus";
import { SessionEvent, type SessionRecord, type SessionEventInput } from "@orch/contracts";
import type { Logger } from "@orch/logging";

/**
 * Where sessions live: the record in the `sessions` bucket (written with compare-and-set, so two
 * hubs can never both own one), and its events on `<p>.sess.<project>.<run>.<session>.<type>`,
 * numbered gaplessly per session. Secrets the hub knows of are redacted from every event.
 */

export class SessionConflictError extends Error {
  override readonly name = "SessionConflictError";
  readonly code = "SESSION_CONFLICT";
}

export interface Stored {
  record: SessionRecord;
  revision: number;
}

/** Replaces every known secret value in strings (deeply) with `[REDACTED]`. */
export function redactor(secrets: readonly string[]): (v: unknown) => unknown {
  const list = [...new Set(secrets.filter((s) => s.length >= 6))].sort((a, b) => b.length - a.length);
  if (list.length === 0) return (v) => v;
  const walk = (v: unknown): unknown => {
    if (typeof v === "string") {
      let s = v;
      for (const secret of list) if (s.includes(secret)) s = s.split(secret).join("[REDACTED]");
      return s;
    }
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    return v;
  };
  return walk;
}

/** Secret values in an environment: named like one, or named by the configuration as a key. */
export function secretsOf(env: Record<string, string | undefined>, keyVars: readonly string[]): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(env)) {
    if (!v) continue;
    if (keyVars.includes(k) || /(^|_)(TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|APIKEY|PRIVATE_KEY|CREDENTIALS?)($|_)/i.test(k)) out.push(v);
  }
  return out;
}

export class SessionStore {
  #kv: KV | undefined;

  constructor(
    private readonly bus: Bus,
    private readonly log: Logger,
    readonly redact: (v: unknown) => unknown = (v) => v,
  ) {}

  async kv(): Promise<KV> {
    this.#kv ??= await this.bus.kv(this.bus.names.buckets.sessions);
    return this.#kv;
  }

  async get(runId: string, sessionId: string): Promise<Stored | null> {
    return getSessionRecord(this.bus, runId, sessionId);
  }

  /** Creates the record; null when one already exists (someone else created it first). */
  async create(record: SessionRecord): Promise<Stored | null> {
    try {
      const revision = await (await this.kv()).create(sessionKey(record.runId, record.sessionId), this.#encode(record));
      return { record, revision };
    } catch (err) {
      if (isCasConflict(err)) return null;
      throw err;
    }
  }

  /** Writes the record if nobody has since `revision`; throws SessionConflictError otherwise. */
  async update(record: SessionRecord, revision: number): Promise<Stored> {
    try {
      const next = await (await this.kv()).update(sessionKey(record.runId, record.sessionId), this.#encode(record), revision);
      return { record, revision: next };
    } catch (err) {
      if (isCasConflict(err)) throw new SessionConflictError(`session ${record.sessionId} was changed by someone else`);
      throw err;
    }
  }

  /** Every stored session (the bucket keeps finished ones for ORCH_SESSIONS_MAX_AGE_DAYS). */
  async all(): Promise<Stored[]> {
    const out: Stored[] = [];
    for (const key of await sessionKeys(this.bus)) {
      const [runId, sessionId] = key.split(".");
      const s = runId && sessionId ? await this.get(runId, sessionId) : null;
      if (s) out.push(s);
    }
    return out;
  }

  /** The number of events a session has (its last sequence: they are gapless from 1). */
  async eventCount(sessionId: string): Promise<number> {
    const info = await this.bus.jsm.streams.info(this.bus.names.streams.sess, { subjects_filter: this.bus.names.subjects.sessSession(sessionId) });
    return Object.values(info.state.subjects ?? {}).reduce((a, b) => a + b, 0);
  }

  /** Publishes one event (already numbered); de-duplicated by session and sequence. */
  async publish(event: SessionEvent): Promise<void> {
    const data = this.redact(event.data) as Record<string, unknown>;
    const e: SessionEvent = { ...event, data };
    await publish(
      this.bus,
      this.bus.names.subjects.sess(e.projectId, e.runId, e.sessionId, e.type),
      SessionEvent,
      e,
      { msgId: `sess:${e.sessionId}:${e.seq}` },
      "sess.v1",
    );
  }

  #encode(record: SessionRecord): Uint8Array {
    return new TextEncoder().encode(JSON.stringify(this.redact(record)));
  }
}

/**
 * A session's event stream as the runner writes it: numbered in order, published in order, with
 * the agent's text deltas coalesced (at most one event per `deltaMs`, or when another event comes),
 * so a model streaming tokens costs a few writes a second, not one per token.
 */
export class SessionEmitter {
  #seq: number;
  #chain: Promise<void> = Promise.resolve();
  #delta = "";
  #deltaChannel: string | undefined;
  #deltaTimer: NodeJS.Timeout | undefined;
  #failed: unknown;

  constructor(
    private readonly store: SessionStore,
    private readonly ids: { sessionId: string; runId: string; projectId: string; stepId: string; attemptId: string },
    lastSeq: number,
    private readonly log: Logger,
    private readonly deltaMs = 100,
  ) {
    this.#seq = lastSeq;
  }

  get seq(): number {
    return this.#seq;
  }

  /** An agent event (from the executor). */
  emit(e: SessionEventInput): void {
    if (e.type === "agent.delta") {
      const text = typeof e.data.text === "string" ? e.data.text : "";
      const channel = typeof e.data.channel === "string" ? e.data.channel : undefined;
      if (this.#delta && channel !== this.#deltaChannel) this.#flushDelta();
      this.#delta += text;
      this.#deltaChannel = channel;
      this.#deltaTimer ??= setTimeout(() => this.#flushDelta(), this.deltaMs);
      return;
    }
    this.#flushDelta();
    this.#push(e.type, e.data);
  }

  /** A lifecycle change (`session.<to>`). */
  status(to: string, data: Record<string, unknown>): void {
    this.#flushDelta();
    this.#push(`session.${to}`, data);
  }

  /** Resolves when everything emitted so far is stored. */
  async flush(): Promise<void> {
    this.#flushDelta();
    await this.#chain;
  }

  #flushDelta(): void {
    if (this.#deltaTimer) clearTimeout(this.#deltaTimer);
    this.#deltaTimer = undefined;
    if (!this.#delta) return;
    const data: Record<string, unknown> = { text: this.#delta };
    if (this.#deltaChannel) data.channel = this.#deltaChannel;
    this.#delta = "";
    this.#push("agent.delta", data);
  }

  #push(type: string, data: Record<string, unknown>): void {
    const event: SessionEvent = { ...this.ids, seq: ++this.#seq, type, at: Date.now(), data };
    // One after the other, so the stream holds them in sequence order; a failure is logged once and
    // the rest still go out (the record's lifecycle is the source of truth, events are the view).
    this.#chain = this.#chain.then(() =>
      retryWhileUnavailable(() => this.store.publish(event), { deadlineMs: 30_000 }).catch((err: unknown) => {
        // The emitter's logger is the session's (it names the session once).
        if (!this.#failed) this.log.warn({ err, seq: event.seq }, "could not publish a session event");
        this.#failed = err;
      }),
    );
  }
}
