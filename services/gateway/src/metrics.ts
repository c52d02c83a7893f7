import type { Bus, TopologySpec } from "@orch/bus";
import { RUN_STATUSES, type RunStatus } from "@orch/contracts";
import { queueStats, TasksQueries, type RunsApi } from "@orch/runs";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/**
 * The gateway's Prometheus registry (one per app, so several apps in one process never collide):
 * process metrics, HTTP requests by method, route pattern and status, and what the system holds
 * right now, read from JetStream and the run index at scrape time (the `collect()` callbacks), never
 * by a polling loop. One scrape asks NATS once (the gauges share a snapshot); when NATS or the run
 * index does not answer within `SCRAPE_TIMEOUT_MS`, the scrape still answers with what it has (and
 * `orch_gateway_nats_up 0` when NATS is the one missing).
 */

export const METRICS_PREFIX = "orch_gateway_";
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** How long a scrape waits for NATS and the run index. */
export const SCRAPE_TIMEOUT_MS = 2_000;

export interface ConsumerState {
  stream: string;
  consumer: string;
  /** Messages not yet delivered (waiting). */
  pending: number;
  /** Delivered, not yet acknowledged (in flight). */
  ackPending: number;
  /** Delivered more than once and not yet acknowledged. */
  redelivered: number;
}

/** What the system holds, as one scrape sees it; a part that could not be read is undefined. */
export interface OpsSnapshot {
  natsUp: boolean;
  streams?: { stream: string; messages: number; bytes: number }[];
  consumers?: ConsumerState[];
  /** Dispatched attempts per queue (`role.<role>`) not yet finished: waiting plus in flight. */
  workQueues?: Record<string, number>;
  /** Seed 001's tasks waiting in its queue (the event-bus's tasks projection). */
  queueSize?: number;
  deadLetters?: number;
  runs?: Partial<Record<RunStatus, number>>;
}

class Timeout extends Error {}

