import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import { createNames, type Names } from "@orch/contracts";
import { coalesceWrites } from "./coalesce.js";
import type { Logger } from "@orch/logging";

/** Counters every process keeps about its traffic (exported as metrics later). */
export interface BusStats {
  published: number;
  consumed: number;
  deadLettered: number;
  handlerErrors: number;
}

export interface Bus {
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly names: Names;
  readonly logger: Logger;
  readonly stats: BusStats;
  /**
   * Whether the connection to NATS is up right now: false from a `disconnect` status until the
   * next `reconnect`, and once the connection is closed. Requests and publishes made meanwhile wait
   * for the reconnection (and time out), so callers that must answer at once look here first.
   */
  readonly connected: boolean;
  /** Opens a KV bucket the event-bus service has provisioned (cached per bucket). */
  kv(bucket: string): Promise<KV>;
  /** Drains and closes the connection. */
  close(): Promise<void>;
}

export interface BusOptions {
  /** One URL, or several separated by commas (a cluster). */
  url: string;
  /** Connection name as the server reports it (`orch-gateway`, …). */
  name: string;
  prefix?: string;
  logger: Logger;
  /** Flush writes once per event-loop turn instead of once per microtask (default true; see coalesce.ts). */
  coalesceWrites?: boolean;
}

/**
 * Connects to NATS with the options every service needs: `noAsyncTraces` (per-request stack
 * traces cost half the client's CPU on a publish-heavy path), endless reconnects, and waiting for
 * the first connect instead of failing, so a service can start before its server.
 */
export async function connectBus(opts: BusOptions): Promise<Bus> {
  const servers = opts.url
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  const log = opts.logger;
  const nc = await connect({
    servers,
    name: opts.name,
    noAsyncTraces: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    waitOnFirstConnect: true,
    timeout: 5_000,
  });
  if (opts.coalesceWrites !== false && !coalesceWrites(nc))
    log.warn("this nats.js version's protocol handler is not the one write coalescing knows; writes are flushed per message");
  log.info({ server: nc.getServer() }, "connected to NATS");
  let connected = true;
  void (async () => {
    for await (const s of nc.status()) {
      switch (s.type) {
        case "disconnect":
          connected = false;
          log.warn({ server: s.server }, "disconnected from NATS");
          break;
        case "reconnect":
          connected = true;
          log.info({ server: s.server }, "reconnected to NATS");
          break;
        case "close":
          connected = false;
          break;
        case "error":
          log.error({ err: s.error }, "NATS connection error");
          break;
        default:
          break;
      }
    }
  })().catch(() => undefined);

  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc, { checkAPI: false });
  const kvm = new Kvm(js);
  const buckets = new Map<string, Promise<KV>>();
  const names = createNames(opts.prefix);
  return {
    nc,
    js,
    jsm,
    names,
    logger: log,
    stats: { published: 0, consumed: 0, deadLettered: 0, handlerErrors: 0 },
    get connected() {
      return connected && !nc.isClosed();
    },
    kv(bucket: string) {
      let kv = buckets.get(bucket);
      if (!kv) {
        kv = kvm.open(bucket);
        buckets.set(bucket, kv);
        kv.catch(() => buckets.delete(bucket));
      }
      return kv;
    },
    async close() {
      if (nc.isClosed()) return;
      try {
        await nc.drain();
      } catch {
        await nc.close();
      }
    },
  };
}
