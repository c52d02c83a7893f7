import type { Bus } from "@orch/bus";
import type { NumberedKind } from "@orch/contracts";
import { KeyStore, keyOfNumberNs, numberNs } from "@orch/runs";

/**
 * The numbers the core assigns, in the `ids` bucket (layout: libs/runs/src/numbers.ts): a key's
 * number is the next of its kind's counter, claimed for the key with a compare-and-set create, so
 * asking again (a retry, another replica, a second gateway) answers the number it already has. A
 * number lost to a race for the same key is never handed out again (numbers may skip, never repeat).
 */
export class NumberWriter {
  readonly #store: KeyStore;

  constructor(bus: Bus) {
    this.#store = new KeyStore(bus, bus.names.buckets.ids);
  }

  /** The number of `key`: the one it has, else a new one. */
  async assign(kind: NumberedKind, key: string): Promise<number> {
    const have = await this.#store.get<{ n: number }>(numberNs(kind), key);
    if (have) {
      await this.#reverse(kind, have.n, key);
      return have.n;
    }
    return this.bind(kind, key, await this.#store.next(kind));
  }

  /** A fresh number of `kind`, for something whose key is made from it (`project-<n>`): `bind` it then. */
  next(kind: NumberedKind): Promise<number> {
    return this.#store.next(kind);
  }

  /** Gives `key` the number `n` unless it has one: answers the number it has. */
  async bind(kind: NumberedKind, key: string, n: number): Promise<number> {
    const { value } = await this.#store.claim(numberNs(kind), key, { n });
    await this.#reverse(kind, value.n, key);
    return value.n;
  }

  /** Raises `kind`'s counter to at least `n`, so numbers given before it existed are not given again. */
  atLeast(kind: NumberedKind, n: number): Promise<void> {
    return this.#store.atLeast(kind, n);
  }

  /** Whose number `n` is: written once (by whoever wrote the key's number first). */
  async #reverse(kind: NumberedKind, n: number, key: string): Promise<void> {
    await this.#store.claim(keyOfNumberNs(kind), String(n), { key });
  }
}
