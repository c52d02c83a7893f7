/**
 * Secrets handed to a CLI come back in what it prints whenever the agent looks (`env`, a config
 * dump, an error quoting a header): every string that leaves a harness run, in session events and
 * in logs, has them replaced first.
 */

export const REDACTED = "[redacted]";

/** Values shorter than this are not treated as secrets (they would blank ordinary words). */
const MIN_SECRET_LENGTH = 6;

export type Redactor = <T>(value: T) => T;

export function redactor(secrets: readonly (string | undefined)[]): Redactor {
  const list = [...new Set(secrets.filter((s): s is string => typeof s === "string" && s.length >= MIN_SECRET_LENGTH))].sort((a, b) => b.length - a.length);
  if (list.length === 0) return <T>(v: T) => v;
  const text = (s: string): string => {
    let out = s;
    for (const secret of list) if (out.includes(secret)) out = out.split(secret).join(REDACTED);
    return out;
  };
  const walk = (v: unknown): unknown => {
    if (typeof v === "string") return text(v);
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === "object") {
      const o: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) o[k] = walk(x);
      return o;
    }
    return v;
  };
  return <T>(v: T) => walk(v) as T;
}
