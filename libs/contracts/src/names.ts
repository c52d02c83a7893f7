/**
 * Every NATS name the system uses: subjects, streams, consumers and KV buckets.
 * Nothing else in the codebase writes a subject string by hand.
 *
 * Subject grammar, for prefix `p` (default `orch`):
 *
 *   p.cmd.<partition>.<runId>              commands for the core: create, signal, step result, timer fired
 *   p.run.<projectId>.<runId>              a run's transitions, written by the core only, compare-and-set
 *                                          on the subject: each is the run's state, its events, the work
 *                                          it dispatches and the timers it sets (contracts/transitions.ts)
 *   p.run._system.<feed>                   system events (dead letters), not a run's
 *   p.sess.<projectId>.<runId>.<sessionId>.<type…>
 *                                          worker session events (lifecycle, agent deltas, tool calls)
 *   p.ctl.<name…>                          control requests answered by request/reply (`session.cancel`), not stored
 *   p.dlq.<origin>                         dead letters, `origin` = the consumer that parked them
 *   p.q.<name…>                            queries answered by request/reply (`runs.list`), not stored
 *   p.rpc.<name…>                          writes only the core makes, asked by request/reply
 *                                          (`definitions.put`, `projects.create`, `ids.assign`), answered
 *                                          by every core replica in one queue group
 *
 * A token is `[A-Za-z0-9_-]+`: no dots, wildcards or whitespace, so an id can never widen a filter.
 * Partitions spread runs over the core's consumers (FNV-1a of the run id modulo `partitions`).
 */

const TOKEN = /^[A-Za-z0-9_-]{1,128}$/;
const PREFIX = /^[a-z][a-z0-9_-]{0,31}$/;

export class InvalidTokenError extends Error {
  override readonly name = "InvalidTokenError";
  readonly code = "INVALID_SUBJECT_TOKEN";
  constructor(what: string, value: unknown) {
    super(`${what} ${JSON.stringify(value)} is not a valid subject token ([A-Za-z0-9_-], 1-128 chars)`);
  }
}

/** Throws unless `value` can stand alone as one subject token. */
export function token(what: string, value: string): string {
  if (typeof value !== "string" || !TOKEN.test(value)) throw new InvalidTokenError(what, value);
  return value;
}

export function isToken(value: unknown): value is string {
  return typeof value === "string" && TOKEN.test(value);
}

/** A dotted name (an event type, a queue) whose every token is valid. */
function dotted(what: string, value: string): string {
  if (typeof value !== "string" || value.length === 0 || value.length > 256) throw new InvalidTokenError(what, value);
  for (const t of value.split(".")) token(what, t);
  return value;
}

/** FNV-1a, 32 bit: stable across processes and languages, cheap. */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export const DEFAULT_PREFIX = "orch";
export const DEFAULT_PARTITIONS = 16;

/** The id every ad-hoc job (seed 000) and project-less run lives under. */
export const DEFAULT_PROJECT = "_default";

/** The project whose "runs" are the system's feeds (dead letters): never a run of anyone's. */
export const SYSTEM_PROJECT = "_system";

/** The stream JetStream keeps a KV bucket in. */
export const kvStreamOf = (bucket: string): string => `KV_${bucket}`;

export interface Names {
  readonly prefix: string;
  readonly partitions: number;
  readonly streams: {
    readonly cmd: string;
    /** Every run's transitions (and the system feeds). */
    readonly runs: string;
    readonly dlq: string;
    readonly sess: string;
  };
  readonly consumers: {
    /** The core's consumer of one command partition (`core-<k>`). */
    corePartition(partition: number): string;
    readonly agentHub: string;
    readonly scheduler: string;
    readonly dlqMonitor: string;
    readonly runIndex: string;
  };
  /** Queue groups of request/reply subjects: one answer per request, from any member. */
  readonly groups: {
    /** Every orchestrator replica: the writes of `p.rpc.*`. */
    readonly core: string;
  };
  readonly buckets: {
    /** Timers the scheduler has made durable (those still armed a moment after their transition). */
    readonly timers: string;
    /** Workflow definitions, one key per `<id>.<version>`, never overwritten; written by the core only. */
    readonly defs: string;
    /** The run index (one summary per run), kept by the event-bus from run events. */
    readonly runIndex: string;
    /** Orchestrator replicas: membership heartbeats and partition leases. */
    readonly leases: string;
    /** Worker sessions of the agent hubs, key = session id. */
    readonly sessions: string;
    /** Projects and where their repositories are, key = project id; written by the core only. */
    readonly projects: string;
    /** Which project a project token opens: key = the token's SHA-256 (hex); written by the core only. */
    readonly projectTokens: string;
    /**
     * Numbers the core assigns once, when what they name is created: counters and their maps
     * (seed 004's project numbers, seed 002's feature numbers). Written by the core only.
     */
    readonly ids: string;
    /** Webhook delivery ids already applied (claimed once, so a redelivery changes nothing); they expire. */
    readonly deliveries: string;
  };
  /**
   * Buckets of earlier versions, no longer provisioned or written: the core reads them once at start
   * to carry what they held over (`aliases`: seed surfaces' counters and maps). (`tasks`, where seed
   * 001's task records and queue were kept, is no longer read: tasks are steps of their runs.)
   */
  readonly legacyBuckets: {
    readonly aliases: string;
  };
  readonly subjects: {
    /** Commands for a run, routed to the run's partition. */
    cmd(runId: string): string;
    /** Every command of one partition (the filter of `core-<k>`). */
    cmdPartition(partition: number): string;
    /** Every command subject (the core's consumer filter). */
    cmdAll(): string;
    partitionOf(runId: string): number;
    /** The subject a run's transitions are written on. */
    run(projectId: string, runId: string): string;
    /** One run's transitions, whatever its project (a filter). */
    runOf(runId: string): string;
    /** The transitions of every run of one project. */
    runsOfProject(projectId: string): string;
    /** Every transition of every run, and the system feeds. */
    runsAll(): string;
    /** The run a transition's subject names (null for a system feed or another subject). */
    runOfSubject(subject: string): { projectId: string; runId: string } | null;
    /** A system feed (`dlq`). */
    system(feed: string): string;
    dlq(origin: string): string;
    dlqAll(): string;
    query(name: string): string;
    /** A write the core makes for an edge (request/reply, queue group `groups.core`). */
    rpc(name: string): string;
    /** One session event. */
    sess(projectId: string, runId: string, sessionId: string, type: string): string;
    /** Every event of one session. */
    sessSession(sessionId: string): string;
    /** Every session event of one run. */
    sessRun(runId: string): string;
    sessAll(): string;
    ctl(name: string): string;
  };
}

