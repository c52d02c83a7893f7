import type { Bus } from "@orch/bus";
import type { NumberedKind } from "@orch/contracts";
import { KeyStore } from "./key-store.js";

/**
 * The `ids` bucket, where the core keeps the numbers it assigns once, when what they name is
 * created (`NumberedKind`: seed 002's feature numbers, projects' numbers):
 *
 *   seq.<kind>          the counter (compare-and-set increments)
 *   <kind>.<key>        {n}: the number of a key (a run id, a project id)
 *   <kind>-n.<n>        {key}: whose number n is
 *
 * Only the core writes it (services/orchestrator/src/writes/numbers.ts); this reads it. A number
 * never changes once assigned, so what has been read is kept.
 */

export const numberNs = (kind: NumberedKind): string => kind;
export const keyOfNumberNs = (kind: NumberedKind): string => `${kind}-n`;

const CACHE_MAX = 10_000;

export class Numbers {
  readonly #store: KeyStore;
  readonly #of = new Map<string, number>();
  readonly #keys = new Map<string, string>();

  constructor(bus: Bus) {
    this.#store = new KeyStore(bus, bus.names.buckets.ids);
  }

  /** The number of `key`, or null when it has none. */
  async of(kind: NumberedKind, key: string): Promise<number | null> {
    const ck = `${kind}:${key}`;
    const hit = this.#of.get(ck);
    if (hit !== undefined) return hit;
    const n = (await this.#store.get<{ n: number }>(numberNs(kind), key))?.n ?? null;
    if (n !== null) remember(this.#of, ck, n);
    return n;
  }

  /** Whose number `n` is, or null. */
  async keyOf(kind: NumberedKind, n: number): Promise<string | null> {
    if (!Number.isSafeInteger(n) || n < 1) return null;
    const ck = `${kind}:${n}`;
    const hit = this.#keys.get(ck);
    if (hit !== undefined) return hit;
    const key = (await this.#store.get<{ key: string }>(keyOfNumberNs(kind), String(n)))?.key ?? null;
    if (key !== null) remember(this.#keys, ck, key);
    return key;
  }
}

function remember<V>(m: Map<string, V>, k: string, v: V): void {
  if (m.size >= CACHE_MAX) m.delete(m.keys().next().value!);
  m.set(k, v);
}
