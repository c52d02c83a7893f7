import { FORGE_DEFAULT_API_URL, FORGE_TOKEN_ENV, type ForgeProvider, type ProjectForge } from "@orch/contracts";
import { redactor, type Redactor } from "../harness/redact.js";
import { ForgeTokenMissingError } from "./errors.js";

/**
 * Where a forge's token and API come from. The token is read from the environment only, in
 * FORGE_TOKEN_ENV's order (GITHUB_TOKEN, then GH_TOKEN; GITLAB_TOKEN), and goes nowhere but the
 * API client's auth header, the `gh` child's environment, and the git askpass child's environment.
 * Every text a provider hands back (error messages, CLI output) passes through `redact` first.
 */

export interface ForgeToken {
  /** The variable it came from (safe to show). */
  variable: string;
  value: string;
}

export type Env = Readonly<Record<string, string | undefined>>;

/** The forge's token from `env`; ForgeTokenMissingError (non-retryable, naming the variables) when none is set. */
export function tokenFor(provider: ForgeProvider, env: Env = process.env): ForgeToken {
  const variables = FORGE_TOKEN_ENV[provider];
  for (const variable of variables) {
    const value = env[variable]?.trim();
    if (value) return { variable, value };
  }
  throw new ForgeTokenMissingError(provider, variables);
}

/** A redactor for every forge token set in `env` (whichever one a provider uses). */
export function forgeRedactor(env: Env = process.env): Redactor {
  return redactor(Object.values(FORGE_TOKEN_ENV).flatMap((vars) => vars.map((v) => env[v]?.trim())));
}

export interface ApiUrls {
  github: string;
  gitlab: string;
}

/** The API base for a forge: its own `apiUrl`, else the configured one, else the public one. */
export function apiUrlFor(forge: ProjectForge, configured: Partial<ApiUrls> = {}): string {
  return (forge.apiUrl ?? configured[forge.provider] ?? FORGE_DEFAULT_API_URL[forge.provider]).replace(/\/+$/, "");
}

/**
 * The hosts a forge's token may be sent to for git over HTTP: the API's host, and for GitHub's
 * `api.<host>` also `<host>` (api.github.com → github.com). A remote on any other host gets no token.
 */
export function gitHostsFor(apiUrl: string): string[] {
  const host = new URL(apiUrl).host.toLowerCase();
  return host.startsWith("api.") ? [host, host.slice(4)] : [host];
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?$/;

/** Whether a token may travel to `url`: https, or plain http to this machine only (tests, local mirrors). */
export function secureEnough(url: URL): boolean {
  return url.protocol === "https:" || (url.protocol === "http:" && LOOPBACK.test(url.host));
}
