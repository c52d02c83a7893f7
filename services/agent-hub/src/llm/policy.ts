import { isIP } from "node:net";

/**
 * Which model servers an executor may call (seed 001's policy): `ORCH_LLM_POLICY=oss` (default)
 * allows local servers only, unless `ALLOW_HOSTED_LLM=true` or the host is listed in
 * `LOCAL_LLM_ALLOWED_HOSTS`; `hosted` allows any; `locked` allows none (no model call at all).
 *
 * Local means: loopback and private addresses (IPv4 10/8, 172.16/12, 192.168/16, 127/8, 169.254/16;
 * IPv6 ::1, fc00::/7, fe80::/10), `localhost` and `*.localhost`, names ending in `.local`,
 * `.internal` or `.lan`, and single-label host names (`ollama` in a compose network). No DNS lookup is
 * made: a public name that happens to resolve to a private address still counts as hosted.
 */

export type LlmPolicyName = "oss" | "hosted" | "locked";

export interface LlmPolicy {
  policy: LlmPolicyName;
  allowHosted: boolean;
  /** Host names or `host:port`, compared case-insensitively. */
  allowedHosts: readonly string[];
}

export type PolicyVerdict = { ok: true } | { ok: false; reason: string };

function privateV4(ip: string): boolean {
  const [a, b] = ip.split(".").map(Number) as [number, number];
  return a === 127 || a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) || (a === 169 && b === 254) || a === 0;
}

function privateV6(ip: string): boolean {
  const x = ip.toLowerCase();
  if (x === "::1" || x === "::") return true;
  if (x.startsWith("::ffff:")) return privateV4(x.slice(7));
  const first = parseInt(x.split(":")[0] || "0", 16);
  return (first & 0xfe00) === 0xfc00 || (first & 0xffc0) === 0xfe80;
}

/** Whether a host (no port, no brackets) is local by the rules above. */
export function isLocalHost(host: string): boolean {
  const h = host
    .toLowerCase()
    .replace(/^\[|\]$/g, "")
    .replace(/\.$/, "");
  const v = isIP(h);
  if (v === 4) return privateV4(h);
  if (v === 6) return privateV6(h);
  if (h === "localhost" || h.endsWith(".localhost")) return true;
  if (h.endsWith(".local") || h.endsWith(".internal") || h.endsWith(".lan")) return true;
  return h.length > 0 && !h.includes(".");
}

/** Decides whether `url` may be called under `p`. */
export function checkEndpoint(url: string, p: LlmPolicy): PolicyVerdict {
  if (p.policy === "locked") return { ok: false, reason: "ORCH_LLM_POLICY=locked: no model calls are made" };
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return { ok: false, reason: `${JSON.stringify(url)} is not a URL` };
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") return { ok: false, reason: `${u.protocol} URLs are not model servers` };
  if (p.policy === "hosted" || p.allowHosted) return { ok: true };
  const host = u.hostname.replace(/^\[|\]$/g, "").toLowerCase();
  const hostPort = `${host}:${u.port || (u.protocol === "https:" ? "443" : "80")}`;
  const allowed = p.allowedHosts.map((h) => h.toLowerCase());
  if (allowed.includes(host) || allowed.includes(hostPort) || allowed.includes(u.host.toLowerCase())) return { ok: true };
  if (isLocalHost(host)) return { ok: true };
  return {
    ok: false,
    reason: `${u.host} is not a local model server: ORCH_LLM_POLICY=oss refuses it (set ALLOW_HOSTED_LLM=true, or add the host to LOCAL_LLM_ALLOWED_HOSTS)`,
  };
}

/** The policy the agent hub's configuration sets. */
export function policyFromConfig(cfg: { ORCH_LLM_POLICY: LlmPolicyName; ALLOW_HOSTED_LLM: boolean; LOCAL_LLM_ALLOWED_HOSTS: readonly string[] }): LlmPolicy {
  return { policy: cfg.ORCH_LLM_POLICY, allowHosted: cfg.ALLOW_HOSTED_LLM, allowedHosts: cfg.LOCAL_LLM_ALLOWED_HOSTS };
}