function within<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Timeout(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** Reads the snapshot from JetStream (stream and consumer infos) and the run index, concurrently. */
export async function readOpsSnapshot(deps: { bus: Bus; runs: RunsApi; topology: TopologySpec }, timeoutMs = SCRAPE_TIMEOUT_MS): Promise<OpsSnapshot> {
  const { bus, runs, topology } = deps;
  const names = bus.names;
  if (bus.nc.isClosed()) return { natsUp: false };
  const streamsP = within(Promise.all(topology.streams.map(({ config }) => bus.jsm.streams.info(config.name))), timeoutMs);
  const consumersP = within(
    Promise.all(
      topology.streams
        .filter((s) => s.consumers.length > 0)
        .map(async ({ config, consumers }) => {
          const durable = new Set(consumers.map((c) => c.durable_name));
          const page = await bus.jsm.consumers.list(config.name).next();
          return page.filter((ci) => durable.has(ci.name));
        }),
    ),
    timeoutMs,
  );
  const runsP = within(Promise.all(RUN_STATUSES.map(async (status) => [status, (await runs.list({ status: [status], limit: 1 })).total] as const)), timeoutMs);
  const queuesP = within(queueStats(bus), timeoutMs);
  const tasksP = within(new TasksQueries(bus).size(), timeoutMs);
  const [streams, consumers, runCounts, queues, tasks] = await Promise.allSettled([streamsP, consumersP, runsP, queuesP, tasksP]);

  const snap: OpsSnapshot = { natsUp: streams.status === "fulfilled" && !bus.nc.isClosed() };
  if (streams.status === "fulfilled") {
    snap.streams = streams.value.map((i) => ({ stream: i.config.name, messages: i.state.messages, bytes: i.state.bytes }));
    const dlq = streams.value.find((i) => i.config.name === names.streams.dlq);
    if (dlq) snap.deadLetters = dlq.state.messages;
  }
  if (consumers.status === "fulfilled") {
    snap.consumers = consumers.value.flat().map((ci) => ({
      stream: ci.stream_name,
      consumer: ci.name,
      pending: ci.num_pending,
      ackPending: ci.num_ack_pending,
      redelivered: ci.num_redelivered,
    }));
  }
  if (queues.status === "fulfilled") {
    snap.workQueues = Object.fromEntries(Object.entries(queues.value).map(([q, c]) => [q, c.queued + c.started]));
  }
  if (tasks.status === "fulfilled") snap.queueSize = tasks.value;
  if (runCounts.status === "fulfilled") snap.runs = Object.fromEntries(runCounts.value);
  return snap;
}

export interface GatewayMetrics {
  readonly registry: Registry;
  /** Records one answered request (`route` = the route pattern, never the raw URL). */
  observeRequest(method: string, route: string, statusCode: number, seconds: number): void;
}

/**
 * Creates the registry. `snapshot` is called lazily by the gauges' `collect()` at scrape time;
 * concurrent scrapes share one call.
 */
export function createGatewayMetrics(snapshot: () => Promise<OpsSnapshot>): GatewayMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: METRICS_PREFIX });

  // One read per scrape: the gauges' collect() callbacks all start in the same tick and share it.
  let inFlight: Promise<OpsSnapshot> | undefined;
  const snap = (): Promise<OpsSnapshot> => {
    if (!inFlight) {
      const p = snapshot().catch((): OpsSnapshot => ({ natsUp: false }));
      inFlight = p;
      void p.finally(() => {
        if (inFlight === p) inFlight = undefined;
      });
    }
    return inFlight;
  };

  const requests = new Counter({
    name: `${METRICS_PREFIX}http_requests_total`,
    help: "HTTP requests answered, by method, route pattern and status code",
    labelNames: ["method", "route", "status_code"] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: `${METRICS_PREFIX}http_request_duration_seconds`,
    help: "Time to answer an HTTP request (event streams: their whole life), by method, route pattern and status code",
    labelNames: ["method", "route", "status_code"] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });

  /** A gauge whose value comes from the snapshot; `undefined` leaves the family without samples. */
  const unlabelled = (name: string, help: string, pick: (s: OpsSnapshot) => number | undefined) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      async collect() {
        const v = pick(await snap());
        if (v === undefined) this.remove();
        else this.set(v);
      },
    });
  const labelled = <L extends string>(
    name: string,
    help: string,
    labelNames: readonly L[],
    pick: (s: OpsSnapshot) => [Record<L, string>, number][] | undefined,
  ) =>
    new Gauge({
      name,
      help,
      labelNames,
      registers: [registry],
      async collect() {
        const rows = pick(await snap());
        this.reset();
        for (const [labels, v] of rows ?? []) this.set(labels as never, v);
      },
    });

  unlabelled(`${METRICS_PREFIX}nats_up`, "1 when NATS answered this scrape, 0 when it did not", (s) => (s.natsUp ? 1 : 0));
  unlabelled("orchestrator_queue_size", "Tasks waiting in seed 001's queue (queued, not yet dispatched)", (s) => s.queueSize);
  unlabelled(`${METRICS_PREFIX}dead_letters`, "Messages in the dead-letter stream", (s) => s.deadLetters);
  labelled(`${METRICS_PREFIX}work_queue_messages`, "Attempts per queue waiting for an agent hub or in flight", ["queue"], (s) =>
    s.workQueues ? Object.entries(s.workQueues).map(([queue, n]) => [{ queue }, n]) : undefined,
  );
  labelled(`${METRICS_PREFIX}consumer_pending`, "Messages a durable consumer has not delivered yet", ["stream", "consumer"], (s) =>
    s.consumers?.map((c) => [{ stream: c.stream, consumer: c.consumer }, c.pending]),
  );
  labelled(
    `${METRICS_PREFIX}consumer_ack_pending`,
    "Messages a durable consumer delivered and awaits acknowledgement for (in flight)",
    ["stream", "consumer"],
    (s) => s.consumers?.map((c) => [{ stream: c.stream, consumer: c.consumer }, c.ackPending]),
  );
  labelled(`${METRICS_PREFIX}consumer_redelivered`, "Messages a durable consumer delivered more than once, not yet acknowledged", ["stream", "consumer"], (s) =>
    s.consumers?.map((c) => [{ stream: c.stream, consumer: c.consumer }, c.redelivered]),
  );
  labelled(`${METRICS_PREFIX}stream_messages`, "Messages stored per stream", ["stream"], (s) => s.streams?.map((x) => [{ stream: x.stream }, x.messages]));
  labelled(`${METRICS_PREFIX}stream_bytes`, "Bytes stored per stream", ["stream"], (s) => s.streams?.map((x) => [{ stream: x.stream }, x.bytes]));
  labelled(`${METRICS_PREFIX}runs`, "Runs by status, from the run index", ["status"], (s) =>
    s.runs ? Object.entries(s.runs).map(([status, n]) => [{ status }, n as number]) : undefined,
  );

  return {
    registry,
    observeRequest(method, route, statusCode, seconds) {
      const labels = { method, route, status_code: String(statusCode) };
      requests.inc(labels);
      duration.observe(labels, seconds);
    },
  };
}
