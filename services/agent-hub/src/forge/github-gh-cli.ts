import { spawn } from "node:child_process";
import type { ProjectForge } from "@orch/contracts";
import type { Redactor } from "../harness/redact.js";
import type { Env } from "./credentials.js";
import { ForgeApiError, ForgeCliError } from "./errors.js";
import {
  MERGE_REFUSED_STATUSES,
  checksFromRest,
  reviewsFromRest,
  type RestCheckRun,
  type RestReview,
  type RestReviewComment,
  type RestStatus,
} from "./github-shapes.js";
import type { Check, MergeOutcome, MergeRequest, OpenPullRequest, PullRequest, ReadyOutcome, RepositoryHost, Review } from "./types.js";

/**
 * `vcs_repos.github_gh_cli` (seed 003's provider): the `gh` CLI as a child process, started with an
 * argument vector and never a shell, in a clean environment holding only what gh needs (PATH, HOME,
 * the token as GH_TOKEN, or GH_ENTERPRISE_TOKEN with GH_HOST for GitHub Enterprise), no prompts,
 * no colour, no pager. Bodies go on stdin (`--body-file -`), never in the argument vector.
 *
 * Pull requests go through `gh pr list|create|view|ready|comment` (`--json …`: gh's GraphQL shapes: `OPEN`,
 * `MERGEABLE`, `headRefOid`); checks, logs, reviews and the merge through `gh api`, which prints
 * GitHub's REST JSON (shared with `vcs_repos.github_rest`). gh talks https to github.com or GH_HOST
 * only: it cannot be pointed at a local plain-HTTP server, so its tests run a fake `gh` that checks
 * the arguments it is given and prints recorded gh output (test/fixtures/gh).
 */

export interface GhCliOptions {
  forge: ProjectForge;
  /** The API base: api.github.com, or a GitHub Enterprise `https://<host>/api/v3` (its host is GH_HOST). */
  apiUrl: string;
  token: string;
  /** `gh` from the PATH when a bare name. */
  binary: string;
  timeoutMs: number;
  redact: Redactor;
  /** Where PATH and HOME come from; process.env when unset. */
  env?: Env;
  /** Beyond this much stdout gh is killed; 32 MiB when unset (job logs). */
  maxOutputBytes?: number;
}

/** The `--json` fields asked of `gh pr list|view`. */
export const GH_PR_FIELDS = ["number", "url", "state", "isDraft", "headRefName", "baseRefName", "headRefOid", "mergeable", "mergeCommit"] as const;

/** A pull request as `gh pr view|list --json` prints it. */
export interface GhPull {
  number: number;
  url: string;
  state: "OPEN" | "CLOSED" | "MERGED";
  isDraft?: boolean;
  headRefName: string;
  baseRefName: string;
  headRefOid?: string;
  mergeable?: "MERGEABLE" | "CONFLICTING" | "UNKNOWN";
  mergeCommit?: { oid: string } | null;
}

export function pullFromGh(p: GhPull, forge: ProjectForge): PullRequest {
  const merged = p.state === "MERGED";
  return {
    provider: "github",
    repository: forge.repository,
    number: p.number,
    url: p.url,
    head: p.headRefName,
    base: p.baseRefName,
    ...(p.headRefOid ? { headSha: p.headRefOid } : {}),
    state: merged ? "merged" : p.state === "OPEN" ? "open" : "closed",
    draft: p.isDraft === true,
    mergeable: p.mergeable === "MERGEABLE" ? true : p.mergeable === "CONFLICTING" ? false : null,
    merged,
    ...(merged && p.mergeCommit?.oid ? { mergeCommitSha: p.mergeCommit.oid } : {}),
  };
}

interface GhResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The HTTP status gh reports: `gh: Not Found (HTTP 404)` (gh api) or `HTTP 401: Bad credentials (…)` (GraphQL commands). */
export function ghHttpStatus(stderr: string): number | undefined {
  const m = /\(HTTP (\d{3})\)/.exec(stderr) ?? /^HTTP (\d{3}):/m.exec(stderr);
  return m ? Number(m[1]) : undefined;
}

