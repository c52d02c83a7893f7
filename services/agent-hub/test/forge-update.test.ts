import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Command, SignalSchema, type RunSignalCommand, type WorkItem } from "@orch/contracts";
import { createLogger } from "@orch/logging";
import { runPrUpdate, updatePullRequest, type MqUpdated, type PrUpdateOptions } from "../src/forge/update.js";
import { ForcePushRefusedError, GitCli, type GitPolicy } from "../src/git/index.js";

/**
 * The merge queue's `pr.update` with real git: a bare origin, a "someone else" clone that moves the
 * base and the PR's branch, and the hub's own clone (the project's repository) that updates it.
 */

const HERMETIC = { GIT_CONFIG_GLOBAL: "/dev/null", GIT_CONFIG_NOSYSTEM: "1" };
const ID = { GIT_AUTHOR_NAME: "Someone", GIT_AUTHOR_EMAIL: "s@example.test", GIT_COMMITTER_NAME: "Someone", GIT_COMMITTER_EMAIL: "s@example.test" };
const tmp = mkdtempSync(join(tmpdir(), "orch-pr-update-test-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const silent = createLogger({ service: "test", level: "silent" });

const sh = (cwd: string, ...args: string[]) =>
  execFileSync("git", args, { cwd, env: { ...process.env, ...HERMETIC, ...ID }, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();

const LINES = Array.from({ length: 30 }, (_, i) => `line ${i + 1}`);
const withLine = (lines: readonly string[], n: number, text: string) => lines.map((l, i) => (i === n - 1 ? text : l)).join("\n") + "\n";

let n = 0;

/** An origin with `main` (f.txt of 30 lines, other.txt) and a PR branch changing line 10 of f.txt; the hub's clone of it. */
function setup(runId = `r${++n}`) {
  const root = join(tmp, runId);
  mkdirSync(root);
  const origin = join(root, "origin.git");
  sh(root, "init", "-q", "--bare", "-b", "main", origin);
  const dev = join(root, "dev");
  sh(root, "clone", "-q", origin, dev);
  const write = (branch: string, files: Record<string, string>, message = "change") => {
    sh(dev, "checkout", "-q", branch);
    for (const [f, c] of Object.entries(files)) writeFileSync(join(dev, f), c);
    sh(dev, "add", "-A");
    sh(dev, "commit", "-q", "-m", message);
    sh(dev, "push", "-q", "origin", branch);
    return sh(dev, "rev-parse", "HEAD");
  };
  sh(dev, "checkout", "-q", "-b", "main");
  writeFileSync(join(dev, "f.txt"), LINES.join("\n") + "\n");
  writeFileSync(join(dev, "other.txt"), "other\n");
  sh(dev, "add", "-A");
  sh(dev, "commit", "-q", "-m", "initial");
  sh(dev, "push", "-q", "origin", "main");
  const branch = `orch/run/${runId}`;
  sh(dev, "checkout", "-q", "-b", branch);
  const approved = write(branch, { "f.txt": withLine(LINES, 10, "line 10, changed by the PR") }, "the PR");
  const hub = join(root, "hub");
  sh(root, "clone", "-q", origin, hub);
  // The hub's local run branch, as sessions left it: at what it pushed.
  sh(hub, "branch", "-q", branch, `origin/${branch}`);
  return { runId, root, origin, dev, hub, branch, approved, write, remoteHead: (b: string) => sh(origin, "rev-parse", `refs/heads/${b}`) };
}

const git = (policy: Partial<GitPolicy> = {}) => new GitCli({ authorName: "Orchestrator", authorEmail: "orch@test.invalid", policy, env: HERMETIC });

function item(runId: string, payload: Record<string, unknown>): WorkItem {
  return {
    runId,
    projectId: "p1",
    definition: { id: "ticket", version: 1 },
    stepId: "merge_queue",
    attemptId: `${runId}:pr.update:1`,
    attempt: 1,
    kind: "sync",
    index: 0,
    role: "maintainer",
    type: "pr.update",
    phase: "merge",
    inputs: {},
    payload,
    iteration: 0,
    rework: 0,
    mode: "live",
    workspace: { branch: `orch/run/${runId}`, base: "main" },
    dispatchedAt: Date.now(),
  } as WorkItem;
}

const forge = { provider: "github", repository: "acme/widgets" } as const;

function options(s: ReturnType<typeof setup>, policy: Partial<GitPolicy> = {}): PrUpdateOptions {
  const tmpDir = join(s.root, "tmp");
  mkdirSync(tmpDir, { recursive: true });
  return { git: git(policy), workspaces: { repoFor: async () => s.hub }, project: async () => undefined, cfg: {}, env: {}, tmpDir };
}

async function update(s: ReturnType<typeof setup>, payload: Record<string, unknown> = {}, policy: Partial<GitPolicy> = { allowForcePush: true }) {
  const o = options(s, policy);
  const answer = await updatePullRequest(item(s.runId, { forge, number: 1, head: s.branch, base: "main", ...payload }), o, silent);
  // Whatever happened: no temporary worktree left, in the directory or in git's list.
  expect(readdirSync(o.tmpDir!)).toEqual([]);
  expect(sh(s.hub, "worktree", "list", "--porcelain").match(/^worktree /gm)).toHaveLength(1);
  // What goes on the wire is a valid signal.
  expect(SignalSchema.safeParse({ name: "mq_updated", ...answer }).success).toBe(true);
  return answer;
}

const isAncestor = (cwd: string, a: string, b: string) => {
  try {
    sh(cwd, "merge-base", "--is-ancestor", a, b);
    return true;
  } catch {
    return false;
  }
};

describe("pr.update: rebase (force pushes allowed)", () => {
  it("rebases onto a base that moved elsewhere: pushed with a lease, same patch-id (the approval holds), the local run branch follows", async () => {
    const s = setup();
    const base = s.write("main", { "other.txt": "other, changed on main\n" }, "elsewhere on main");
    const a = await update(s, { approvedSha: s.approved });
    expect(a.error).toBeUndefined();
    expect(a.conflict).toBeUndefined();
    expect(a.strategy).toBe("rebase");
    expect(a.headSha).not.toBe(s.approved);
    expect(s.remoteHead(s.branch)).toBe(a.headSha);
    // Rebased: linear on the new base, the old head is no ancestor.
    expect(sh(s.origin, "rev-parse", `${a.headSha}^`)).toBe(base);
    expect(isAncestor(s.origin, s.approved, a.headSha!)).toBe(false);
    expect(a.approvedPatchId).toMatch(/^[0-9a-f]{40}$/);
    expect(a.patchId).toBe(a.approvedPatchId);
    expect(sh(s.hub, "rev-parse", `refs/heads/${s.branch}`)).toBe(a.headSha);
  });

  it("a rebase whose change differs from what was approved has another patch-id: the base changed a line next to the PR's", async () => {
    const s = setup();
    s.write("main", { "f.txt": withLine(LINES, 12, "line 12, changed on main") }, "near the PR's line");
    const a = await update(s, { approvedSha: s.approved });
    expect(a).toMatchObject({ strategy: "rebase" });
    expect(a.conflict).toBeUndefined();
    expect(s.remoteHead(s.branch)).toBe(a.headSha);
    expect(a.patchId).toMatch(/^[0-9a-f]{40}$/);
    expect(a.patchId).not.toBe(a.approvedPatchId);
  });

  it("a commit pushed to the PR after its approval makes the change differ from the approved one", async () => {
    const s = setup();
    s.write(s.branch, { "new.txt": "after the approval\n" }, "after approval");
    s.write("main", { "other.txt": "moved\n" }, "main moves");
    const a = await update(s, { approvedSha: s.approved });
    expect(a.strategy).toBe("rebase");
    expect(a.patchId).not.toBe(a.approvedPatchId);
    expect(sh(s.origin, "show", `${a.headSha}:new.txt`)).toBe("after the approval");
  });

  it("a conflict is answered with its files and git's message; the remote branch and the local one are untouched", async () => {
    const s = setup();
    s.write("main", { "f.txt": withLine(LINES, 10, "line 10, changed on main too") }, "the same line");
    const a = await update(s, { approvedSha: s.approved });
    expect(a.strategy).toBe("rebase");
    expect(a.conflict?.files).toEqual(["f.txt"]);
    expect(a.conflict?.message).toMatch(/conflict/i);
    expect(a.conflict?.message).toContain("CONFLICT (content): Merge conflict in f.txt");
    expect(a.conflict?.message).not.toMatch(/^hint:|Rebasing \(|\r/m);
    expect(a.error).toBeUndefined();
    expect(a.headSha).toBe(s.approved);
    expect(s.remoteHead(s.branch)).toBe(s.approved);
    expect(sh(s.hub, "rev-parse", `refs/heads/${s.branch}`)).toBe(s.approved);
  });

  it("already up to date: nothing pushed, the same head", async () => {
    const s = setup();
    const a = await update(s, {});
    expect(a).toMatchObject({ headSha: s.approved, strategy: "rebase" });
    expect(a.patchId).toBe(a.approvedPatchId);
    expect(s.remoteHead(s.branch)).toBe(s.approved);
  });

  it("never force-pushes a branch that is not the run's: it merges instead", async () => {
    const s = setup();
    s.write("main", { "other.txt": "moved\n" }, "main moves");
    const o = options(s, { allowForcePush: true });
    const a = await updatePullRequest(
      { ...item(s.runId, { forge, number: 1, head: s.branch, base: "main" }), workspace: { branch: "feature/someone-elses" } },
      o,
      silent,
    );
    expect(a.strategy).toBe("merge");
    expect(isAncestor(s.origin, s.approved, s.remoteHead(s.branch))).toBe(true);
  });
});

describe("pr.update: merge (force pushes not allowed)", () => {
  it("merges the base into the branch and pushes plainly: the remote head descends from the old one", async () => {
    const s = setup();
    const base = s.write("main", { "other.txt": "other, changed on main\n" }, "elsewhere on main");
    const a = await update(s, { approvedSha: s.approved, strategy: "rebase" }, {});
    expect(a.error).toBeUndefined();
    expect(a.strategy).toBe("merge");
    const head = s.remoteHead(s.branch);
    expect(a.headSha).toBe(head);
    expect(isAncestor(s.origin, s.approved, head)).toBe(true);
    expect(isAncestor(s.origin, base, head)).toBe(true);
    expect(sh(s.origin, "rev-list", "--parents", "-n", "1", head).split(" ")).toHaveLength(3);
    // The PR's change against its new merge base (the base) is what was approved.
    expect(a.patchId).toBe(a.approvedPatchId);
    // The local run branch fast-forwards to it.
    expect(sh(s.hub, "rev-parse", `refs/heads/${s.branch}`)).toBe(head);
  });

  it("a merge conflict: files listed, merge aborted, nothing pushed", async () => {
    const s = setup();
    s.write("main", { "f.txt": withLine(LINES, 10, "line 10, main's version") }, "the same line");
    const a = await update(s, { strategy: "merge" }, {});
    expect(a).toMatchObject({ strategy: "merge", headSha: s.approved, conflict: { files: ["f.txt"] } });
    expect(s.remoteHead(s.branch)).toBe(s.approved);
  });
});

describe("pr.update: failures are answers", () => {
  it("a missing branch on origin is an error, not a throw", async () => {
    const s = setup();
    const a = await updatePullRequest(item(s.runId, { forge, number: 1, head: "orch/run/nope", base: "main" }), options(s), silent);
    expect(a.error).toMatch(/orch\/run\/nope/);
    expect(a.headSha).toBeUndefined();
  });

  it("an invalid payload is an error", async () => {
    const s = setup();
    const a = await updatePullRequest(item(s.runId, { forge, number: 0, head: s.branch }), options(s), silent);
    expect(a.error).toMatch(/invalid pr.update payload/);
  });

  it("a push the origin refuses (a protected branch) is an error; the branch is left as it was", async () => {
    const s = setup();
    s.write("main", { "other.txt": "moved\n" }, "main moves");
    // The origin refuses every update of the run's branch (a protected branch, say).
    writeFileSync(join(s.origin, "hooks", "pre-receive"), "#!/bin/sh\necho 'protected branch' >&2\nexit 1\n", { mode: 0o755 });
    const a = await update(s, {});
    expect(a.error).toMatch(/protected branch|pre-receive/);
    expect(a.conflict).toBeUndefined();
    expect(s.remoteHead(s.branch)).toBe(s.approved);
  });

  it("an approved commit the origin no longer has: no approved patch-id, the rest answered", async () => {
    const s = setup();
    s.write("main", { "other.txt": "moved\n" }, "main moves");
    const a = await update(s, { approvedSha: "0123456789abcdef0123456789abcdef01234567" });
    expect(a.approvedPatchId).toBeUndefined();
    expect(a.patchId).toMatch(/^[0-9a-f]{40}$/);
  });
});

describe("the answer", () => {
  it("is one run.signal mq_updated command per attempt, from the agent hub", async () => {
    const s = setup();
    s.write("main", { "other.txt": "moved\n" }, "main moves");
    const sent: RunSignalCommand[] = [];
    const wi = item(s.runId, { forge, number: 1, head: s.branch, base: "main", approvedSha: s.approved });
    const answer = await runPrUpdate(wi, {
      ...options(s, { allowForcePush: true }),
      logger: silent,
      send: async (cmd) => void sent.push(cmd),
    });
    expect(sent).toHaveLength(1);
    const cmd = sent[0]!;
    expect(Command.safeParse(cmd).success).toBe(true);
    expect(cmd).toMatchObject({ type: "run.signal", commandId: `mq-updated:${wi.attemptId}`, runId: s.runId, actor: "agent-hub" });
    const signal = SignalSchema.parse(cmd.signal) as { name: string } & MqUpdated;
    expect(signal).toEqual({ name: "mq_updated", ...answer });
    expect(signal).toMatchObject({ attemptId: wi.attemptId, strategy: "rebase", headSha: s.remoteHead(s.branch) });
    expect(signal.patchId).toBe(signal.approvedPatchId);
  });
});

describe("GitCli's update operations", () => {
  it("refuses a lease push without allowForcePush", async () => {
    const s = setup();
    await expect(git().pushWithLease(s.hub, "origin", s.approved, s.branch, s.approved)).rejects.toBeInstanceOf(ForcePushRefusedError);
    await expect(git().followForcePush(s.hub, s.branch, s.approved, s.approved)).rejects.toBeInstanceOf(ForcePushRefusedError);
  });

  it("a lease that no longer holds refuses the push: what someone else pushed since is kept", async () => {
    const s = setup();
    const g = git({ allowForcePush: true });
    sh(s.hub, "fetch", "-q", "origin");
    const theirs = s.write(s.branch, { "theirs.txt": "pushed by someone else\n" }, "someone else");
    const rewritten = sh(s.hub, "commit-tree", `${s.approved}^{tree}`, "-p", sh(s.hub, "rev-parse", "origin/main"), "-m", "rewritten");
    await expect(g.pushWithLease(s.hub, "origin", rewritten, s.branch, s.approved)).rejects.toThrow(/stale info|rejected/);
    expect(s.remoteHead(s.branch)).toBe(theirs);
    await g.pushWithLease(s.hub, "origin", rewritten, s.branch, theirs);
    expect(s.remoteHead(s.branch)).toBe(rewritten);
  });

  it("patch-id: null for no change, the same for the same change on another base", async () => {
    const s = setup();
    const g = git();
    expect(await g.patchId(s.hub, s.approved, s.approved)).toBeNull();
    const main = sh(s.hub, "rev-parse", "origin/main");
    const id = await g.patchId(s.hub, main, s.approved);
    expect(id).toMatch(/^[0-9a-f]{40}$/);
    const diff = sh(s.hub, "diff", main, s.approved) + "\n";
    const byHand = execFileSync("git", ["patch-id", "--stable"], { cwd: s.hub, input: diff, encoding: "utf8" }).split(" ")[0];
    expect(id).toBe(byHand);
  });
});
