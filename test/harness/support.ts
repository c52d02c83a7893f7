import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import type { SessionEventInput, WorkItem } from "@orch/contracts";
import { createLogger } from "@orch/logging";
import type { SessionContext, Worktree } from "../../services/agent-hub/src/executors/types.js";
import { workItem as baseItem } from "../../services/agent-hub/test/llm-helpers.js";
export { hubConfig } from "../../services/agent-hub/test/llm-helpers.js";

/**
 * What the harness tests share: a real git repository with a session worktree on its own branch
 * (`git worktree add`, as the hub makes them), a real SessionContext that collects what the
 * executor emits and registers, and the agent hub's configuration parsed by its real schema.
 */

const GIT_ID = ["-c", "user.name=Harness Test", "-c", "user.email=harness@test.local", "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main"];

export function git(cwd: string, ...args: string[]): string {
  return execFileSync("git", [...GIT_ID, ...args], { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
}

export interface Repo {
  root: string;
  worktree: Worktree;
  dispose(): void;
}

/** A repository with one commit, and a worktree of it on `orch/session/<name>`. */
export function makeRepo(name = "s1"): Repo {
  const root = mkdtempSync(join(tmpdir(), "orch-harness-test-"));
  const repo = join(root, "repo");
  execFileSync("git", ["init", "-q", "-b", "main", repo]);
  git(repo, "commit", "-q", "--allow-empty", "-m", "initial");
  const base = git(repo, "rev-parse", "HEAD");
  const path = join(root, "worktrees", name);
  const branch = `orch/session/${name}`;
  git(repo, "worktree", "add", "-q", "-b", branch, path, base);
  return {
    root,
    worktree: { path, branch, base, repo },
    dispose: () => rmSync(root, { recursive: true, force: true }),
  };
}

/** Commits everything in the worktree (what the session runner does after the executor); returns the commit's files. */
export function commitAll(worktree: Worktree, message: string): { sha: string; files: string[] } {
  git(worktree.path, "add", "-A");
  git(worktree.path, "commit", "-q", "-m", message);
  const sha = git(worktree.path, "rev-parse", "HEAD");
  const files = git(worktree.path, "show", "--name-only", "--format=", sha).split("\n").filter(Boolean);
  return { sha, files };
}

/** A work item for the harness scenarios: llm-helpers' item, implementing hello.txt. */
export function workItem(over: Partial<WorkItem> = {}): WorkItem {
  return baseItem({
    definition: { id: "job", version: 1 },
    stepId: "implement",
    attemptId: "run1.implement.1",
    title: "Add hello.txt",
    goal: "Say hello in a file",
    ...over,
  });
}

export interface Collected {
  ctx: SessionContext;
  events: SessionEventInput[];
  pids: number[];
  beats: { n: number };
  /** Every log line the executor wrote, as text. */
  logs: string[];
  abort: AbortController;
  of(type: string): Record<string, unknown>[];
}

export function context(worktree: Worktree, item: WorkItem = workItem(), model?: string): Collected {
  const events: SessionEventInput[] = [];
  const pids: number[] = [];
  const beats = { n: 0 };
  const logs: string[] = [];
  const abort = new AbortController();
  const logger = createLogger({ service: "harness-test", level: "debug" }, new Writable({ write: (c, _e, cb) => (logs.push(String(c)), cb()) }));
  const ctx: SessionContext = {
    item,
    sessionId: "sess1",
    worktree,
    ...(model ? { model } : {}),
    signal: abort.signal,
    logger,
    emit: (e) => events.push(e),
    heartbeat: () => void beats.n++,
    registerProcess: (pid) => void pids.push(pid),
  };
  return { ctx, events, pids, beats, logs, abort, of: (type) => events.filter((e) => e.type === type).map((e) => e.data) };
}

/** The agent hub's configuration from these variables, through its real schema. */
/** The live processes (not zombies) of process group `pgid`, from /proc. */
export function liveInGroup(pgid: number): number[] {
  const out: number[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[2]) === pgid && fields[0] !== "Z") out.push(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}
