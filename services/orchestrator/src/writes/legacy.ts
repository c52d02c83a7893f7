import { JetStreamApiError } from "@nats-io/jetstream";
import type { Bus } from "@orch/bus";
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
 *   bound in `ids` (projects made through seed 004 carry theirs on their record).
 *
 * Every write is a create or a floor, never an overwrite, so it is safe to run at every start and on
 * every replica at once; the old bucket is read, never changed (delete it once every service runs
 * this version). Seed 004's protocol and step numbers are derived now (run-numbers.ts): the old
 * ones are not carried over. Webhook delivery claims are not either: they are only kept for days.
 * Nor are seed 001's task records (`s001*`): tasks are steps of their runs now, and the queue a
 * projection of the runs (the runs those records named are still listed, their tasks with them).
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
  const keys: string[] = [];
  for await (const k of await old.keys()) keys.push(k);
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
    } else if (ns === "tg-project-of" && !part.startsWith("=")) {
      const n = (JSON.parse(e.string()) as { n?: unknown }).n;
      if (typeof n === "number" && Number.isSafeInteger(n) && n > 0) {
        await numbers.bind("project", part, n);
        bound++;
      }
    }
  }
  if (bound > 0) log.info({ bucket: name, projects: bound }, "carried the old aliases bucket over");
}