const PR_URL = /https?:\/\/\S+\/pull\/(\d+)\b/;

export class GhCliHost implements RepositoryHost {
  readonly provider = "vcs_repos.github_gh_cli" as const;
  readonly forge: ProjectForge;
  readonly #o: GhCliOptions;
  /** `owner/name`, or `host/owner/name` for GitHub Enterprise. */
  readonly #repoArg: string;
  /** GitHub Enterprise's host; undefined for github.com. */
  readonly #enterpriseHost: string | undefined;

  constructor(opts: GhCliOptions) {
    this.#o = opts;
    this.forge = opts.forge;
    const host = new URL(opts.apiUrl).host.toLowerCase();
    this.#enterpriseHost = host === "api.github.com" || host === "github.com" ? undefined : host;
    this.#repoArg = this.#enterpriseHost ? `${this.#enterpriseHost}/${opts.forge.repository}` : opts.forge.repository;
  }

  /** The argument vectors this provider runs, by operation (what the tests check a fake gh is given). */
  args = {
    list: (head: string) => ["pr", "list", "--repo", this.#repoArg, "--head", head, "--state", "open", "--limit", "10", "--json", GH_PR_FIELDS.join(",")],
    create: (req: OpenPullRequest) => [
      "pr",
      "create",
      "--repo",
      this.#repoArg,
      "--head",
      req.head,
      "--base",
      req.base,
      "--title",
      req.title,
      "--body-file",
      "-",
      ...(req.draft ? ["--draft"] : []),
    ],
    view: (n: number) => ["pr", "view", String(n), "--repo", this.#repoArg, "--json", GH_PR_FIELDS.join(",")],
    api: (path: string, ...rest: string[]) => ["api", ...(this.#enterpriseHost ? ["--hostname", this.#enterpriseHost] : []), path, ...rest],
    comment: (n: number) => ["pr", "comment", String(n), "--repo", this.#repoArg, "--body-file", "-"],
    ready: (n: number) => ["pr", "ready", String(n), "--repo", this.#repoArg],
  };

  async findOpenPullRequest(head: string, signal?: AbortSignal): Promise<PullRequest | null> {
    const list = this.#json<GhPull[]>("list pull requests", await this.#gh("list pull requests", this.args.list(head), { signal }));
    const match = list.find((p) => p.headRefName === head);
    return match ? pullFromGh(match, this.forge) : null;
  }

  async openPullRequest(req: OpenPullRequest, signal?: AbortSignal): Promise<PullRequest> {
    const r = await this.#run(this.args.create(req), { stdin: req.body, signal });
    // gh prints the new pull request's URL; one already open for the branch is named in the error.
    const url = PR_URL.exec(r.stdout) ?? (r.code !== 0 && /already exists/i.test(r.stderr) ? PR_URL.exec(r.stderr) : null);
    if (!url) this.#fail("open a pull request", r);
    return this.getPullRequest(Number(url![1]), signal);
  }

  async getPullRequest(number: number, signal?: AbortSignal): Promise<PullRequest> {
    const op = `get pull request #${number}`;
    return pullFromGh(this.#json<GhPull>(op, await this.#gh(op, this.args.view(number), { signal })), this.forge);
  }

  async listChecks(sha: string, signal?: AbortSignal): Promise<Check[]> {
    const base = `repos/${this.forge.repository}/commits/${encodeURIComponent(sha)}`;
    const [runs, status] = await Promise.all([
      this.#gh("list check runs", this.args.api(`${base}/check-runs?per_page=100`), { signal }),
      this.#gh("get the combined status", this.args.api(`${base}/status?per_page=100`), { signal }),
    ]);
    return checksFromRest(
      this.#json<{ check_runs: RestCheckRun[] }>("list check runs", runs).check_runs,
      this.#json<{ statuses: RestStatus[] }>("get the combined status", status).statuses,
    );
  }

  async jobLog(jobId: string, signal?: AbortSignal): Promise<string> {
    if (!/^\d{1,20}$/.test(jobId)) throw new ForgeCliError(`not a job id: ${JSON.stringify(jobId)}`, false);
    return this.#gh(`download the log of job ${jobId}`, this.args.api(`repos/${this.forge.repository}/actions/jobs/${jobId}/logs`), { signal });
  }

  async listReviews(number: number, signal?: AbortSignal): Promise<Review[]> {
    const base = `repos/${this.forge.repository}/pulls/${number}`;
    const [reviews, comments] = await Promise.all([
      this.#gh(`list the reviews of #${number}`, this.args.api(`${base}/reviews?per_page=100`), { signal }),
      this.#gh(`list the review comments of #${number}`, this.args.api(`${base}/comments?per_page=100`), { signal }),
    ]);
    return reviewsFromRest(this.#json<RestReview[]>("list reviews", reviews), this.#json<RestReviewComment[]>("list review comments", comments));
  }

  async merge(number: number, req: MergeRequest, signal?: AbortSignal): Promise<MergeOutcome> {
    const pr = await this.getPullRequest(number, signal);
    if (pr.merged) return { merged: true, ...(pr.mergeCommitSha ? { sha: pr.mergeCommitSha } : {}) };
    const args = this.args.api(
      `repos/${this.forge.repository}/pulls/${number}/merge`,
      "--method",
      "PUT",
      "-f",
      `merge_method=${req.method}`,
      ...(req.sha ? ["-f", `sha=${req.sha}`] : []),
    );
    const r = await this.#run(args, { signal });
    if (r.code === 0) {
      const out = this.#json<{ merged?: boolean; sha?: string; message?: string }>("merge", r.stdout);
      return out.merged ? { merged: true, ...(out.sha ? { sha: out.sha } : {}) } : { merged: false, message: this.#o.redact(out.message ?? "not merged") };
    }
    const status = ghHttpStatus(r.stderr);
    if (status !== undefined && MERGE_REFUSED_STATUSES.has(status)) {
      let message: string | undefined;
      try {
        message = (JSON.parse(r.stdout) as { message?: string }).message;
      } catch {
        // gh printed no body: its stderr says it.
      }
      return { merged: false, message: this.#o.redact(message ?? r.stderr.replace(/^gh: /, "").trim()).slice(0, 2_000) };
    }
    this.#fail(`merge pull request #${number}`, r);
  }

  /**
   * `gh pr ready`: exit 0 when it marked the draft ready and when it was ready already (gh says
   * which on stderr); a closed pull request is gh's refusal (exit 1, "is closed"), an answer.
   */
  async markReady(number: number, signal?: AbortSignal): Promise<ReadyOutcome> {
    const r = await this.#run(this.args.ready(number), { signal });
    if (r.code === 0) return { ready: true };
    if (/\bis closed\b/i.test(r.stderr))
      return {
        ready: false,
        message: r.stderr
          .trim()
          .replace(/^\S+\s+/, "")
          .slice(0, 2_000),
      };
    this.#fail(`mark pull request #${number} ready for review`, r);
  }

  async comment(number: number, body: string, signal?: AbortSignal): Promise<void> {
    await this.#gh(`comment on #${number}`, this.args.comment(number), { stdin: body, signal });
  }

  /** Runs gh; its stdout, or the failure as a ForgeApiError (with gh's HTTP status when it gave one). */
  async #gh(operation: string, args: string[], opts: { stdin?: string; signal?: AbortSignal }): Promise<string> {
    const r = await this.#run(args, opts);
    if (r.code !== 0) this.#fail(operation, r);
    return r.stdout;
  }

  #fail(operation: string, r: GhResult): never {
    const said = (r.stderr.trim() || r.stdout.trim() || `exit status ${r.code}`).split("\n").slice(0, 5).join(" ").replace(/^gh: /, "");
    throw new ForgeApiError(operation, this.#o.redact(said).slice(0, 2_000), ghHttpStatus(r.stderr));
  }

  #json<T>(operation: string, stdout: string): T {
    try {
      return JSON.parse(stdout) as T;
    } catch {
      throw new ForgeCliError(`${operation}: gh printed something that is not JSON (${JSON.stringify(this.#o.redact(stdout.slice(0, 200)))})`, true);
    }
  }

  #env(): NodeJS.ProcessEnv {
    const base = this.#o.env ?? process.env;
    const env: NodeJS.ProcessEnv = {
      GH_PROMPT_DISABLED: "1",
      GH_NO_UPDATE_NOTIFIER: "1",
      GH_SPINNER_DISABLED: "1",
      NO_COLOR: "1",
      CLICOLOR: "0",
      GH_PAGER: "cat",
      LC_ALL: "C",
    };
    for (const k of [
      "PATH",
      "HOME",
      "XDG_CONFIG_HOME",
      "GH_CONFIG_DIR",
      "SSL_CERT_FILE",
      "SSL_CERT_DIR",
      "HTTPS_PROXY",
      "https_proxy",
      "NO_PROXY",
      "no_proxy",
    ]) {
      if (base[k]) env[k] = base[k];
    }
    if (this.#enterpriseHost) {
      env.GH_HOST = this.#enterpriseHost;
      env.GH_ENTERPRISE_TOKEN = this.#o.token;
    } else {
      env.GH_TOKEN = this.#o.token;
    }
    return env;
  }

  #run(args: readonly string[], opts: { stdin?: string; signal?: AbortSignal }): Promise<GhResult> {
    const maxOut = this.#o.maxOutputBytes ?? 32 * 1024 * 1024;
    return new Promise((resolve, reject) => {
      const child = spawn(this.#o.binary, args, { env: this.#env(), stdio: ["pipe", "pipe", "pipe"], shell: false, windowsHide: true });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let outBytes = 0;
      let failure: Error | undefined;
      const kill = (why: Error) => {
        failure ??= why;
        child.kill("SIGKILL");
      };
      const timer = setTimeout(
        () => kill(new ForgeCliError(`gh ${args[0]} ${args[1] ?? ""}: no answer within ${this.#o.timeoutMs} ms`.trim(), true)),
        this.#o.timeoutMs,
      );
      const onAbort = () => kill(opts.signal?.reason instanceof Error ? opts.signal.reason : new Error("aborted"));
      opts.signal?.addEventListener("abort", onAbort, { once: true });
      child.stdout.on("data", (b: Buffer) => {
        outBytes += b.length;
        if (outBytes > maxOut) kill(new ForgeCliError(`gh printed more than ${maxOut} bytes`, false));
        else out.push(b);
      });
      child.stderr.on("data", (b: Buffer) => {
        if (err.length < 1_000) err.push(b);
      });
      child.stdin.on("error", () => {
        // gh exited without reading its stdin: its exit status says why.
      });
      child.stdin.end(opts.stdin ?? "");
      child.on("error", (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        opts.signal?.removeEventListener("abort", onAbort);
        // Not `cause: e`: Node's spawn errors carry the argument vector.
        if (e.code === "ENOENT")
          reject(new ForgeCliError(`the gh CLI (${this.#o.binary}) was not found: install it or set ORCH_GH_BINARY ([github] binary)`, false));
        else reject(new ForgeCliError(`could not start gh: ${e.code ?? e.message}`, true));
      });
      child.on("close", (code) => {
        clearTimeout(timer);
        opts.signal?.removeEventListener("abort", onAbort);
        if (failure) return reject(failure);
        resolve({ code: code ?? -1, stdout: Buffer.concat(out).toString("utf8"), stderr: this.#o.redact(Buffer.concat(err).toString("utf8")) });
      });
    });
  }
}
