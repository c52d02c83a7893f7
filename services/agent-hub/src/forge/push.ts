import { mkdirSync, mkdtempSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { forgeFromOrigin, type ForgeProvider, type ProjectForge, type ProjectRecord } from "@orch/contracts";
import type { Logger } from "@orch/logging";
import { GitCommandError, type GitCli, GitError, ForcePushRefusedError } from "../git/index.js";
import type { Redactor } from "../harness/redact.js";
import { apiUrlFor, gitHostsFor, secureEnough, tokenFor, type Env } from "./credentials.js";
import { ForgeRequestError, ForgeTokenMissingError, PushFailedError } from "./errors.js";
import { apiUrlsOf, type ForgeConfig } from "./factory.js";

/**
 * Pushing the run's branch to its origin (`git push origin refs/heads/<b>:refs/heads/<b>`, through
 * GitCli, so seed 003's safety flags hold: never forced unless `allow_force_push`).
 *
 * Credentials for an https origin on the forge's host come from the forge's token through an askpass
 * program: GIT_ASKPASS names a small script (it holds no secret) that answers git's username prompt
 * with the forge's token user and its password prompt with the token, which it reads from a variable
 * set only in that one git process's environment. The token is never in an argument, a remote URL,
 * git's config or a credential store (`credential.helper` is emptied for the push). An origin on any
 * other host, or over plain http to anything but this machine, gets no token; ssh and local origins
 * use what they always use.
 */

/** The user name each forge takes with a token over HTTP. */
const TOKEN_USER = { github: "x-access-token", gitlab: "oauth2" } as const;

const ASKPASS_SCRIPT = `#!/bin/sh
# Orchestrator's git askpass: answers from this git process's environment only.
case "$1" in
  [Uu]sername*) printf '%s\\n' "$ORCH_ASKPASS_USERNAME" ;;
  *) printf '%s\\n' "$ORCH_ASKPASS_PASSWORD" ;;
esac
`;

let askpassPath: string | undefined;

/** The askpass script, written once per process (into `dir`, or a private temporary directory). */
export function askpassProgram(dir?: string): string {
  if (askpassPath && !dir) return askpassPath;
  const d = dir ?? mkdtempSync(join(tmpdir(), "orch-askpass-"));
  mkdirSync(d, { recursive: true, mode: 0o700 });
  const path = join(d, "git-askpass.sh");
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, ASKPASS_SCRIPT, { mode: 0o700 });
  renameSync(tmp, path);
  if (!dir) askpassPath = path;
  return path;
}

export interface PushRequest {
  git: GitCli;
  /** The project's repository (its main checkout or managed clone). */
  repo: string;
  branch: string;
  /** The forge whose token may authenticate the push; undefined: push with no token of ours. */
  forge?: ProjectForge;
  apiUrl?: string;
  env?: Env;
  redact: Redactor;
  logger: Logger;
  askpassDir?: string;
}

export interface PushResult {
  sha: string;
  /** Whether the forge's token was offered (an https origin on the forge's host). */
  authenticated: boolean;
}

/**
 * The environment that gives one git process talking to `origin` the forge's token through the
 * askpass program (see above); undefined when the origin gets no token of ours (ssh, a local path,
 * another host, plain http to anything but this machine). ForgeTokenMissingError when it should get
 * one and none is set.
 */
