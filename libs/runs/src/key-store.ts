import { createHash } from "node:crypto";
import { isCasConflict, type Bus } from "@orch/bus";

/**
 * Namespaced keys in one KV bucket (`<namespace>.<key part>`): counters, records and once-only
 * claims. Counters are compare-and-set increments, and claims compare-and-set creates, so two
 * processes never hand out the same number or both win the same claim. The bucket says what it is
 * for (`tasks`, `deliveries`, `ids`: names.ts); this only shapes its keys.
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

/** How often a counter's increment is tried again after losing a race. */
const CAS_TRIES = 100;

export class KeyStore {
  readonly #bus: Bus;
  readonly #bucket: string;
  constructor(bus: Bus, bucket: string) {
    this.#bus = bus;
    this.#bucket = bucket;
  }

  #kv() {
    return this.#bus.kv(this.#bucket);
  }

  #key(ns: string, key: string): string {
    if (!NS.test(ns)) throw new Error(`bad key namespace '${ns}'`);
    return `${ns}.${keyPart(key)}`;
  }

  /** The next number of a counter (1, 2, 3, …). */
  async next(counter: string): Promise<number> {
    const kv = await this.#kv();
    const key = this.#key("seq", counter);
    for (let i = 0; i < CAS_TRIES; i++) {
      const e = await kv.get(key);
      const cur = e && e.operation === "PUT" ? Number(e.string()) : 0;
      const n = (Number.isSafeInteger(cur) ? cur : 0) + 1;
      try {
        if (!e || e.operation !== "PUT") await kv.create(key, String(n));
        else await kv.update(key, String(n), e.revision);
        return n;
      } catch (err) {
        if (!isCasConflict(err)) throw err;
      }
    }
    throw new Error(`counter ${counter} is too contended`);
  }

  /** A counter's current value (0 before its first number), without taking one. */
  async current(counter: string): Promise<number> {
    const e = await (await this.#kv()).get(this.#key("seq", counter));
    const n = e && e.operation === "PUT" ? Number(e.string()) : 0;
    return Number.isSafeInteger(n) ? n : 0;
  }

  /** Raises a counter to at least `n` (numbers handed out before it existed are not handed out again). */
  async atLeast(counter: string, n: number): Promise<void> {
    const kv = await this.#kv();
    const key = this.#key("seq", counter);
    for (let i = 0; i < CAS_TRIES; i++) {
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
    throw new Error(`counter ${counter} is too contended`);
  }

  /** Sets a key (overwrites). */
  async put<T>(ns: string, key: string, value: T): Promise<void> {
    await (await this.#kv()).put(this.#key(ns, key), JSON.stringify(value));
  }

  /** Sets a key unless it is set already: returns the value it has. */
  async claim<T>(ns: string, key: string, value: T): Promise<{ created: boolean; value: T }> {
    const kv = await this.#kv();
    try {
      await kv.create(this.#key(ns, key), JSON.stringify(value));
      return { created: true, value };
    } catch (err) {
      if (!isCasConflict(err)) throw err;
      const existing = await this.get<T>(ns, key);
      return { created: false, value: existing ?? value };
    }
  }

  async get<T>(ns: string, key: string): Promise<T | null> {
    const e = await (await this.#kv()).get(this.#key(ns, key));
    if (!e || e.operation !== "PUT" || e.length === 0) return null;
    try {
      return JSON.parse(e.string()) as T;
    } catch {
      return null;
    }
  }

  async delete(ns: string, key: string): Promise<void> {
    await (await this.#kv()).delete(this.#key(ns, key));
  }

  /** Every key of a namespace with its value (small namespaces only). */
  async entries<T>(ns: string): Promise<{ key: string; value: T }[]> {
    const kv = await this.#kv();
    const out: { key: string; value: T }[] = [];
    const keys: string[] = [];
    for await (const k of await kv.keys(`${ns}.>`)) keys.push(k);
    for (const k of keys) {
      const part = k.slice(ns.length + 1);
      // A hashed key (`==`) cannot be turned back: it is listed as it is stored.
      const key = part.startsWith("=") && !part.startsWith("==") ? Buffer.from(part.slice(1), "base64url").toString("utf8") : part;
      const v = await this.get<T>(ns, key);
      if (v !== null) out.push({ key, value: v });
    }
    return out;
  }
}
