/**
 * Content hashes for definitions and step outputs (approval revisions): canonical JSON (object keys
 * sorted) through 64-bit FNV-1a. Pure JS, so the engine stays free of runtime-specific modules; these
 * hashes detect change, they are not a security boundary.
 */

export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== "object") return JSON.stringify(v) ?? "null";
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
  const keys = Object.keys(v)
    .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`).join(",")}}`;
}

/** Two 32-bit FNV-1a lanes (different offsets) side by side: 64 bits without BigInt's cost. */
export function fnv1a64(s: string): string {
  let a = 0x811c9dc5;
  let b = 0x050c5d1f;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x01000193);
  }
  return (a >>> 0).toString(16).padStart(8, "0") + (b >>> 0).toString(16).padStart(8, "0");
}

export const hashJson = (v: unknown): string => fnv1a64(canonicalJson(v));
