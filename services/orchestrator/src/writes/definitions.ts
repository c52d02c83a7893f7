import { encode, isCasConflict, type Bus } from "@orch/bus";
import type { DefinitionSummary } from "@orch/contracts";
import { compileDefinition, Definition, parseDefinition } from "@orch/engine";
import { DefinitionConflictError, DefinitionNotFoundError, definitionKvKey, definitionSummaryOf, type DefinitionStore } from "@orch/runs";

/**
 * Publishing a definition version: only the core writes the `defs` bucket. The input is validated
 * here (a `DefinitionError` lists what is wrong), then created once under `<id>.<version>`: the same
 * content again is a no-op (`created: false`), other content under an existing version is refused
 * (`DefinitionConflictError`: versions are immutable, publish the next one). Two replicas publishing
 * the same version at once: one create wins, the other reads what won and answers as above.
 */
const CAS_TRIES = 5;

export class DefinitionWriter {
  readonly #bus: Bus;
  readonly #store: DefinitionStore;

  constructor(bus: Bus, store: DefinitionStore) {
    this.#bus = bus;
    this.#store = store;
  }

  async put(input: unknown): Promise<{ created: boolean; summary: DefinitionSummary }> {
    const def = parseDefinition(input);
    const c = compileDefinition(def);
    for (let attempt = 0; ; attempt++) {
      const existing = await this.#store.get({ id: def.id, version: def.version }).catch((err: unknown) => {
        if (err instanceof DefinitionNotFoundError) return undefined;
        throw err;
      });
      if (existing) {
        if (existing.hash !== c.hash) {
          throw new DefinitionConflictError(`${c.key} exists with different content; definitions are immutable: publish version ${def.version + 1}`);
        }
        return { created: false, summary: definitionSummaryOf(existing, this.#store.isBuiltin(existing)) };
      }
      try {
        await (await this.#bus.kv(this.#bus.names.buckets.defs)).create(definitionKvKey(def.id, def.version), encode(Definition, def));
      } catch (err) {
        // Someone stored this version meanwhile: compare with what they stored.
        if (isCasConflict(err) && attempt < CAS_TRIES) continue;
        throw err;
      }
      this.#store.forgetLatest(def.id);
      return { created: true, summary: definitionSummaryOf(c, false) };
    }
  }
}
