/**
 * Every NATS name the system uses: subjects, streams, consumers and KV buckets.
 * Nothing else in the codebase writes a subject string by hand.
 *
 * Subject grammar, for prefix `p` (default `orch`):
 *
 *   p.cmd.<partition>.<runId>              commands for the core: create, cancel, step result, timer fired
 *   p.evt.<projectId>.<runId>.<type…>      run events; a run owns the subject space under its id,
 *                                          and `<type…>` may span tokens (`step.started`)
 *   p.work.<queue…>                        step dispatches for the agent hub (`adapter`, `role.<role>`)
 *   p.sess.<projectId>.<runId>.<sessionId>.<type…>
 *                                          worker session events (lifecycle, agent deltas, tool calls)
 *   p.ctl.<name…>                          control requests answered by request/reply (`session.cancel`), not stored
 *   p.sched.<op>                           timer requests for the scheduler (`set`, `cancel`)
 *   p.dlq.<origin>                         dead letters, `origin` = the consumer that parked them
 *   p.q.<name…>                            queries answered by request/reply (`runs.list`), not stored
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

/** The stream JetStream keeps a KV bucket in. */
export const kvStreamOf = (bucket: string): string => `KV_${bucket}`;

export interface Names {
  readonly prefix: string;
  readonly partitions: number;
  readonly streams: {
    readonly cmd: string;
    readonly evt: string;
    readonly work: string;
    readonly sched: string;
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
  readonly buckets: {
    readonly runs: string;
    readonly timers: string;
    /** Workflow definitions, one key per `<id>.<version>`, never overwritten. */
    readonly defs: string;
    /** The run index (one summary per run), kept by the event-bus from run events. */
    readonly runIndex: string;
    /** Orchestrator replicas: membership heartbeats and partition leases. */
    readonly leases: string;
    /** Worker sessions of the agent hubs, key = session id. */
    readonly sessions: string;
    /** Projects and where their repositories are, key = project id. */
    readonly projects: string;
    /**
     * Seed surfaces' ids and counters: a seed 004 integer id → its run or project, seed 001's task
     * ids, seed 002's feature numbers, webhook delivery ids already seen.
     */
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
    /** One run event. */
    evt(projectId: string, runId: string, type: string): string;
    /** Every event of one run, whatever its project. */
    evtRun(runId: string): string;
    /** Every event of one project. */
    evtProject(projectId: string): string;
    evtAll(): string;
    work(queue: string): string;
    workAll(): string;
    sched(op: "set" | "cancel"): string;
    schedAll(): string;
    dlq(origin: string): string;
    dlqAll(): string;
    /** Run-level events of every run (`run.created`, `run.status_changed`, …). */
    evtRunLevel(): string;
    query(name: string): string;
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
      evt: `${up}_EVT`,
      work: `${up}_WORK`,
      sched: `${up}_SCHED`,
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
    buckets: Object.freeze({
      runs: `${low}_runs`,
      timers: `${low}_timers`,
      defs: `${low}_defs`,
      runIndex: `${low}_run_index`,
      leases: `${low}_leases`,
      sessions: `${low}_sessions`,
      projects: `${low}_projects`,
      aliases: `${low}_aliases`,
    }),
    subjects: Object.freeze({
      cmd: (runId: string) => `${p}.cmd.${partitionOf(token("runId", runId))}.${runId}`,
      cmdAll: () => `${p}.cmd.>`,
      cmdPartition: (k: number) => {
        if (!Number.isInteger(k) || k < 0 || k >= partitions) throw new RangeError(`partition ${k} is not in 0..${partitions - 1}`);
        return `${p}.cmd.${k}.>`;
      },
      partitionOf: (runId: string) => partitionOf(token("runId", runId)),
      evt: (projectId: string, runId: string, type: string) =>
        `${p}.evt.${token("projectId", projectId)}.${token("runId", runId)}.${dotted("event type", type)}`,
      evtRun: (runId: string) => `${p}.evt.*.${token("runId", runId)}.>`,
      evtProject: (projectId: string) => `${p}.evt.${token("projectId", projectId)}.>`,
      evtAll: () => `${p}.evt.>`,
      work: (queue: string) => `${p}.work.${dotted("queue", queue)}`,
      workAll: () => `${p}.work.>`,
      sched: (op: "set" | "cancel") => `${p}.sched.${token("op", op)}`,
      schedAll: () => `${p}.sched.>`,
      dlq: (origin: string) => `${p}.dlq.${token("origin", origin)}`,
      dlqAll: () => `${p}.dlq.>`,
      evtRunLevel: () => `${p}.evt.*.*.run.>`,
      query: (name: string) => `${p}.q.${dotted("query", name)}`,
      sess: (projectId: string, runId: string, sessionId: string, type: string) =>
        `${p}.sess.${token("projectId", projectId)}.${token("runId", runId)}.${token("sessionId", sessionId)}.${dotted("session event type", type)}`,
      sessSession: (sessionId: string) => `${p}.sess.*.*.${token("sessionId", sessionId)}.>`,
      sessRun: (runId: string) => `${p}.sess.*.${token("runId", runId)}.>`,
      sessAll: () => `${p}.sess.>`,
      ctl: (name: string) => `${p}.ctl.${dotted("control", name)}`,
    }),
  });
}
