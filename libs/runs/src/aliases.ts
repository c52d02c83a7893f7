import { createHash } from "node:crypto";
import type { Bus } from "@orch/bus";

/**
 * Seed surfaces' own ids, kept in the `aliases` bucket: counters (seed 004's integer ids, seed 002's
 * feature numbers), alias → target maps (an integer id → its run, a seed 001 task id → its run and
 * step) and once-only claims (webhook delivery ids). Counters are compare-and-set increments, so two
 * gateways never hand out the same number.
 */

const SAFE = /^[A-Za-z0-9_-]{1,200}$/;

/**
 * A KV-safe key part for any string: itself when it is plain, else `=` + base64url (`=` is a legal
 * key character that base64url never produces, so the forms cannot collide), or, for a string too
 * long for a key, `==` + its SHA-256.
 */
export function keyPart(s: string): string {
  if (SAFE.test(s)) return s;
  const b64 = Buffer.from(s, "utf8").toString("base64url");
  return b64.length <= 600 ? `=${b64}` : `==${createHash("sha256").update(s, "utf8").digest("hex")}`;
}

const NS = /^[a-z][a-z0-9_-]{0,40}$/;

export class Aliases {
  readonly #bus: Bus;
  constructor(bus: Bus) {
    this.#bus = bus;
  }

  #kv() {
    return this.#bus.kv(this.#bus.names.buckets.aliases);
  }

  #key(ns: string, alias: string): string {
    if (!NS.test(ns)) throw new Error(`bad alias namespace '${ns}'`);
    return `${ns}.${keyPart(alias)}`;
  }

  /** The next number of a counter (1, 2, 3, …). */
  async next(counter: string): Promise<number> {
    const kv = await this.#kv();
    const key = this.#key("seq", counter);
    for (let i = 0; i < 100; i++) {
      const e = await kv.get(key);
      const cur = e && e.operation === "PUT" ? Number(e.string()) : 0;
      const n = (Number.isSafeInteger(cur) ? cur : 0) + 1;
      try {
        if (!e || e.operation !== "PUT") await kv.create(key, String(n));
        else await kv.update(key, String(n), e.revision);
        return n;
      } catch (err) {
        if (!/wrong last sequence|key exists/i.test((err as Error).message)) throw err;
      }
    }
    throw new Error(`counter ${counter} is too contended`);
  }

  /** Points an alias at a target (overwrites). */
  async put<T>(ns: string, alias: string, target: T): Promise<void> {
    await (await this.#kv()).put(this.#key(ns, alias), JSON.stringify(target));
  }

  /** Points an alias at a target unless it already points somewhere: returns the target it has. */
  async claim<T>(ns: string, alias: string, target: T): Promise<{ created: boolean; target: T }> {
    const kv = await this.#kv();
    const key = this.#key(ns, alias);
    try {
      await kv.create(key, JSON.stringify(target));
      return { created: true, target };
    } catch (err) {
      if (!/wrong last sequence|key exists/i.test((err as Error).message)) throw err;
      const existing = await this.get<T>(ns, alias);
      return { created: false, target: existing ?? target };
    }
  }

  async get<T>(ns: string, alias: string): Promise<T | null> {
    const e = await (await this.#kv()).get(this.#key(ns, alias));
    if (!e || e.operation !== "PUT" || e.length === 0) return null;
    try {
      return JSON.parse(e.string()) as T;
    } catch {
      return null;
    }
  }

  async delete(ns: string, alias: string): Promise<void> {
    await (await this.#kv()).delete(this.#key(ns, alias));
  }

  /** Every alias of a namespace with its target (small namespaces only: ids of one surface). */
  async entries<T>(ns: string): Promise<{ alias: string; target: T }[]> {
    const kv = await this.#kv();
    const out: { alias: string; target: T }[] = [];
    const keys: string[] = [];
    for await (const k of await kv.keys(`${ns}.>`)) keys.push(k);
    for (const k of keys) {
      const part = k.slice(ns.length + 1);
      // A hashed alias (`==`) cannot be turned back: it is listed as its key.
      const alias = part.startsWith("=") && !part.startsWith("==") ? Buffer.from(part.slice(1), "base64url").toString("utf8") : part;
      const t = await this.get<T>(ns, alias);
      if (t !== null) out.push({ alias, target: t });
    }
    return out;
  }
}
