/**
 * What must never reach the supervisor's model: secret values. Three nets, applied to every string
 * of what the prompt is built from (before anything is cut, so a secret is never half-kept) and to
 * the prompt again as a whole:
 *
 *   1. values the hub knows are secrets (its environment's keys and tokens, `secretsOf`);
 *   2. values under keys named like secrets (`apiKey`, `password`, `accessToken`, `authorization`;
 *      not `tokens`, `maxTokens`, `tokensIn`: counts are not secrets);
 *   3. text shaped like a credential: provider key prefixes (`sk-`, `ghp_`, `github_pat_`,
 *      `glpat-`, `xox?-`, `AKIA`), bearer tokens, a URL's user:password, PEM private keys, and
 *      `password=…`-style assignments.
 */

export const REDACTED = "[REDACTED]";

/** Words that make a key name a secret's (matched against the key split into words). */
const SECRET_WORDS = new Set(["token", "secret", "password", "passwd", "passphrase", "apikey", "credential", "credentials", "authorization", "cookie"]);
const SECRET_PAIRS = [
  ["api", "key"],
  ["private", "key"],
  ["access", "key"],
  ["client", "secret"],
];

/** `apiKey`, `API_KEY`, `x-api-key` → `["api", "key"]`. */
function words(key: string): string[] {
  return key
    .replace(/([a-z0-9])([A-Z])/g, "$1 $2")
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
    .map((w) => w.toLowerCase());
}

/** Whether a key names a secret (`githubToken`, `db_password`, `Authorization`), not a count (`maxTokens`). */
export function isSecretKey(key: string): boolean {
  const w = words(key);
  if (w.some((x) => SECRET_WORDS.has(x))) return true;
  for (let i = 0; i + 1 < w.length; i++) if (SECRET_PAIRS.some(([a, b]) => w[i] === a && w[i + 1] === b)) return true;
  return false;
}

const PATTERNS: [RegExp, string][] = [
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)/g, REDACTED],
  [/\b(sk-(?:or-|proj-|ant-)?[A-Za-z0-9_-]{16,})/g, REDACTED],
  [/\b(gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|glpat-[A-Za-z0-9_-]{16,}|xox[abprs]-[A-Za-z0-9-]{10,}|AKIA[0-9A-Z]{16})\b/g, REDACTED],
  [/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{12,}/gi, `$1 ${REDACTED}`],
  [/\b([a-z][a-z0-9+.-]*:\/\/)[^/\s:@]+:[^/\s@]+@/gi, `$1${REDACTED}@`],
  [/\b((?:api[_-]?key|access[_-]?token|auth[_-]?token|token|secret|password|passwd)\s*[=:]\s*)("[^"]*"|'[^']*'|[^\s,;&]+)/gi, `$1${REDACTED}`],
];

export type Redact = <T>(value: T) => T;

/**
 * A redactor for the secrets the hub knows (values shorter than 6 characters are ignored: they
 * would mangle ordinary words). It walks objects and arrays, returning new ones.
 */
export function secretRedactor(secrets: readonly string[]): Redact {
  const known = [...new Set(secrets.filter((s) => typeof s === "string" && s.length >= 6))].sort((a, b) => b.length - a.length);
  const text = (s: string): string => {
    let out = s;
    for (const secret of known) if (out.includes(secret)) out = out.split(secret).join(REDACTED);
    for (const [re, by] of PATTERNS) out = out.replace(re, by);
    return out;
  };
  const walk = (v: unknown, depth: number): unknown => {
    if (typeof v === "string") return text(v);
    if (depth > 64 || v === null || typeof v !== "object") return v;
    if (Array.isArray(v)) return v.map((x) => walk(x, depth + 1));
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v))
      out[k] = isSecretKey(k) && x !== null && x !== undefined && x !== "" && typeof x !== "boolean" ? REDACTED : walk(x, depth + 1);
    return out;
  };
  return <T>(value: T) => walk(value, 0) as T;
}
