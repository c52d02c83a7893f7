import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_TOPOLOGY, connectBus, decode, provisionTopology, topologySpec, type Bus } from "@orch/bus";
import { AgentHubConfig, loadConfig } from "@orch/config";
import { Command, SignalSchema, type ProjectForge, type WorkItem } from "@orch/contracts";
import { createLogger } from "@orch/logging";
import { FakeGitHub, startNats, type NatsServer } from "@orch/testing";
import { ForgeService, runForgeStep, updatePullRequest } from "../../services/agent-hub/src/forge/index.js";
import { GitCli } from "../../services/agent-hub/src/git/index.js";

/**
 * The merge queue's `pr.update` as the agent hub runs it against a forge: the PR's branch fetched
 * and force-pushed (with a lease) over real smart HTTP, authenticated by the askpass program with
 * the forge's token, and the answer landing on the command stream of a real nats-server as the
 * `mq_updated` signal, through the hub's forge work routing (`runForgeStep`).
 */

const TOKEN = "ghp_fakeUpdateToken0123456789abcdefAB";
const REPOSITORY = "acme/queue";
const HERMETIC = { GIT_CONFIG_GLOBAL: "/dev/null", GIT_CONFIG_NOSYSTEM: "1" };
const ID = { GIT_AUTHOR_NAME: "Dev", GIT_AUTHOR_EMAIL: "dev@example.test", GIT_COMMITTER_NAME: "Dev", GIT_COMMITTER_EMAIL: "dev@example.test" };

const tmp = mkdtempSync(join(tmpdir(), "orch-forge-update-"));
const argvLog = join(tmp, "git-argv.log");
const gitBinary = join(tmp, "bin", "git-logged");
mkdirSync(join(tmp, "bin"));
writeFileSync(gitBinary, `#!/bin/sh\nprintf '%s ' "$@" >> '${argvLog}'\nprintf '\\n' >> '${argvLog}'\nexec git "$@"\n`);
chmodSync(gitBinary, 0o755);

const sh = (cwd: string, ...args: string[]) =>
  execFileSync("git", args, { cwd, env: { ...process.env, ...HERMETIC, ...ID }, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();

const forge: ProjectForge = { provider: "github", repository: REPOSITORY };
let fake: FakeGitHub;
let dev: string;
let nats: NatsServer;
let bus: Bus;
const logs: string[] = [];
const logger = createLogger({ service: "test", level: "debug" }, new Writable({ write: (c, _e, cb) => (logs.push(String(c)), cb()) }));

/** Commits `file` on `branch` of the developer's clone (pushed straight into the forge's bare repository). */
function commit(branch: string, file: string, content: string, from = "main"): string {
  const has = sh(dev, "branch", "--list", branch) !== "";
  sh(dev, "checkout", "-q", ...(has ? [branch] : ["-b", branch, from]));
  writeFileSync(join(dev, file), content);
  sh(dev, "add", "-A");
  sh(dev, "commit", "-q", "-m", `change ${file}`);
  sh(dev, "push", "-q", "origin", branch);
  return sh(dev, "rev-parse", "HEAD");
}

/** The hub's clone of the project: its origin the forge's http URL, with no credentials in it. */
function hubClone(name: string): string {
  const repo = join(tmp, name);
  sh(tmp, "clone", "-q", fake.barePath(REPOSITORY), repo);
  sh(repo, "remote", "set-url", "origin", fake.cloneUrl(REPOSITORY));
  return repo;
}

function service(repo: string, env: Record<string, string | undefined>): ForgeService {
  const cfg = loadConfig(AgentHubConfig, { ORCH_CONFIG: "none", ORCH_GITHUB_API_URL: fake.apiUrl });
  const git = new GitCli({ binary: gitBinary, authorName: "Orchestrator", authorEmail: "orch@test.invalid", env: HERMETIC, policy: { allowForcePush: true } });
  return new ForgeService({
    cfg,
    git,
    workspaces: { repoFor: async () => repo },
    project: async () => undefined,
    logger,
    env,
    askpassDir: join(tmp, "askpass"),
  });
}

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
    payload: { forge, number: 1, head: `orch/run/${runId}`, base: "main", ...payload },
    iteration: 0,
    rework: 0,
    mode: "live",
    dispatchedAt: Date.now(),
  } as WorkItem;
}

beforeAll(async () => {
  fake = await new FakeGitHub({ token: TOKEN }).start();
  fake.createRepository(REPOSITORY, { files: { "README.md": "# queue\n", "app.txt": "one\ntwo\nthree\n" } });
  dev = join(tmp, "dev");
  sh(tmp, "clone", "-q", fake.barePath(REPOSITORY), dev);
  nats = await startNats();
  bus = await connectBus({ url: nats.url, name: "test", prefix: "fu", logger });
  await provisionTopology(bus, topologySpec(bus.names, DEFAULT_TOPOLOGY));
});

