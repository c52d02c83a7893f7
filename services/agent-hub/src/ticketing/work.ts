import {
  TicketSyncPayload,
  TicketUpdatePayload,
  type TicketingProviderId,
  type TicketSyncAnswer,
  type TicketUpdateAnswer,
  type TrackerFailure,
} from "@orch/contracts";
import { createTicketingProvider, type Env, type TrackerSettings } from "./factory.js";
import type { TicketingProvider } from "./types.js";

/**
 * Ticket intake's work in the agent hub, done without a model: `tickets.sync` lists the matching
 * tickets, `ticket.update` applies a ticket run's keyed writes (state, comment, link), each once.
 * The hub decides nothing: it answers what the tracker said, failures typed (`retryable` is what
 * the core's backoff and circuit breaker read). Keys come from the environment only, and no answer
 * carries one.
 */

export interface TicketingServiceOptions {
  /** Each tracker's API URL and call timeout (the hub's `ORCH_LINEAR_API_URL`, `ORCH_SHORTCUT_API_URL`, …). */
  settings: Partial<Record<TicketingProviderId, TrackerSettings>>;
  env?: Env;
  /** The provider for an id; the factory when unset. */
  providerFor?: (id: TicketingProviderId) => TicketingProvider;
}

export class TicketingService {
  readonly #o: TicketingServiceOptions;

  constructor(opts: TicketingServiceOptions) {
    this.#o = opts;
  }

  provider(id: TicketingProviderId): TicketingProvider {
    return this.#o.providerFor ? this.#o.providerFor(id) : createTicketingProvider(id, this.#o.settings[id] ?? {}, this.#o.env ?? process.env);
  }

  /** A sync's answer (never throws but for an abort). */
  async sync(payload: unknown, signal?: AbortSignal): Promise<TicketSyncAnswer> {
    const p = TicketSyncPayload.safeParse(payload ?? {});
    if (!p.success) return { ok: false, error: invalid("tickets.sync", p.error) };
    try {
      const tickets = await this.provider(p.data.provider).list(p.data.query, signal);
      return { ok: true, tickets: tickets.slice(0, p.data.query.limit) };
    } catch (err) {
      if (signal?.aborted) throw err;
      return { ok: false, error: failure(err) };
    }
  }

  /** An update's answer: the writes in order, each once by its key (never throws but for an abort). */
  async update(payload: unknown, signal?: AbortSignal): Promise<TicketUpdateAnswer> {
    const p = TicketUpdatePayload.safeParse(payload ?? {});
    if (!p.success) return { ok: false, written: [], error: invalid("ticket.update", p.error) };
    const written: TicketUpdateAnswer["written"] = [];
    try {
      const t = this.provider(p.data.ticket.provider);
      for (const w of p.data.writes) {
        const r =
          w.kind === "state"
            ? await t.moveTo(p.data.ticket, w.state, signal)
            : w.kind === "comment"
              ? await t.comment(p.data.ticket, w.key, w.body, signal)
              : await t.attachLink(p.data.ticket, w.url, w.title, signal);
        written.push({ key: w.key, changed: r.changed });
      }
      return { ok: true, written };
    } catch (err) {
      if (signal?.aborted) throw err;
      return { ok: false, written, error: failure(err) };
    }
  }
}

function failure(err: unknown): TrackerFailure {
  const e = err as { code?: unknown; message?: unknown; retryable?: unknown };
  const code = typeof e?.code === "string" && /^[A-Z][A-Z0-9_]*$/.test(e.code) ? e.code : "TRACKER_ERROR";
  return {
    code,
    message: (typeof e?.message === "string" ? e.message : String(err)).slice(0, 10_000),
    retryable: typeof e?.retryable === "boolean" ? e.retryable : true,
  };
}

function invalid(type: string, error: { issues: { path: PropertyKey[]; message: string }[] }): TrackerFailure {
  const issues = error.issues.map((i) => `${i.path.map(String).join(".") || "payload"}: ${i.message}`).join("; ");
  return { code: "INVALID_PAYLOAD", message: `invalid ${type} payload: ${issues}`, retryable: false };
}