export function askpassEnv(req: {
  origin: string;
  forge?: ProjectForge;
  apiUrl?: string;
  env?: Env;
  askpassDir?: string;
  logger: Logger;
  /** What the git process does, for the warning when the origin gets no token. */
  what: string;
}): Record<string, string> | undefined {
  let url: URL | undefined;
  try {
    url = new URL(req.origin);
  } catch {
    // scp-like ssh (`git@host:path`) or a local path.
  }
  if (!url || !(url.protocol === "https:" || url.protocol === "http:") || !req.forge || !req.apiUrl) return undefined;
  const onForge = gitHostsFor(req.apiUrl).includes(url.host.toLowerCase());
  if (!onForge || !secureEnough(url)) {
    req.logger.warn({ host: url.host }, `the origin is not on the forge's host (or not https): ${req.what} without the forge's token`);
    return undefined;
  }
  const token = tokenFor(req.forge.provider, req.env);
  return {
    GIT_ASKPASS: askpassProgram(req.askpassDir),
    ORCH_ASKPASS_USERNAME: url.username ? decodeURIComponent(url.username) : TOKEN_USER[req.forge.provider],
    ORCH_ASKPASS_PASSWORD: token.value,
    // No credential helper sees (or stores) the token.
    GIT_CONFIG_COUNT: "1",
    GIT_CONFIG_KEY_0: "credential.helper",
    GIT_CONFIG_VALUE_0: "",
  };
}

/**
 * What clones and fetches of a project's origin are given (WorkspaceManager's `credentials`): for an
 * https origin on the project's forge (or the forge its URL names), an askpass program answering with
 * the forge's token, as pushes get it; nothing when there is no token (a public repository clones
 * without one), no forge, or the origin is not on the forge's host.
 */
export function originCredentials(o: { cfg: ForgeConfig; logger: Logger; env?: Env; askpassDir?: string }) {
  const urls = apiUrlsOf(o.cfg);
  const hosts: Record<string, ForgeProvider> = {};
  for (const provider of ["github", "gitlab"] as const) {
    const u = urls[provider];
    if (u) for (const h of gitHostsFor(u)) hosts[h] = provider;
  }
  return (origin: string, project: ProjectRecord | undefined): Readonly<Record<string, string>> | undefined => {
    const forge = project?.forge ?? forgeFromOrigin(origin, hosts);
    if (!forge) return undefined;
    try {
      return askpassEnv({
        origin,
        forge,
        apiUrl: apiUrlFor(forge, urls),
        ...(o.env ? { env: o.env } : {}),
        ...(o.askpassDir ? { askpassDir: o.askpassDir } : {}),
        logger: o.logger,
        what: "a clone or fetch",
      });
    } catch (err) {
      if (err instanceof ForgeTokenMissingError) return undefined;
      throw err;
    }
  };
}

const REJECTED = /\[rejected\]|non-fast-forward|fetch first|\[remote rejected\]|protected branch|pre-receive hook declined/i;
const DENIED = /authentication failed|could not read (username|password)|HTTP (401|403)|permission denied|access denied|invalid username or password/i;

export async function pushRunBranch(req: PushRequest): Promise<PushResult> {
  const { git, repo, branch } = req;
  const sha = await git.resolveCommit(repo, `refs/heads/${branch}`);
  if (sha === null) throw new ForgeRequestError(`the run's branch ${branch} does not exist in ${repo}: nothing to push`);
  const origin = await git.remoteUrl(repo, "origin");
  if (origin === null) throw new PushFailedError(`the repository has no origin to push ${branch} to`, false);

  const env = askpassEnv({ ...req, origin, what: `pushing ${branch}` });

  const ref = `refs/heads/${branch}`;
  try {
    await git.push(repo, "origin", [`${ref}:${ref}`], env ? { env } : {});
  } catch (err) {
    if (err instanceof ForcePushRefusedError) throw new PushFailedError(req.redact(err.message), false);
    if (err instanceof GitCommandError) {
      const said = req.redact(err.message);
      if (REJECTED.test(err.stderr)) {
        throw new PushFailedError(
          `${said} (the origin's ${branch} has commits the run's branch does not; it is never force-pushed unless allow_force_push)`,
          false,
        );
      }
      throw new PushFailedError(said, !DENIED.test(err.stderr));
    }
    if (err instanceof GitError) throw new PushFailedError(req.redact(err.message), err.retryable);
    throw err;
  }
  req.logger.info({ branch, sha, authenticated: env !== undefined }, `pushed ${branch} to origin`);
  return { sha, authenticated: env !== undefined };
}
