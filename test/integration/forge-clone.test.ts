import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentHubConfig, loadConfig } from "@orch/config";
import type { ProjectRecord } from "@orch/contracts";
import { createLogger } from "@orch/logging";
import { FakeGitHub, FakeGitLab, type FakeForge } from "@orch/testing";
import { originCredentials } from "../../services/agent-hub/src/forge/index.js";
import { CloneFailedError, GitCli, WorkspaceManager } from "../../services/agent-hub/src/git/index.js";

/**
 * A project's private https origin on its forge is cloned and fetched with the forge's token, through
 * the askpass program pushes use (never in the URL, never stored in the clone's config); without the
 * token the clone fails, saying so.
 */

const TOKEN = { github: "ghp_cloneToken0123456789abcdefABCDEF", gitlab: "glpat-cloneToken0123456789abc" } as const;
const tmp = mkdtempSync(join(tmpdir(), "orch-forge-clone-"));
const fakes: { provider: "github" | "gitlab"; repository: string; fake: FakeForge }[] = [
  { provider: "github", repository: "acme/private", fake: new FakeGitHub({ token: TOKEN.github }) },
  { provider: "gitlab", repository: "acme/team/private", fake: new FakeGitLab({ token: TOKEN.gitlab }) },
];

beforeAll(async () => {
  for (const f of fakes) {
    await f.fake.start();
    f.fake.createRepository(f.repository);
  }
});

afterAll(async () => {
  for (const f of fakes) await f.fake.stop();
  rmSync(tmp, { recursive: true, force: true });
});

describe.each(fakes)("a private origin on $provider", ({ provider, repository, fake }) => {
  const logger = createLogger({ service: "test", level: "silent" });
  const cfg = loadConfig(AgentHubConfig, { ORCH_CONFIG: "none", ORCH_WORKSPACE: join(tmp, provider, "ws") });
  const project = (): ProjectRecord => ({
    id: `p-${provider}`,
    name: "Private",
    gitUrl: fake.cloneUrl(repository),
    forge: { provider, repository, apiUrl: fake.apiUrl },
    createdAt: 1,
    updatedAt: 1,
  });
  const env = provider === "github" ? { GITHUB_TOKEN: TOKEN.github } : { GITLAB_TOKEN: TOKEN.gitlab };

  it("without the token: the clone fails, saying so", async () => {
    const w = new WorkspaceManager({ ...cfg, ORCH_WORKSPACE: join(tmp, provider, "no-token") }, GitCli.fromConfig(cfg), logger, {
      credentials: originCredentials({ cfg, logger, env: {} }),
    });
    await expect(w.repoFor(project(), `p-${provider}`)).rejects.toBeInstanceOf(CloneFailedError);
  });

  it("with it: cloned, then fetched, the token never in the clone's config", async () => {
    const git = GitCli.fromConfig(cfg);
    const w = new WorkspaceManager(cfg, git, logger, { credentials: originCredentials({ cfg, logger, env }) });
    const repo = await w.repoFor(project(), `p-${provider}`);
    expect(await git.remoteUrl(repo)).toBe(fake.cloneUrl(repository));
    // A second look fetches (with the token again).
    const before = fake.apiRequests().length;
    expect(await w.repoFor(project(), `p-${provider}`)).toBe(repo);
    expect(fake.apiRequests().length).toBe(before);
    const { execFileSync } = await import("node:child_process");
    const config = execFileSync("git", ["config", "--list", "--local"], { cwd: repo, encoding: "utf8" });
    expect(config).not.toContain(TOKEN[provider]);
    expect(execFileSync("git", ["rev-parse", "origin/main"], { cwd: repo, encoding: "utf8" }).trim()).toBe(fake.headOf(repository, "main"));
  });
});
