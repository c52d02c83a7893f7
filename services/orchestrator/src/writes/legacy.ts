import { JetStreamApiError } from "@nats-io/jetstream";
import { isCasConflict, type Bus } from "@orch/bus";
import { kvStreamOf } from "@orch/contracts";
import type { Logger } from "@orch/logging";
import type { NumberWriter } from "./numbers.js";

/**
 * Carries over what an earlier version kept in the `aliases` bucket (one bucket for every seed
 * surface's ids, written by the gateway), when there is one, so an upgrade renumbers nothing that
 * named something durable:
 *
 * - counters: seed 002's feature numbers (`seq.speckit-feature`: a new feature never reuses a branch
 *   name) and seed 004's project numbers (`seq.project`) become floors of the `ids` counters;
 * - seed 004's project numbers of projects made through other surfaces (`tg-project-of.<id>`) are
 *   bound in `ids` (projects made through seed 004 carry theirs on their record);
 * - seed 001's tasks (`s001*` records, queue and slots, and their counters) are copied to `tasks`.
 *
 * Every write is a create or a floor, never an overwrite, so it is safe to run at every start and on
 * every replica at once; the old bucket is read, never changed (delete it once every service runs
 * this version). Seed 004's protocol and step numbers are derived now (run-numbers.ts): the old
 * ones are not carried over. Webhook delivery claims are not either: they are only kept for days.
 */
export async function importLegacyAliases(bus: Bus, numbers: NumberWriter, log: Logger): Promise<void> {
  const name = bus.names.legacyBuckets.aliases;
  try {
    await bus.jsm.streams.info(kvStreamOf(name));
  } catch (err) {
    if (err instanceof JetStreamApiError && err.status === 404) return;
    throw err;
  }
  const old = await bus.kv(name);
  const tasks = await bus.kv(bus.names.buckets.tasks);
  const keys: string[] = [];
  for await (const k of await old.keys()) keys.push(k);
  let copied = 0;
  let bound = 0;
  for (const key of keys) {
    const e = await old.get(key);
    if (!e || e.operation !== "PUT" || e.length === 0) continue;
    const dot = key.indexOf(".");
    const ns = key.slice(0, dot);
    const part = key.slice(dot + 1);
    if (ns === "seq") {
      const n = Number(e.string());
      if (!Number.isSafeInteger(n) || n < 1) continue;
      if (part === "speckit-feature") await numbers.atLeast("feature", n);
      else if (part === "project") await numbers.atLeast("project", n);
      else if (part.startsWith("s001")) await floor(tasks, key, n);
    } else if (ns === "tg-project-of" && !part.startsWith("=")) {
      const n = (JSON.parse(e.string()) as { n?: unknown }).n;
      if (typeof n === "number" && Number.isSafeInteger(n) && n > 0) {
        await numbers.bind("project", part, n);
        bound++;
      }
    } else if (ns.startsWith("s001")) {
      try {
        await tasks.create(key, e.value);
        copied++;
      } catch (err) {
        if (!isCasConflict(err)) throw err;
      }
    }
  }
  if (copied > 0 || bound > 0) log.info({ bucket: name, tasks: copied, projects: bound }, "carried the old aliases bucket over");
}

/** Raises a plain counter key of the `tasks` bucket to at least `n`. */
async function floor(kv: Awaited<ReturnType<Bus["kv"]>>, key: string, n: number): Promise<void> {
  for (let i = 0; i < 50; i++) {
    const e = await kv.get(key);
    const cur = e && e.operation === "PUT" ? Number(e.string()) : 0;
    if (Number.isSafeInteger(cur) && cur >= n) return;
    try {
      if (!e || e.operation !== "PUT") await kv.create(key, String(n));
      else await kv.update(key, String(n), e.revision);
      return;
    } catch (err) {
      if (!isCasConflict(err)) throw err;
    }
  }
}
