import { FORGE_PROVIDERS, forgeFromOrigin, type ForgeProvider, type ProjectForge, type ProjectRecord } from "@orch/contracts";

/**
 * A project's forge, as the core decides it: the one set on the project, else the one its git URL
 * points at (github.com, gitlab.com, the configured enterprise and self-managed hosts,
 * `ORCH_FORGE_HOSTS`), else, when its CI provider (seed 004's `ci_provider`) names a forge, that
 * forge on the URL's host (its API at `/api/v3` for GitHub Enterprise, `/api/v4` for GitLab).
 */

export type ForgeHosts = Readonly<Record<string, ForgeProvider>>;

const isProvider = (v: string | undefined): v is ForgeProvider => (FORGE_PROVIDERS as readonly string[]).includes(v ?? "");

/** The forge derived from a git URL and a CI provider, or undefined. */
export function derivedForge(gitUrl: string | undefined, ciProvider: string | undefined, hosts: ForgeHosts = {}): ProjectForge | undefined {
  if (!gitUrl) return undefined;
  const known = forgeFromOrigin(gitUrl, hosts);
  if (known) return known;
  const provider = ciProvider?.trim().toLowerCase();
  if (!isProvider(provider)) return undefined;
  const host = hostOf(gitUrl);
  if (!host) return undefined;
  const onHost = forgeFromOrigin(gitUrl, { [host]: provider });
  if (!onHost) return undefined;
  const web = /^https?:\/\//i.test(gitUrl) ? new URL(gitUrl).origin : `https://${host}`;
  return { ...onHost, apiUrl: `${web}${provider === "github" ? "/api/v3" : "/api/v4"}` };
}

function hostOf(url: string): string | undefined {
  const scp = /^(?:[^@/\s]+@)?([^:/\s]+):(?!\/)/.exec(url);
  if (scp && !/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) return scp[1]!.toLowerCase();
  try {
    return new URL(url).host.toLowerCase();
  } catch {
    return undefined;
  }
}

/** The forge a project's runs get: the one on its record (set or derived when written), else derived now (records written before forges). */
export function projectForge(p: Pick<ProjectRecord, "forge" | "gitUrl" | "ciProvider">, hosts: ForgeHosts = {}): ProjectForge | undefined {
  return p.forge ?? derivedForge(p.gitUrl, p.ciProvider, hosts);
}
