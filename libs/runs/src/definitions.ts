import { decode, type Bus } from "@orch/bus";
import type { DefinitionSummary } from "@orch/contracts";
import { builtinDefinitions, builtinVersions, compileDefinition, Definition, DefinitionError, definitionKey, type CompiledDefinition } from "@orch/engine";

/**
 * Workflow definitions: the built-ins (code) and versions stored in the `defs` bucket, one key per
 * `<id>.<version>`, created once and never overwritten, so a run's (id, version) always means the
 * same thing. Only the core writes the bucket (services/orchestrator/src/writes/definitions.ts; an
 * edge asks it to, `CoreWrites.putDefinition`); this reads it. Compiled definitions are cached for
 * good (they cannot change); "latest version of id" is cached for a few seconds.
 */

export class DefinitionNotFoundError extends Error {
  override readonly name = "DefinitionNotFoundError";
  readonly code = "NOT_FOUND";
}

export class DefinitionConflictError extends Error {
  override readonly name = "DefinitionConflictError";
  readonly code = "CONFLICT";
}

export type { DefinitionSummary } from "@orch/contracts";

const LATEST_TTL_MS = 2_000;
/** A definition version's key in the `defs` bucket. */
export const definitionKvKey = (id: string, version: number) => `${id}.${version}`;

export class DefinitionStore {
  readonly #bus: Bus;
  readonly #compiled = new Map<string, CompiledDefinition>();
  readonly #latest = new Map<string, { version: number; at: number }>();

  constructor(bus: Bus) {
    this.#bus = bus;
    for (const c of builtinVersions()) this.#compiled.set(c.key, c);
  }

  async #kv() {
    return this.#bus.kv(this.#bus.names.buckets.defs);
  }

  /** The definition of a run: a given version, or the latest. */
  async get(ref: { id: string; version?: number | undefined }): Promise<CompiledDefinition> {
    const version = ref.version ?? (await this.latestVersion(ref.id));
    if (version === undefined) throw new DefinitionNotFoundError(`no workflow definition '${ref.id}'`);
    const key = definitionKey(ref.id, version);
    const hit = this.#compiled.get(key);
    if (hit) return hit;
    const e = await (await this.#kv()).get(definitionKvKey(ref.id, version));
    if (!e || e.operation !== "PUT") throw new DefinitionNotFoundError(`no workflow definition '${key}'`);
    const d = decode(Definition, e.value);
    if (!d.ok) throw new DefinitionError(`stored definition ${key} is unreadable: ${d.error}`);
    const c = compileDefinition(d.value);
    this.#compiled.set(key, c);
    return c;
  }

  async latestVersion(id: string): Promise<number | undefined> {
    const cached = this.#latest.get(id);
    if (cached && Date.now() - cached.at < LATEST_TTL_MS) return cached.version;
    let best = builtinDefinitions().get(id)?.def.version;
    for await (const k of await (await this.#kv()).keys(`${id}.*`)) {
      const v = Number(k.slice(id.length + 1));
      if (Number.isInteger(v) && (best === undefined || v > best)) best = v;
    }
    if (best !== undefined) this.#latest.set(id, { version: best, at: Date.now() });
    return best;
  }

  /**
   * Forgets what it knows of `id`'s latest version: the core calls it when it has stored a version,
   * an edge when the core says it has.
   */
  forgetLatest(id: string): void {
    this.#latest.delete(id);
  }

  /** Whether `c` is the built-in of its id (not a stored version). */
  isBuiltin(c: CompiledDefinition): boolean {
    return builtinDefinitions().get(c.def.id)?.key === c.key;
  }

  async list(): Promise<DefinitionSummary[]> {
    const out = new Map<string, DefinitionSummary>();
    for (const c of builtinDefinitions().values()) out.set(c.key, definitionSummaryOf(c, true));
    for await (const k of await (await this.#kv()).keys()) {
      const m = /^(.+)\.(\d+)$/.exec(k);
      if (!m) continue;
      const c = await this.get({ id: m[1]!, version: Number(m[2]) }).catch(() => undefined);
      if (c) out.set(c.key, definitionSummaryOf(c, false));
    }
    return [...out.values()].sort((a, b) => a.id.localeCompare(b.id) || a.version - b.version);
  }
}

export function definitionSummaryOf(c: CompiledDefinition, builtin: boolean): DefinitionSummary {
  return {
    id: c.def.id,
    version: c.def.version,
    ...(c.def.title !== undefined ? { title: c.def.title } : {}),
    view: c.def.view,
    source: builtin ? "builtin" : "stored",
    hash: c.hash,
  };
}
