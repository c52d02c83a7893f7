import { verify as verifyHubSignature } from "@octokit/webhooks-methods";
import { createHash, timingSafeEqual } from "node:crypto";
import { type HeaderValue, type WebhookHeaders, headerValues } from "./headers.js";

/**
 * Who sent a webhook is proved by a shared secret (seed 004: `TASKSGODZILLA_WEBHOOK_TOKEN`):
 * - GitHub signs the body: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body bytes>`.
 * - GitLab sends the secret itself in `X-Gitlab-Token`.
 * Both are compared in constant time. The route answers 401 on any failure ("Invalid webhook
 * signature" for GitHub, "Invalid webhook token" for GitLab); the reason is for logs and metrics.
 *
 * The secret must be non-empty: a route with no secret configured does not call these at all (the
 * original accepts every delivery then), so an empty one is a programming error and throws.
 */
export type WebhookProvider = "github" | "gitlab";
export type VerifyFailure = "missing_signature" | "bad_signature" | "missing_token" | "bad_token";
export type Verdict = { ok: true } | { ok: false; reason: VerifyFailure };

export const GITHUB_SIGNATURE_HEADER = "x-hub-signature-256";
export const GITLAB_TOKEN_HEADER = "x-gitlab-token";

const OK: Verdict = Object.freeze({ ok: true });
const fail = (reason: VerifyFailure): Verdict => ({ ok: false, reason });

/** `sha256=` and 64 hex digits: anything else cannot match, so it is refused before any HMAC. */
const SIGNATURE = /^sha256=([0-9a-fA-F]{64})$/;

/** Exact bytes in, exact string out, or `undefined`: no replacement characters, and a BOM is kept. */
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function requireSecret(secret: string): void {
  if (typeof secret !== "string" || secret.length === 0) throw new TypeError("webhook secret must be a non-empty string");
}

/** A single value, or why not: absent/blank is "missing", several values are refused. */
function single(v: HeaderValue): { value: string } | "missing" | "ambiguous" {
  const values = (v === undefined ? [] : typeof v === "string" ? [v] : v).filter((x) => typeof x === "string" && x.trim() !== "");
  if (values.length === 0) return "missing";
  if (values.length > 1) return "ambiguous";
  return { value: values[0]!.trim() };
}

/**
 * GitHub's `X-Hub-Signature-256` over the raw body, exactly as received: pass the bytes (a Buffer)
 * before any JSON parsing, never a re-serialized object. The comparison is @octokit/webhooks-methods'
 * `verify` (HMAC-SHA256, `timingSafeEqual`). It takes a string, so bytes are decoded first, strictly:
 * GitHub's payloads are UTF-8 JSON, and a body that is not valid UTF-8 (which a lenient decode would
 * turn into U+FFFD, letting two different bodies share one signature) is refused as `bad_signature`,
 * as is an empty body (octokit refuses to sign one; GitHub never sends one).
 */
export async function verifyGitHubSignature(secret: string, rawBody: string | Uint8Array, signature: HeaderValue): Promise<Verdict> {
  requireSecret(secret);
  const sig = single(signature);
  if (sig === "missing") return fail("missing_signature");
  if (sig === "ambiguous") return fail("bad_signature");
  const m = SIGNATURE.exec(sig.value);
  if (!m) return fail("bad_signature");
  let payload: string;
  if (typeof rawBody === "string") payload = rawBody;
  else {
    try {
      payload = utf8.decode(rawBody);
    } catch {
      return fail("bad_signature");
    }
  }
  if (payload.length === 0) return fail("bad_signature");
  try {
    return (await verifyHubSignature(secret, payload, `sha256=${m[1]!.toLowerCase()}`)) ? OK : fail("bad_signature");
  } catch {
    return fail("bad_signature");
  }
}

const sha256 = (s: string): Buffer => createHash("sha256").update(s, "utf8").digest();

/**
 * GitLab's `X-Gitlab-Token` against the secret. Both sides are hashed with SHA-256 first, so
 * `timingSafeEqual` always compares 32 bytes: neither a length check nor an early return tells a
 * caller how long the secret is or how much of it they got right.
 */
export function verifyGitLabToken(secret: string, token: HeaderValue): Verdict {
  requireSecret(secret);
  const t = single(token);
  if (t === "missing") return fail("missing_token");
  if (t === "ambiguous") return fail("bad_token");
  return timingSafeEqual(sha256(t.value), sha256(secret)) ? OK : fail("bad_token");
}

/** The check for `provider`, reading its header from the request's headers. */
export async function verifyWebhook(provider: WebhookProvider, secret: string, headers: WebhookHeaders, rawBody: string | Uint8Array): Promise<Verdict> {
  if (provider === "github") return verifyGitHubSignature(secret, rawBody, headerValues(headers, GITHUB_SIGNATURE_HEADER));
  return verifyGitLabToken(secret, headerValues(headers, GITLAB_TOKEN_HEADER));
}

export const GITHUB_TARGET_TYPE_HEADER = "x-github-hook-installation-target-type";
export const GITHUB_TARGET_ID_HEADER = "x-github-hook-installation-target-id";

/**
 * GITHUB_APP_ID (seed 001): a GitHub App's deliveries say which app they are for
 * (`X-GitHub-Hook-Installation-Target-Type: integration`, `X-GitHub-Hook-Installation-Target-ID:
 * <app id>`). With an app id configured, one for another app (or for an app without saying which)
 * is refused; repository, organization and other webhooks, and deliveries that do not say (a CI
 * script posting with the API bearer), are not an app's and are unaffected. Without an app id,
 * everything passes.
 */
export function checkGitHubAppTarget(appId: string | undefined, headers: WebhookHeaders): { ok: true } | { ok: false; reason: "other_app" } {
  if (appId === undefined) return OK as { ok: true };
  const type = headerValues(headers, GITHUB_TARGET_TYPE_HEADER).map((v) => v.trim().toLowerCase());
  if (!type.includes("integration")) return { ok: true };
  const ids = headerValues(headers, GITHUB_TARGET_ID_HEADER)
    .map((v) => v.trim())
    .filter((v) => v !== "");
  return type.length === 1 && ids.length === 1 && ids[0] === appId.trim() ? { ok: true } : { ok: false, reason: "other_app" };
}
