import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  type ConsumerConfig,
  type StreamConfig,
} from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { kvStreamOf, type Names } from "@orch/contracts";
import type { Bus } from "./connect.js";

/**
 * The stream topology: every stream, durable consumer and KV bucket, derived from the names module.
 * The event-bus service provisions it idempotently at startup; every other service waits for it.
 */

const DAY_MS = 86_400_000;

export interface TopologyOptions {
  storage: "file" | "memory";
  replicas: number;
  /** JetStream's de-duplication window of every stream. */
  duplicateWindowMs: number;
  commandsMaxAgeMs: number;
  dlqMaxAgeMs: number;
  /** How long worker session events and finished session records are kept. */
  sessionsMaxAgeMs: number;
  /** In-flight steps across every agent hub (each hub also caps its own concurrency). */
  workMaxAckPending: number;
  /** How long a webhook delivery id is remembered (a redelivery within it changes nothing). */
  deliveriesMaxAgeMs: number;
}

export const DEFAULT_TOPOLOGY: TopologyOptions = {
  storage: "file",
  replicas: 1,
  duplicateWindowMs: 120_000,
  commandsMaxAgeMs: 7 * DAY_MS,
  dlqMaxAgeMs: 30 * DAY_MS,
  sessionsMaxAgeMs: 7 * DAY_MS,
  workMaxAckPending: 1_000,
  deliveriesMaxAgeMs: 7 * DAY_MS,
};

export interface StreamSpec {
  config: Partial<StreamConfig> & { name: string; subjects: string[] };
  consumers: (Partial<ConsumerConfig> & { durable_name: string })[];
}

export interface TopologySpec {
  streams: StreamSpec[];
  buckets: { name: string; history: number; ttlMs?: number }[];
}

/**
 * Ack waits: long enough for a busy handler, short enough that a crash is noticed quickly. The core's
 * handlers take milliseconds (and mark a queued command in progress); after its crash, what it held is
 * redelivered within 2 s. The scheduler holds transitions whose timers are not yet safe (marking them
 * in progress): after its crash they come back within 5 s and their timers are armed again.
 */
export const ACK_WAIT_MS = { core: 2_000, agentHub: 5_000, scheduler: 5_000, dlq: 30_000, runIndex: 30_000 } as const;

export function topologySpec(names: Names, opts: TopologyOptions = DEFAULT_TOPOLOGY): TopologySpec {
  const storage = opts.storage === "memory" ? StorageType.Memory : StorageType.File;
  const common = {
    storage,
    num_replicas: opts.replicas,
    discard: DiscardPolicy.Old,
    duplicate_window: nanos(opts.duplicateWindowMs),
    allow_direct: true,
  };
  const durable = (name: string, filter: string, ackWaitMs: number, maxAckPending: number) => ({
    durable_name: name,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    filter_subject: filter,
    ack_wait: nanos(ackWaitMs),
    max_deliver: -1,
    max_ack_pending: maxAckPending,
  });
  const s = names.subjects;
  return {
    streams: [
      {
        config: {
          ...common,
          name: names.streams.cmd,
          description: "Commands for the core; kept after they are applied, for audit",
          subjects: [s.cmdAll()],
          retention: RetentionPolicy.Limits,
          max_age: nanos(opts.commandsMaxAgeMs),
        },
        // One consumer per partition: each belongs to one orchestrator replica at a time.
        consumers: Array.from({ length: names.partitions }, (_, k) => durable(names.consumers.corePartition(k), s.cmdPartition(k), ACK_WAIT_MS.core, 10_000)),
      },
      {
        config: {
          ...common,
          name: names.streams.runs,
          description: "Runs: one message per transition (state, events, work, timers), written by the core with compare-and-set",
          subjects: [s.runsAll()],
          retention: RetentionPolicy.Limits,
          // A run's latest transition is the run: nothing here expires by age. The event-bus purges
          // the history of runs finished longer ago than their retention.
          max_age: 0,
        },
        consumers: [
          durable(names.consumers.runIndex, s.runsAll(), ACK_WAIT_MS.runIndex, 100_000),
          // The hub acks a transition that dispatches nothing at once, the others when their work is done.
          durable(names.consumers.agentHub, s.runsAll(), ACK_WAIT_MS.agentHub, opts.workMaxAckPending),
          // The scheduler holds a transition that sets a timer until the timer is durable or withdrawn.
          // It reads headers only: a transition's timer operations travel in its `Orch-Timers` header.
          { ...durable(names.consumers.scheduler, s.runsAll(), ACK_WAIT_MS.scheduler, 100_000), headers_only: true },
        ],
      },
      {
        config: {
          ...common,
          name: names.streams.dlq,
          description: "Dead letters: messages a consumer could not decode or handle",
          subjects: [s.dlqAll()],
          retention: RetentionPolicy.Limits,
          max_age: nanos(opts.dlqMaxAgeMs),
        },
        consumers: [durable(names.consumers.dlqMonitor, s.dlqAll(), ACK_WAIT_MS.dlq, 1_000)],
      },
      {
        config: {
          ...common,
          name: names.streams.sess,
          description: "Worker session events: lifecycle, agent output, tool calls, commits",
          subjects: [s.sessAll()],
          retention: RetentionPolicy.Limits,
          max_age: nanos(opts.sessionsMaxAgeMs),
        },
        consumers: [],
      },
    ],
    buckets: [
      { name: names.buckets.timers, history: 1 },
      { name: names.buckets.defs, history: 1 },
      { name: names.buckets.runIndex, history: 1 },
      { name: names.buckets.leases, history: 1 },
      { name: names.buckets.sessions, history: 1, ttlMs: opts.sessionsMaxAgeMs },
      { name: names.buckets.projects, history: 1 },
      { name: names.buckets.projectTokens, history: 1 },
      { name: names.buckets.ids, history: 1 },
      { name: names.buckets.deliveries, history: 1, ttlMs: opts.deliveriesMaxAgeMs },
    ],
  };
}

