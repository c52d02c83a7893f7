import { randomUUID } from "node:crypto";
import {
  findSession,
  finishedBefore,
  getRunSummary,
  getRunView,
  isNoAnswer,
  listRunSessions,
  listRuns,
  newRunId,
  QueryRefusedError,
  readEvents,
  replayEvents,
  replaySessionEvents,
  sendCommandAndWait,
  encode,
  decode,
  type Bus,
  type FeedEvent,
  type FeedPosition,
  type StoredSessionEvent,
} from "@orch/bus";
import {
  DEFAULT_PROJECT,
  ErrorCode,
  FINAL_SESSION_STATUSES,
  OrchError,
  ProjectRecord,
  SessionCancelRequest,
  isToken,
  type CommandOutcome,
  type RunCreateCommand,
  type RunQuery,
  type RunQueryResult,
  type RunSummary,
  type RunView,
  type SessionRecord,
  SignalSchema,
  type Signal,
} from "@orch/contracts";
import { CoreWrites } from "./core-writes.js";
import type { DefinitionStore } from "./definitions.js";
import { Numbers } from "./numbers.js";

/**
 * The runs API every front end shares: the gRPC server, our HTTP API and each seed's surface are
 * thin mappings of this. Commands go through the command stream (durable once sent) and wait for
 * the core's verdict, which carries the run as it stands; queries read the views the core publishes
 * (a run's latest transition), the run index and the runs' histories. Failures are `OrchError`s
 * with stable codes, which each front end maps to its own statuses.
 */

/** A run whose create command is stored but which the core has not created yet. */
export interface AcceptedRun {
  runId: string;
  projectId: string;
  definition: { id: string; version?: number };
  status: "pending";
  accepted: true;
}

export interface CreateRunInput {
  projectId?: string;
  definition: { id: string; version?: number };
  title?: string;
  labels?: Record<string, string>;
  input?: Record<string, unknown>;
  steps?: Record<string, unknown>[];
  facts?: Record<string, unknown>;
  limits?: Record<string, unknown>;
  budgets?: Record<string, unknown>[];
  autoStart?: boolean;
  /** A client-chosen run id (seed surfaces with ids of their own); else a uuid (from the key when given). */
  runId?: string;
  idempotencyKey?: string;
}

export interface Actor {
  actor?: string;
  reason?: string;
  correlationId?: string;
  idempotencyKey?: string;
}

export interface RunsApiOptions {
  definitions: DefinitionStore;
  mode: "mock" | "live";
  /** How long a command waits for the core's verdict. */
  timeoutMs?: number;
}

/** The core's refusal codes → ours. */
const REFUSAL: Record<string, ErrorCode> = {
  NOT_FOUND: ErrorCode.NotFound,
  ILLEGAL_TRANSITION: ErrorCode.IllegalTransition,
  BUDGET_GATE: ErrorCode.IllegalTransition,
  GUARD_FAILED: ErrorCode.IllegalTransition,
  TERMINAL_STATE: ErrorCode.IllegalTransition,
  STALE_REVISION: ErrorCode.Conflict,
  INVALID: ErrorCode.BadRequest,
};

/** A refusal from the core, with the kernel's own code kept for surfaces that word it differently. */
export class RefusedError extends OrchError {
  override name = "RefusedError";
  constructor(
    readonly kernelCode: string,
    message: string,
  ) {
    super(REFUSAL[kernelCode] ?? ErrorCode.IllegalTransition, message, { details: { reason: kernelCode } });
  }
}

/** The core has not answered in time: the command is stored and will be applied. */
export class PendingError extends OrchError {
  override name = "PendingError";
  constructor(what: string) {
    super(ErrorCode.Unavailable, `the core has not answered yet; the ${what} is stored and will be applied`);
  }
}

const orNotFound = (what: string) => new OrchError(ErrorCode.NotFound, `${what} not found`);

/** No connection to NATS (as opposed to a service that does not answer over it). */
export const natsUnavailable = (cause?: unknown) =>
  new OrchError(ErrorCode.NatsUnavailable, "NATS is unavailable: no connection to it (the gateway keeps reconnecting); try again shortly", { cause });

/** How long a run's create waits for the core to number the run's project (once per project and process). */
const PROJECT_NUMBER_TIMEOUT_MS = 2_000;

