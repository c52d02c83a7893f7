import { VCS_REPO_PROVIDER_FORGE, type ForgeProvider, type ProjectForge, type VcsRepoProvider } from "@orch/contracts";
import type { AgentHubConfig } from "@orch/config";
import { apiUrlFor, forgeRedactor, tokenFor, type ApiUrls, type Env } from "./credentials.js";
import { GhCliHost } from "./github-gh-cli.js";
import { GithubRestHost } from "./github-rest.js";
import { GitlabRestHost } from "./gitlab-rest.js";
import type { RepositoryHost } from "./types.js";

/**
 * Seed 003's `vcs_repos` provider factory: the configured provider (`vcs_repo_provider`,
 * ORCH_VCS_REPO_PROVIDER) for the forges it speaks to, and for any other forge that forge's REST
 * provider: a GitLab project is `vcs_repos.gitlab_rest` whatever GitHub's provider is. The token is
 * read here, from the environment, so a missing one fails the step before anything is attempted.
 */

export type ForgeConfig = Pick<
  AgentHubConfig,
  "ORCH_VCS_REPO_PROVIDER" | "ORCH_GITHUB_API_URL" | "ORCH_GITLAB_API_URL" | "ORCH_GH_BINARY" | "ORCH_FORGE_TIMEOUT_MS"
>;

/** Each forge's provider when the configured one speaks to another forge. */
const REST_PROVIDER: Readonly<Record<ForgeProvider, VcsRepoProvider>> = { github: "vcs_repos.github_rest", gitlab: "vcs_repos.gitlab_rest" };

export function providerFor(forge: Pick<ProjectForge, "provider">, configured: VcsRepoProvider): VcsRepoProvider {
  return VCS_REPO_PROVIDER_FORGE[configured] === forge.provider ? configured : REST_PROVIDER[forge.provider];
}

export function apiUrlsOf(cfg: Pick<ForgeConfig, "ORCH_GITHUB_API_URL" | "ORCH_GITLAB_API_URL">): Partial<ApiUrls> {
  return { ...(cfg.ORCH_GITHUB_API_URL ? { github: cfg.ORCH_GITHUB_API_URL } : {}), ...(cfg.ORCH_GITLAB_API_URL ? { gitlab: cfg.ORCH_GITLAB_API_URL } : {}) };
}

/** The repository host for a project's forge; ForgeTokenMissingError when its token is not set. */
export function createRepositoryHost(forge: ProjectForge, cfg: ForgeConfig, env: Env = process.env, provider?: VcsRepoProvider): RepositoryHost {
  const chosen = provider ?? providerFor(forge, cfg.ORCH_VCS_REPO_PROVIDER);
  const token = tokenFor(forge.provider, env);
  const apiUrl = apiUrlFor(forge, apiUrlsOf(cfg));
  const common = { forge, apiUrl, token: token.value, timeoutMs: cfg.ORCH_FORGE_TIMEOUT_MS, redact: forgeRedactor(env) };
  switch (chosen) {
    case "vcs_repos.github_rest":
      return new GithubRestHost(common);
    case "vcs_repos.github_gh_cli":
      return new GhCliHost({ ...common, binary: cfg.ORCH_GH_BINARY, env });
    case "vcs_repos.gitlab_rest":
      return new GitlabRestHost(common);
  }
}
