import { hostname } from "node:os";
import type { JsMsg } from "@nats-io/jetstream";
import { KvWatchInclude, type KV } from "@nats-io/kv";
import { ACK_WAIT_MS, PermanentError, decode, encode, getRunSummary, runConsumer, sendCommand, type Bus, type Decoded, type RunningConsumer } from "@orch/bus";
import { SchedulerConfig } from "@orch/config";
import {
  Command,
  FINAL_RUN_STATUSES,
  Header,
  QueryError,
  StoredTimer,
  TIMERS_QUERY,
  TimerHead,
  TimersQuery,
  TimersResult,
  TransitionReader,
  timerHeadOf,
} from "@orch/contracts";
import type { Logger } from "@orch/logging";
import { runService } from "@orch/service";
import { ArmedTimers } from "./armed.js";
import { LeaderLease } from "./lease.js";

/**
 * How long a timer stays armed in memory only (its transition unacknowledged) before it is written:
 * a timer withdrawn sooner (a job's wall clock when the job ends in seconds) is never written.
 */
const HOLD_MS = 5_000;

/**
 * What a transition does to timers, from its `Orch-Timers` header (the scheduler's consumer delivers
 * headers only): null when nothing; `undefined` when the transition predates the header (then its
 * body is read, by stream sequence).
 */
function decodeTimers(msg: JsMsg): Decoded<TimerHead | null | undefined> {
  const h = msg.headers?.get(Header.Timers);
  if (!h) return { ok: true, value: undefined };
  try {
    return { ok: true, value: timerHeadOf(h) };
  } catch (err) {
    return { ok: false, reason: "invalid", error: `${Header.Timers}: ${(err as Error).message}` };
  }
}

/** The timers of a transition written before the header existed: from its body. */
async function timersFromBody(bus: Bus, streamSeq: number): Promise<TimerHead | null> {
  const m = await bus.jsm.direct.getMessage(bus.names.streams.runs, { seq: streamSeq });
  if (!m || !m.data.length) return null;
  const t = new TransitionReader(m.data);
  try {
    return t.headHas("timers") ? t.headAs(TimerHead) : null;
  } catch (err) {
    // Reading it again will not help: a dead letter now.
    throw new PermanentError((err as Error).message);
  }
}

/** Deliveries of one transition before it is parked: each lease handover fails what the old active one held. */
const MAX_DELIVERIES = 100;

type Subscription = ReturnType<Bus["nc"]["subscribe"]>;

/** What the active scheduler runs; a standby runs none of it. */
interface Firing {
  armed: ArmedTimers;
  consumer: RunningConsumer;
  timersQuery: Subscription;
  /** The timers bucket's writes since start. */
  watch: { stop(): void };
  closing?: Promise<void>;
}

/**
 * Arms every stored timer, then consumes the transitions (those another scheduler held unacknowledged
 * come back after their ack wait) and answers the timers query. Fires only while `active()`.
 */
