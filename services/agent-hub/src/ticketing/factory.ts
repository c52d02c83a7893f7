import { TRACKER_DEFAULT_API_URL, TRACKER_TOKEN_ENV, type TicketingProviderId } from "@orch/contracts";
import { TrackerTokenMissingError } from "./errors.js";
import { GithubIssuesTracker } from "./github-issues.js";
import { GitlabIssuesTracker } from "./gitlab-issues.js";
import { LinearTracker } from "./linear.js";
import { ShortcutTracker } from "./shortcut.js";
import type { TicketingProvider } from "./types.js";

/**
 * Seed 003's ticketing provider factory. The key is read here, from the environment, so a missing
 * one fails the work before anything is sent; `apiUrl` is the configuration's (`[linear] api_url`,
 * `[shortcut] api_url`; for issues, the forge's API: ORCH_GITHUB_API_URL, ORCH_GITLAB_API_URL),
 * which tests point at local servers.
 */

export type Env = Readonly<Record<string, string | undefined>>;

export interface TrackerSettings {
  apiUrl?: string;
  timeoutMs?: number;
}

export function trackerToken(provider: TicketingProviderId, env: Env = process.env): string {
  for (const variable of TRACKER_TOKEN_ENV[provider]) {
    const value = env[variable]?.trim();
    if (value) return value;
  }
  throw new TrackerTokenMissingError(provider);
}

export function createTicketingProvider(provider: TicketingProviderId, settings: TrackerSettings = {}, env: Env = process.env): TicketingProvider {
  const token = trackerToken(provider, env);
  const opts = { apiUrl: settings.apiUrl ?? TRACKER_DEFAULT_API_URL[provider], token, timeoutMs: settings.timeoutMs ?? 30_000 };
  switch (provider) {
    case "ticketing.linear":
      return new LinearTracker(opts);
    case "ticketing.shortcut":
      return new ShortcutTracker(opts);
    case "ticketing.github_issues":
      return new GithubIssuesTracker(opts);
    case "ticketing.gitlab_issues":
      return new GitlabIssuesTracker(opts);
  }
}