export class TopologyMismatchError extends Error {
  override readonly name = "TopologyMismatchError";
  readonly code = "TOPOLOGY_MISMATCH";
}

const isNotFound = (err: unknown) => err instanceof JetStreamApiError && err.status === 404;

/** Creates what is missing and updates what drifted; refuses what cannot be changed in place. */
export async function provisionTopology(bus: Bus, spec: TopologySpec): Promise<{ created: string[]; updated: string[] }> {
  const created: string[] = [];
  const updated: string[] = [];
  for (const { config, consumers } of spec.streams) {
    let info = await bus.jsm.streams.info(config.name).catch((err: unknown) => {
      if (isNotFound(err)) return null;
      throw err;
    });
    if (info === null) {
      info = await bus.jsm.streams.add(config);
      created.push(`stream ${config.name}`);
    } else {
      if (info.config.storage !== config.storage) {
        throw new TopologyMismatchError(
          `stream ${config.name} exists with ${info.config.storage} storage but ORCH_BACKEND asks for ${config.storage}; ` +
            `JetStream cannot change storage in place: use a separate store directory (or NATS account) per backend, or delete the stream`,
        );
      }
      if (info.config.retention !== config.retention) {
        throw new TopologyMismatchError(
          `stream ${config.name} exists with ${info.config.retention} retention, expected ${config.retention}; delete it to re-provision`,
        );
      }
      const drift = (Object.keys(config) as (keyof typeof config)[]).filter(
        (k) => k !== "retention" && k !== "storage" && k !== "name" && JSON.stringify(info!.config[k]) !== JSON.stringify(config[k]),
      );
      if (drift.length > 0) {
        await bus.jsm.streams.update(config.name, { ...info.config, ...config });
        updated.push(`stream ${config.name} (${drift.join(", ")})`);
      }
    }
    for (const c of consumers) {
      const ci = await bus.jsm.consumers.info(config.name, c.durable_name).catch((err: unknown) => {
        if (isNotFound(err)) return null;
        throw err;
      });
      if (ci === null) {
        await bus.jsm.consumers.add(config.name, c);
        created.push(`consumer ${config.name}/${c.durable_name}`);
      } else {
        const drift = (["ack_wait", "max_ack_pending", "max_deliver", "headers_only"] as const).filter((k) => (ci.config[k] ?? false) !== (c[k] ?? false));
        if (drift.length > 0) {
          await bus.jsm.consumers.update(config.name, c.durable_name, {
            ack_wait: c.ack_wait,
            max_ack_pending: c.max_ack_pending,
            max_deliver: c.max_deliver,
            headers_only: c.headers_only ?? false,
          });
          updated.push(`consumer ${config.name}/${c.durable_name} (${drift.join(", ")})`);
        }
      }
    }
  }
  const storage = spec.streams[0]?.config.storage ?? StorageType.File;
  const replicas = spec.streams[0]?.config.num_replicas ?? 1;
  for (const b of spec.buckets) {
    const stream = kvStreamOf(b.name);
    const exists = await bus.jsm.streams.info(stream).then(
      () => true,
      (err: unknown) => {
        if (isNotFound(err)) return false;
        throw err;
      },
    );
    if (!exists) {
      await new Kvm(bus.js).create(b.name, { history: b.history, storage, replicas, ...(b.ttlMs ? { ttl: b.ttlMs } : {}) });
      created.push(`bucket ${b.name}`);
    }
  }
  return { created, updated };
}

/** What of the topology is not there yet (empty when everything is). */
export async function missingTopology(bus: Bus, spec: TopologySpec): Promise<string[]> {
  const missing: string[] = [];
  const check = async (what: string, p: Promise<unknown>) => {
    try {
      await p;
    } catch (err) {
      if (isNotFound(err)) missing.push(what);
      else throw err;
    }
  };
  for (const { config, consumers } of spec.streams) {
    await check(`stream ${config.name}`, bus.jsm.streams.info(config.name));
    for (const c of consumers) await check(`consumer ${config.name}/${c.durable_name}`, bus.jsm.consumers.info(config.name, c.durable_name));
  }
  for (const b of spec.buckets) await check(`bucket ${b.name}`, bus.jsm.streams.info(kvStreamOf(b.name)));
  return missing;
}

/**
 * Resolves once the event-bus service has provisioned the topology. Logs what it waits for, once
 * when it starts waiting and then every `logEveryMs`, instead of crashing and restarting in a loop.
 */
export async function waitForTopology(bus: Bus, spec: TopologySpec, opts: { signal?: AbortSignal; pollMs?: number; logEveryMs?: number } = {}): Promise<void> {
  const poll = opts.pollMs ?? 250;
  const logEvery = opts.logEveryMs ?? 5_000;
  let lastLog = 0;
  for (;;) {
    opts.signal?.throwIfAborted();
    let missing: string[];
    try {
      missing = await missingTopology(bus, spec);
    } catch (err) {
      missing = [`JetStream (${(err as Error).message})`];
    }
    if (missing.length === 0) {
      if (lastLog > 0) bus.logger.info("topology present");
      return;
    }
    if (Date.now() - lastLog >= logEvery) {
      bus.logger.info({ missing }, "waiting for the event-bus service to provision the stream topology");
      lastLog = Date.now();
    }
    await new Promise((r) => setTimeout(r, poll));
  }
}
