import { connectBus, topologyFromConfig, waitForTopology, type Bus, type TopologySpec } from "@orch/bus";
import { ConfigError, configFileUsed, loadConfig, startupNotices, type CommonConfig } from "@orch/config";
import { createLogger, type Logger } from "@orch/logging";
import type { z } from "zod";

export interface ServiceContext<C> {
  cfg: C;
  logger: Logger;
  bus: Bus;
  topology: TopologySpec;
  /** Aborted when the process is asked to stop. */
  signal: AbortSignal;
}

export interface Running {
  stop(): Promise<void>;
}

export interface ServiceDefinition<S extends z.ZodType<CommonConfig>> {
  /** `gateway`, `orchestrator`, … : the `service` field of every log line. */
  name: string;
  config: S;
  /** Wait until the event-bus has provisioned the topology before `start` (default true). */
  waitForTopology?: boolean;
  start(ctx: ServiceContext<Readonly<z.output<S>>>): Promise<Running>;
}

const STOP_TIMEOUT_MS = 10_000;

/**
 * Boots a service the way every one of them boots: configuration validated once (a bad setting
 * is one clear message and exit code 2, not a stack trace), a JSON logger, a NATS connection, the
 * topology awaited, then `start`. SIGTERM or SIGINT stops it within a bounded time.
 */
export async function runService<S extends z.ZodType<CommonConfig>>(def: ServiceDefinition<S>): Promise<void> {
  let cfg: Readonly<z.output<S>>;
  try {
    cfg = loadConfig(def.config);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`orch-${def.name}: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger({ service: def.name, level: cfg.ORCH_LOG_LEVEL });
  // Lifecycle lines (starting, ready, stopping, stopped) are written whatever the level, unless
  // logging is silenced: operators and supervisors read them to know where a process is.
  const lifecycle = cfg.ORCH_LOG_LEVEL === "silent" ? logger : logger.child({}, { level: "info" });
  const file = configFileUsed();
  if (file) {
    lifecycle.info(
      { path: file.path, settings: Object.keys(file.values), created: file.created },
      file.created ? "configuration file created with the defaults" : "configuration file read",
    );
    for (const r of file.refused) logger.warn({ path: file.path, key: r.key }, `configuration key ${r.key} not applied: ${r.reason}`);
  }
  // Other software's variables the seeds name (DATABASE_URL, …): ignored, and said so once.
  for (const n of startupNotices(def.name)) logger.warn({ variable: n.variable }, n.message);
  process.on("uncaughtException", (err) => {
    logger.fatal({ err }, "uncaught exception");
    process.exit(1);
  });
  process.on("unhandledRejection", (err) => {
    logger.fatal({ err }, "unhandled promise rejection");
    process.exit(1);
  });

  const ac = new AbortController();
  let running: Running | undefined;
  let starting: Promise<Running> | undefined;
  let bus: Bus | undefined;
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    lifecycle.info({ signal }, "stopping");
    ac.abort();
    const timer = setTimeout(() => {
      logger.error("did not stop in time; exiting");
      process.exit(1);
    }, STOP_TIMEOUT_MS);
    timer.unref();
    try {
      // Stopped while still starting: let `start` finish (or fail) first, then stop what it started,
      // and only then close the connection it is using.
      if (!running && starting) running = await starting.catch(() => undefined);
      await running?.stop();
      await bus?.close();
    } catch (err) {
      logger.error({ err }, "error while stopping");
    }
    lifecycle.info("stopped");
    process.exit(0);
  };
  // `on`, not `once`: Ctrl-C under the dev runner delivers SIGINT and then SIGTERM; a second signal
  // must not kill the process half-way through stopping.
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));

  lifecycle.info({ nats: cfg.ORCH_NATS_URL.replace(/\/\/[^@/]*@/, "//[redacted]@"), prefix: cfg.ORCH_NATS_PREFIX }, "starting");
  try {
    bus = await connectBus({ url: cfg.ORCH_NATS_URL, name: `orch-${def.name}`, prefix: cfg.ORCH_NATS_PREFIX, logger });
    const topology = topologyFromConfig(bus.names, cfg);
    if (def.waitForTopology !== false) await waitForTopology(bus, topology, { signal: ac.signal });
    if (stopping) return;
    starting = def.start({ cfg, logger, bus, topology, signal: ac.signal });
    running = await starting;
  } catch (err) {
    // A start cut short by SIGTERM/SIGINT (the wait aborted, the connection closing): `stop` has
    // it in hand and exits cleanly; only a start that failed on its own is fatal.
    if (stopping) return;
    throw err;
  }
  if (stopping) return;
  lifecycle.info("ready");
}