export class RunsApi {
  readonly bus: Bus;
  readonly definitions: DefinitionStore;
  /** What only the core writes (definitions, projects, numbers), asked of it. */
  readonly writes: CoreWrites;
  /** The numbers the core has assigned (the `ids` bucket), read. */
  readonly numbers: Numbers;
  readonly #mode: "mock" | "live";
  readonly #timeoutMs: number;
  /** Projects known to have their number: a run created in one asks the core for nothing. */
  readonly #numbered = new Set<string>([DEFAULT_PROJECT]);

  constructor(bus: Bus, opts: RunsApiOptions) {
    this.bus = bus;
    this.definitions = opts.definitions;
    this.writes = new CoreWrites(bus);
    this.numbers = new Numbers(bus);
    this.#mode = opts.mode;
    this.#timeoutMs = opts.timeoutMs ?? 5_000;
  }

  /**
   * Makes sure the core has numbered the project a run is created in (a project made only by its
   * runs has no record that would carry its number): once per project and process. A core that does
   * not answer does not stop the create, which waits for the core in its own way (`AcceptedRun`).
   */
  async #numberProject(projectId: string): Promise<void> {
    if (this.#numbered.has(projectId)) return;
    try {
      if ((await this.numbers.of("project", projectId)) === null) {
        await this.writes.assignNumber("project", projectId, { timeoutMs: PROJECT_NUMBER_TIMEOUT_MS });
      }
      if (this.#numbered.size >= 10_000) this.#numbered.clear();
      this.#numbered.add(projectId);
    } catch (err) {
      if (!(err instanceof OrchError && (err.code === ErrorCode.Unavailable || err.code === ErrorCode.NatsUnavailable))) throw err;
    }
  }

  // ── runs ──────────────────────────────────────────────────────────────────────────────────────

  /**
   * Creates a run and answers once the core has created it (or refused it). When the core does not
   * answer in time the run is still created later: an `AcceptedRun` says so.
   */
  async create(req: CreateRunInput, who: Actor = {}): Promise<RunView | AcceptedRun> {
    return (await this.createAt(req, who)).run;
  }

  /** `create`, with where the core wrote the run's first transition (absent when it wrote nothing now: a run that exists, an answer that did not come). */
  async createAt(req: CreateRunInput, who: Actor = {}): Promise<{ run: RunView | AcceptedRun; streamSeq?: number }> {
    const projectId = req.projectId ?? DEFAULT_PROJECT;
    if (!isToken(projectId)) throw new OrchError(ErrorCode.BadRequest, "project id must match [A-Za-z0-9_-]{1,128}");
    const runId = req.runId ?? newRunId(req.idempotencyKey ?? who.idempotencyKey);
    if (!isToken(runId)) throw new OrchError(ErrorCode.BadRequest, "run id must match [A-Za-z0-9_-]{1,128}");
    await this.#numberProject(projectId);
    const cmd: RunCreateCommand = {
      type: "run.create",
      commandId: `create:${runId}`,
      runId,
      issuedAt: Date.now(),
      actor: who.actor ?? "api",
      projectId,
      definition: req.definition,
      ...(req.title !== undefined ? { title: req.title } : {}),
      ...(req.labels && Object.keys(req.labels).length ? { labels: req.labels } : {}),
      ...(req.input ? { input: req.input } : {}),
      ...(req.steps?.length ? { steps: req.steps } : {}),
      ...(req.facts ? { facts: req.facts } : {}),
      ...(req.limits ? { limits: req.limits } : {}),
      ...(req.budgets?.length ? { budgets: req.budgets } : {}),
      autoStart: req.autoStart ?? true,
      mode: this.#mode,
    };
    const outcome = await sendCommandAndWait(this.bus, cmd, { timeoutMs: this.#timeoutMs, ...(who.correlationId ? { correlationId: who.correlationId } : {}) });
    const accepted: AcceptedRun = { runId, projectId, definition: req.definition, status: "pending", accepted: true };
    if (outcome === null) return { run: accepted };
    this.#check(outcome);
    const run = outcome.run ?? (await this.get(runId));
    return { run: run ?? accepted, ...(outcome.streamSeq !== undefined ? { streamSeq: outcome.streamSeq } : {}) };
  }

  /** The run with its steps described, as the core last published it, or null when there is no such run. */
  async get(runId: string): Promise<RunView | null> {
    if (!isToken(runId)) return null;
    return getRunView(this.bus, runId);
  }

  /** The run's summary (what lists show), or null. */
  async summary(runId: string): Promise<RunSummary | null> {
    if (!isToken(runId)) return null;
    return getRunSummary(this.bus, runId);
  }

  /** Like `get`, but a missing run is a NOT_FOUND error. */
  async require(runId: string): Promise<RunView> {
    const r = await this.get(runId);
    if (!r) throw orNotFound(`run ${runId}`);
    return r;
  }

  /**
   * A page of runs, newest first. Without a connection to NATS it says so at once (NATS_UNAVAILABLE);
   * a query nobody answers means no event-bus keeps the index (UNAVAILABLE).
   */
  async list(query: RunQuery): Promise<RunQueryResult> {
    if (!this.bus.connected) throw natsUnavailable();
    try {
      return await listRuns(this.bus, query);
    } catch (err) {
      if (err instanceof QueryRefusedError) throw new OrchError(err.code === "BAD_REQUEST" ? ErrorCode.BadRequest : ErrorCode.Internal, err.message);
      if (!this.bus.connected) throw natsUnavailable(err);
      if (isNoAnswer(err))
        throw new OrchError(ErrorCode.Unavailable, "no event-bus answered the run query (is the event-bus service running?)", { cause: err });
      throw err;
    }
  }

  /**
   * Every run matching the query, page after page (for views that must see all of them: a queue,
   * a project's protocols). Bounded by `max`.
   */
  async listAll(query: Omit<RunQuery, "cursor" | "limit">, max = 10_000): Promise<RunSummary[]> {
    const out: RunSummary[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.list({ ...query, limit: 500, ...(cursor ? { cursor } : {}) });
      out.push(...page.runs);
      cursor = page.nextCursor;
    } while (cursor && out.length < max);
    return out;
  }

  /** Sends an action (validated first) and answers with the run after the core applied it. */
  async signal(runId: string, signal: Signal | Record<string, unknown>, who: Actor = {}): Promise<RunView> {
    return (await this.signalAt(runId, signal, who)).run;
  }

  /** `signal`, with where the core wrote the transition it made (absent when the signal changed nothing). */
  async signalAt(runId: string, signal: Signal | Record<string, unknown>, who: Actor = {}): Promise<{ run: RunView; streamSeq?: number }> {
    if (!isToken(runId)) throw orNotFound(`run ${runId}`);
    const parsed = SignalSchema.safeParse(signal);
    if (!parsed.success) {
      throw new OrchError(
        ErrorCode.BadRequest,
        `invalid action: ${parsed.error.issues.map((i) => `${i.path.join(".") || "action"}: ${i.message}`).join("; ")}`,
        {
          details: { issues: parsed.error.issues.map((i) => ({ path: i.path.join("."), message: i.message })) },
        },
      );
    }
    const outcome = await sendCommandAndWait(
      this.bus,
      {
        type: "run.signal",
        commandId: who.idempotencyKey ? `signal:${runId}:${who.idempotencyKey}` : `signal:${runId}:${randomUUID()}`,
        runId,
        issuedAt: Date.now(),
        actor: who.actor ?? "api",
        signal: parsed.data as { name: string },
        ...(who.reason ? { reason: who.reason } : {}),
      },
      { timeoutMs: this.#timeoutMs, ...(who.correlationId ? { correlationId: who.correlationId } : {}) },
    );
    if (outcome === null) throw new PendingError("action");
    this.#check(outcome);
    return { run: outcome.run ?? (await this.require(runId)), ...(outcome.streamSeq !== undefined ? { streamSeq: outcome.streamSeq } : {}) };
  }

  #check(o: CommandOutcome): void {
    if (o.ok) return;
    throw new RefusedError(o.error?.code ?? "ILLEGAL_TRANSITION", o.error?.message ?? "refused");
  }

  /** Every event of the run, oldest first. */
  async history(runId: string): Promise<FeedEvent[]> {
    if (!isToken(runId)) throw orNotFound(`run ${runId}`);
    const events = await readEvents(this.bus, this.bus.names.subjects.runOf(runId));
    if (events.length === 0 && !(await this.get(runId))) throw orNotFound(`run ${runId}`);
    return events;
  }

  /** The run's events after a position in the runs stream (all when omitted), then live ones; the caller stops it. */
  watch(runId: string, opts: { after?: FeedPosition; signal?: AbortSignal } = {}): AsyncGenerator<FeedEvent> {
    return replayEvents(this.bus, this.bus.names.subjects.runOf(runId), {
      ...(opts.after ? { after: opts.after } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
  }

  /** Whether a finished run has no event after `after` (its stream, resumed there, is over). */
  finishedBefore(runId: string, after: FeedPosition): Promise<boolean> {
    return finishedBefore(this.bus, runId, after);
  }

  /** Every event of a project's runs after a feed position, then live ones. */
  watchProject(projectId: string, opts: { after?: FeedPosition; signal?: AbortSignal } = {}): AsyncGenerator<FeedEvent> {
    return replayEvents(this.bus, this.bus.names.subjects.runsOfProject(projectId), {
      ...(opts.after ? { after: opts.after } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
  }

  // ── projects ──────────────────────────────────────────────────────────────────────────────────

  /** A project as the core last wrote it (`writes.createProject` / `updateProject` change it). */
  async getProject(id: string): Promise<ProjectRecord | null> {
    if (!isToken(id)) return null;
    const kv = await this.bus.kv(this.bus.names.buckets.projects);
    const e = await kv.get(id);
    if (!e || e.operation !== "PUT" || e.length === 0) return null;
    const d = decode(ProjectRecord, e.value);
    return d.ok ? d.value : null;
  }

  async listProjects(): Promise<ProjectRecord[]> {
    const kv = await this.bus.kv(this.bus.names.buckets.projects);
    const out: ProjectRecord[] = [];
    for await (const k of await kv.keys()) {
      const p = await this.getProject(k);
      if (p) out.push(p);
    }
    return out.sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id));
  }

  /** The number the core gave a project (on its record, else in the `ids` bucket), or null. */
  async projectNumber(projectId: string, record?: ProjectRecord | null): Promise<number | null> {
    const onRecord = record?.alias !== undefined ? Number(record.alias) : NaN;
    if (Number.isSafeInteger(onRecord) && onRecord > 0) return onRecord;
    return this.numbers.of("project", projectId);
  }

  // ── sessions ──────────────────────────────────────────────────────────────────────────────────

  async session(sessionId: string): Promise<SessionRecord | null> {
    if (!isToken(sessionId)) return null;
    return (await findSession(this.bus, sessionId))?.record ?? null;
  }

  async sessions(runId: string): Promise<SessionRecord[]> {
    if (!isToken(runId)) return [];
    return listRunSessions(this.bus, runId);
  }

  /** A session's (or a run's sessions') events after `afterSeq`, then live ones. */
  watchSessions(filter: { sessionId?: string; runId?: string }, opts: { afterSeq?: number; signal?: AbortSignal } = {}): AsyncGenerator<StoredSessionEvent> {
    const s = this.bus.names.subjects;
    const subject = filter.sessionId ? s.sessSession(filter.sessionId) : s.sessRun(filter.runId!);
    return replaySessionEvents(this.bus, subject, {
      ...(opts.afterSeq ? { startSeq: opts.afterSeq + 1 } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
  }

  /**
   * Asks the agent hubs to stop a session; the one running it kills its processes and records the
   * end. Answers with the session once it has ended (or after the kill grace period).
   */
  async cancelSession(sessionId: string, who: Actor & { killGraceMs?: number } = {}): Promise<SessionRecord> {
    const before = await this.session(sessionId);
    if (!before) throw orNotFound(`session ${sessionId}`);
    if (FINAL_SESSION_STATUSES.has(before.status)) throw new OrchError(ErrorCode.IllegalTransition, `session ${sessionId} is already ${before.status}`);
    const req = { sessionId, ...(who.actor ? { actor: who.actor } : {}), ...(who.reason ? { reason: who.reason } : {}) };
    try {
      await this.bus.nc.request(this.bus.names.subjects.ctl("session.cancel"), encode(SessionCancelRequest, req), { timeout: 3_000 });
    } catch {
      throw new OrchError(ErrorCode.IllegalTransition, `no agent hub is running session ${sessionId} (hub ${before.hub} did not answer)`);
    }
    const until = Date.now() + (who.killGraceMs ?? 3_000) + 10_000;
    for (;;) {
      const now = (await this.session(sessionId)) ?? before;
      if (FINAL_SESSION_STATUSES.has(now.status) || Date.now() > until) return now;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