async function startFiring(bus: Bus, kv: KV, logger: Logger, active: () => boolean, who: { instanceId: string; epoch: number }): Promise<Firing> {
  const armed = new ArmedTimers({
    kv,
    holdMs: HOLD_MS,
    active,
    async fire(t) {
      if (t.command) {
        // Checked by its schema here: a command that is not one is a bug in its run, logged and dropped.
        const c = Command.safeParse(t.command);
        if (!c.success) return void logger.error({ timerId: t.timerId, runId: t.runId, error: c.error.message }, "a timer's command is invalid; dropped");
        await sendCommand(bus, c.data);
        logger.debug({ timerId: t.timerId, runId: t.runId, command: c.data.type, target: c.data.runId }, "timer fired its command");
        return;
      }
      await sendCommand(bus, {
        type: "timer.fired",
        commandId: `timer:${t.timerId}`,
        runId: t.runId,
        issuedAt: Date.now(),
        actor: "scheduler",
        timerId: t.timerId,
        kind: t.kind,
        ...(t.stepId ? { stepId: t.stepId } : {}),
      });
      logger.debug({ timerId: t.timerId, runId: t.runId, kind: t.kind, lateMs: Date.now() - t.dueAt }, "timer fired");
    },
    onError: (err, timerId) => logger.warn({ err, timerId }, "timer write or fire failed; retrying"),
  });

  // Watched from before the bucket is read: a write that lands meanwhile is seen by one or the other.
  const watch = await kv.watch({ include: KvWatchInclude.UpdatesOnly, ignoreDeletes: true });
  void (async () => {
    for await (const e of watch) {
      if (e.operation !== "PUT") continue;
      const d = decode(StoredTimer, e.value);
      if (d.ok) await armed.adopt(d.value, e.revision).catch((err: unknown) => logger.warn({ err, timerId: e.key }, "could not look at a stored timer"));
    }
  })();
  try {
    let restored = 0;
    for await (const key of await kv.keys()) {
      const e = await kv.get(key);
      if (!e || e.operation !== "PUT") continue;
      const d = decode(StoredTimer, e.value);
      if (!d.ok) {
        logger.error({ timerId: key, error: d.error }, "dropping an unreadable stored timer");
        await kv.delete(key);
        continue;
      }
      armed.restore(d.value);
      restored++;
    }
    logger.info({ restored }, "timers restored");

    const consumer = await runConsumer(bus, {
      stream: bus.names.streams.runs,
      consumer: bus.names.consumers.scheduler,
      decodeMsg: decodeTimers,
      origin: "scheduler",
      // Transitions wait here until their timers are safe: many at once, each costing a few bytes.
      concurrency: 10_000,
      maxDeliveries: MAX_DELIVERIES,
      heartbeatMs: Math.floor(ACK_WAIT_MS.scheduler / 3),
      async handler(decoded, ctx) {
        const head = decoded === undefined ? await timersFromBody(bus, ctx.streamSeq) : decoded;
        const ops = head?.timers;
        if (!head || !ops?.length) return;
        // A transition seen again (a scheduler stopped before acknowledging it): a run that has
        // finished since has withdrawn whatever it set.
        if (ctx.deliveries > 1 && ops.some((t) => t.op === "set")) {
          const now = await getRunSummary(bus, head.runId);
          if (now && FINAL_RUN_STATUSES.has(now.status) && now.seq > head.seq) return;
        }
        // In stream order, synchronously: a set is armed before a later transition's cancel of it.
        const safe = ops.map((t) => (t.op === "set" ? armed.set(head.runId, t) : armed.cancel(t.timerId)));
        await Promise.all(safe);
      },
    });
    // What is armed (the API's timers): answered by the active scheduler only.
    const timersQuery = bus.nc.subscribe(bus.names.subjects.query(TIMERS_QUERY), {
      queue: "scheduler",
      callback: (_err, msg) => {
        const q = decode(TimersQuery, msg.data);
        if (!q.ok) return void msg.respond(encode(QueryError, { error: { code: "BAD_REQUEST", message: q.error } }));
        msg.respond(encode(TimersResult, { timers: armed.list(q.value.runId), scheduler: who }));
      },
    });
    return { armed, consumer, timersQuery, watch };
  } catch (err) {
    watch.stop();
    armed.abandon();
    throw err;
  }
}

/**
 * Stops firing. Stopping (SIGTERM), it finishes what it holds: transitions are acknowledged once
 * their timers are written. Having lost the lease, it stops at once: nothing more is written or
 * fired, and what it held goes back unacknowledged to the scheduler that took over.
 */
async function stopFiring(f: Firing, why: string): Promise<void> {
  if (why !== "stopping") f.armed.abandon();
  f.closing ??= (async () => {
    f.timersQuery.unsubscribe();
    await f.consumer.stop();
    f.watch.stop();
    f.armed.stop();
  })();
  await f.closing;
}

/**
 * The scheduler fires timers, and does nothing else. It reads the timers each run transition sets or
 * withdraws (the runs stream), keeps them armed in a min-heap, and when one is due publishes its
 * `timer.fired` command to the run (de-duplicated by timer id), or, for a timer that carries a
 * command (a periodic run's tick carries the create of its slot's run), that command (de-duplicated
 * by its own id, and idempotent in the core). A transition is acknowledged once its timers are safe
 * (see ArmedTimers): written to the `timers` bucket, withdrawn, or fired; so a timer survives any
 * restart (at start the bucket is armed again, and what was not yet written comes back unacked).
 *
 * Replicas may run side by side: the one holding the leader lease (see LeaderLease) does all of
 * that; the others only read the lease, and the first to see it left unrenewed for its TTL takes over.
 */
await runService({
  name: "scheduler",
  config: SchedulerConfig,
  async start({ cfg, logger, bus }) {
    const [timers, leases] = await Promise.all([bus.kv(bus.names.buckets.timers), bus.kv(bus.names.buckets.leases)]);
    const instanceId = cfg.ORCH_INSTANCE_ID ?? hostname();
    let firing: Firing | undefined;
    const lease: LeaderLease = new LeaderLease(
      { kv: leases, instanceId, ttlMs: cfg.ORCH_SCHEDULER_LEASE_TTL_MS, logger },
      {
        async acquired(epoch) {
          firing = await startFiring(bus, timers, logger, () => lease.active, { instanceId, epoch });
        },
        async lost(why) {
          const f = firing;
          if (!f) return;
          await stopFiring(f, why);
          if (firing === f) firing = undefined;
        },
      },
    );
    logger.info({ instanceId, leaseTtlMs: cfg.ORCH_SCHEDULER_LEASE_TTL_MS }, "standing by for the leader lease");
    lease.start();
    return {
      async stop() {
        await lease.stop();
      },
    };
  },
});