export function createNames(prefix: string = DEFAULT_PREFIX, partitions: number = DEFAULT_PARTITIONS): Names {
  if (!PREFIX.test(prefix)) throw new InvalidTokenError("prefix", prefix);
  if (!Number.isInteger(partitions) || partitions < 1 || partitions > 1024) {
    throw new RangeError(`partitions must be an integer in 1..1024, got ${partitions}`);
  }
  const up = prefix.toUpperCase().replace(/-/g, "_");
  const low = prefix.replace(/-/g, "_");
  const p = prefix;
  const partitionOf = (runId: string) => fnv1a(runId) % partitions;
  return Object.freeze({
    prefix,
    partitions,
    streams: Object.freeze({
      cmd: `${up}_CMD`,
      runs: `${up}_RUNS`,
      dlq: `${up}_DLQ`,
      sess: `${up}_SESS`,
    }),
    consumers: Object.freeze({
      corePartition: (k: number) => {
        if (!Number.isInteger(k) || k < 0 || k >= partitions) throw new RangeError(`partition ${k} is not in 0..${partitions - 1}`);
        return `core-${k}`;
      },
      agentHub: "agent-hub",
      scheduler: "scheduler",
      dlqMonitor: "dlq-monitor",
      runIndex: "run-index",
    }),
    groups: Object.freeze({ core: "orchestrator" }),
    buckets: Object.freeze({
      timers: `${low}_timers`,
      defs: `${low}_defs`,
      runIndex: `${low}_run_index`,
      leases: `${low}_leases`,
      sessions: `${low}_sessions`,
      projects: `${low}_projects`,
      projectTokens: `${low}_project_tokens`,
      ids: `${low}_ids`,
      deliveries: `${low}_deliveries`,
    }),
    legacyBuckets: Object.freeze({ aliases: `${low}_aliases` }),
    subjects: Object.freeze({
      cmd: (runId: string) => `${p}.cmd.${partitionOf(token("runId", runId))}.${runId}`,
      cmdAll: () => `${p}.cmd.>`,
      cmdPartition: (k: number) => {
        if (!Number.isInteger(k) || k < 0 || k >= partitions) throw new RangeError(`partition ${k} is not in 0..${partitions - 1}`);
        return `${p}.cmd.${k}.>`;
      },
      partitionOf: (runId: string) => partitionOf(token("runId", runId)),
      run: (projectId: string, runId: string) => `${p}.run.${token("projectId", projectId)}.${token("runId", runId)}`,
      runOf: (runId: string) => `${p}.run.*.${token("runId", runId)}`,
      runsOfProject: (projectId: string) => `${p}.run.${token("projectId", projectId)}.*`,
      runsAll: () => `${p}.run.>`,
      runOfSubject: (subject: string) => {
        const parts = subject.split(".");
        if (parts.length !== 4 || parts[0] !== p || parts[1] !== "run") return null;
        const [, , projectId, runId] = parts as [string, string, string, string];
        return projectId !== SYSTEM_PROJECT && isToken(projectId) && isToken(runId) ? { projectId, runId } : null;
      },
      system: (feed: string) => `${p}.run.${SYSTEM_PROJECT}.${token("feed", feed)}`,
      dlq: (origin: string) => `${p}.dlq.${token("origin", origin)}`,
      dlqAll: () => `${p}.dlq.>`,
      query: (name: string) => `${p}.q.${dotted("query", name)}`,
      rpc: (name: string) => `${p}.rpc.${dotted("rpc", name)}`,
      sess: (projectId: string, runId: string, sessionId: string, type: string) =>
        `${p}.sess.${token("projectId", projectId)}.${token("runId", runId)}.${token("sessionId", sessionId)}.${dotted("session event type", type)}`,
      sessSession: (sessionId: string) => `${p}.sess.*.*.${token("sessionId", sessionId)}.>`,
      sessRun: (runId: string) => `${p}.sess.*.${token("runId", runId)}.>`,
      sessAll: () => `${p}.sess.>`,
      ctl: (name: string) => `${p}.ctl.${dotted("control", name)}`,
    }),
  });
}