afterAll(async () => {
  await bus?.close();
  await nats?.stop();
  await fake?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

describe("pr.update against a forge over HTTP", () => {
  it("fetches and force-pushes with a lease through askpass; the answer lands on the command stream as mq_updated", async () => {
    const approved = commit("orch/run/r-http", "feature.txt", "feature\n");
    commit("main", "README.md", "# queue, moved on\n");
    const repo = hubClone("hub-http");
    const wi = item("r-http", { approvedSha: approved });
    const before = fake.requests.length;

    await runForgeStep(wi, service(repo, { PATH: process.env.PATH, HOME: process.env.HOME, GITHUB_TOKEN: TOKEN }), {
      bus,
      logger,
      signal: new AbortController().signal,
    });

    const head = fake.headOf(REPOSITORY, "orch/run/r-http")!;
    expect(head).not.toBe(approved);
    expect(sh(tmp, "--git-dir", fake.barePath(REPOSITORY), "rev-parse", `${head}^`)).toBe(fake.headOf(REPOSITORY, "main"));
    // Fetch and push went over HTTP, authenticated by the token the askpass program answered with.
    const git = fake.requests.slice(before).filter((r) => r.kind === "git");
    expect(git.some((r) => r.path.endsWith("git-upload-pack") && r.status === 200)).toBe(true);
    expect(git.some((r) => r.path.endsWith("git-receive-pack") && r.status === 200)).toBe(true);
    const authed = git.find((r) => r.status === 200 && typeof r.headers.authorization === "string");
    expect(Buffer.from(String(authed!.headers.authorization).slice(6), "base64").toString()).toBe(`x-access-token:${TOKEN}`);

    const stored = await bus.jsm.streams.getMessage(bus.names.streams.cmd, { last_by_subj: bus.names.subjects.cmd("r-http") });
    const d = decode(Command, stored.data);
    expect(d.ok).toBe(true);
    if (!d.ok) return;
    expect(d.value).toMatchObject({ type: "run.signal", commandId: `mq-updated:${wi.attemptId}`, runId: "r-http", actor: "agent-hub" });
    const signal = SignalSchema.parse((d.value as { signal: unknown }).signal);
    expect(signal).toMatchObject({ name: "mq_updated", attemptId: wi.attemptId, headSha: head, strategy: "rebase" });
    const s = signal as { approvedPatchId?: string; patchId?: string };
    expect(s.patchId).toMatch(/^[0-9a-f]{40}$/);
    expect(s.patchId).toBe(s.approvedPatchId);

    // The token is in no argument, no remote URL, no config, no log line and no answer.
    expect(readFileSync(argvLog, "utf8")).not.toContain(TOKEN);
    expect(sh(repo, "remote", "get-url", "origin")).toBe(fake.cloneUrl(REPOSITORY));
    expect(sh(repo, "config", "--list")).not.toContain(TOKEN);
    expect(logs.join("")).not.toContain(TOKEN);
    expect(new TextDecoder().decode(stored.data)).not.toContain(TOKEN);
  });

  it("a redelivered attempt's second answer is the same command id: the stream keeps one", async () => {
    const repo = hubClone("hub-again");
    commit("orch/run/r-again", "again.txt", "again\n");
    const wi = item("r-again", {});
    const svc = service(repo, { GITHUB_TOKEN: TOKEN });
    await runForgeStep(wi, svc, { bus, logger, signal: new AbortController().signal });
    await runForgeStep(wi, svc, { bus, logger, signal: new AbortController().signal });
    const info = await bus.jsm.streams.info(bus.names.streams.cmd, { subjects_filter: bus.names.subjects.cmd("r-again") });
    expect(Object.values(info.state.subjects ?? {}).reduce((a, b) => a + b, 0)).toBe(1);
  });

  it("without the forge's token: an error naming the variable, nothing fetched or pushed", async () => {
    const approved = commit("orch/run/r-token", "token.txt", "t\n");
    commit("main", "README.md", "# queue, moved again\n");
    const repo = hubClone("hub-token");
    const svc = service(repo, {});
    const a = await updatePullRequest(item("r-token", {}), svc.options, logger);
    expect(a.error).toContain("GITHUB_TOKEN or GH_TOKEN");
    expect(a.headSha).toBeUndefined();
    expect(fake.headOf(REPOSITORY, "orch/run/r-token")).toBe(approved);
  });

  it("a wrong token: an error that never carries it", async () => {
    const approved = commit("orch/run/r-wrong", "wrong.txt", "w\n");
    const repo = hubClone("hub-wrong");
    const wrong = `${TOKEN}-wrong`;
    const svc = service(repo, { GITHUB_TOKEN: wrong });
    const a = await updatePullRequest(item("r-wrong", {}), svc.options, logger);
    expect(a.error).toBeDefined();
    expect(a.error).not.toContain(wrong);
    expect(fake.headOf(REPOSITORY, "orch/run/r-wrong")).toBe(approved);
  });
});
