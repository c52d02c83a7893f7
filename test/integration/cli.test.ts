import { execFileSync, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Stack, freePort, http, waitFor } from "@orch/testing";

/**
 * `orch`, the built command line (services/cli/dist/main.js), run as a child process against the
 * real system with an API token: submit, list, show, watch (both exit codes), approve and reject at
 * a gate, cancel, retry, logs, timers, schedules, `--json`, and each documented exit code; `orch ask`
 * against a small server speaking the supervisor's contract; `orch start`'s provider overrides.
 */

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const CLI = join(ROOT, "services", "cli", "dist", "main.js");
const TOKEN = "cli-test-token";

let stack: Stack;
let base: string;
const tmp = mkdtempSync(join(tmpdir(), "orch-cli-"));
const repo = join(tmp, "repo");

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `orch args…` to its end. */
function orch(args: string[], opts: { env?: Record<string, string>; input?: string } = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, ORCH_URL: base, ORCH_API_TOKEN: TOKEN, ORCH_CONFIG: "none", ORCH_ACTOR: "cli-test", ...opts.env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(opts.input ?? "");
  });
}

const ok = async (args: string[], opts?: Parameters<typeof orch>[1]) => {
  const r = await orch(args, opts);
  expect(r.code, `orch ${args.join(" ")}\n${r.stdout}\n${r.stderr}`).toBe(0);
  return r;
};

const api = async (method: string, path: string, json?: unknown) => {
  const r = await http(method, `${base}${path}`, { headers: { authorization: `Bearer ${TOKEN}` }, ...(json !== undefined ? { json } : {}) });
  expect(r.status, r.text).toBeLessThan(300);
  return r.json();
};
const runOf = (id: string) => api("GET", `/api/v1/runs/${id}`);
const stepOf = (run: any, id: string) => run.steps.find((s: any) => s.id === id);
const until = (id: string, pred: (run: any) => boolean, what: string, timeoutMs = 30_000) =>
  waitFor(
    async () => {
      const run = await runOf(id);
      return pred(run) ? run : undefined;
    },
    { timeoutMs, what },
  );

beforeAll(async () => {
  const git = (...a: string[]) => execFileSync("git", ["-c", "user.name=T", "-c", "user.email=t@localhost", ...a], { cwd: repo, encoding: "utf8" });
  execFileSync("mkdir", ["-p", repo]);
  git("init", "-q", "-b", "main");
  writeFileSync(join(repo, "README.md"), "# cli\n");
  git("add", "-A");
  git("commit", "-q", "-m", "initial");
  stack = await Stack.start({ env: { ORCH_RATE_LIMIT_MAX: "10000" }, serviceEnv: { gateway: { ORCH_API_TOKEN: TOKEN } } });
  base = stack.baseUrl;
  await api("PUT", "/api/v1/projects/acme", { name: "Acme", localPath: repo, baseBranch: "main" });
});

afterAll(async () => {
  await stack?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

describe("orch: jobs and runs", () => {
  it("submits a job packet from a file, watches it to success (exit 0), lists and shows it", async () => {
    const file = join(tmp, "job.json");
    writeFileSync(file, JSON.stringify({ goal: "hello from the cli", steps: [{ type: "dev.log" }, { type: "docs" }], limits: { maxSteps: 3 } }));
    const id = (await ok(["submit", file])).stdout.trim();
    expect(id).toMatch(/^[0-9a-f-]{36}$/);

    const w = await ok(["watch", id]);
    expect(w.stdout).toMatch(new RegExp(`^watching run ${id}`));
    // One line per step change, with its status, and the time it took when it ended.
    expect(w.stdout).toMatch(/\d\d:\d\d:\d\d {2}\S+ +started/);
    expect(w.stdout).toMatch(/\d\d:\d\d:\d\d {2}\S+ +succeeded +\d+\.\ds/);
    expect(w.stdout.trim().split("\n").at(-1)).toMatch(new RegExp(`^run ${id} completed in \\d+\\.\\ds: 2 completed$`));

    const listed = JSON.parse((await ok(["runs", "--json", "--view", "job", "--limit", "10"])).stdout);
    expect(listed.items.map((r: any) => r.id)).toContain(id);
    const table = (await ok(["runs", "--status", "completed", "--definition", "job"])).stdout;
    expect(table.split("\n")[0]).toMatch(/^ID +STATUS +STAGE +DEFINITION +PROJECT +AGE +TITLE$/);
    expect(table).toContain(id);

    const shown = (await ok(["show", id])).stdout;
    expect(shown).toMatch(new RegExp(`^run ${id} {2}completed`));
    expect(shown).toMatch(/STEP +STATUS +ROLE +TIME/);
    const json = JSON.parse((await ok(["show", id, "--json"])).stdout);
    expect(json).toMatchObject({ id, status: "completed", view: "job" });
    expect(json.steps).toHaveLength(2);
  });

  it("watch exits 1 when the run fails, and --json streams NDJSON events", async () => {
    const packet = { goal: "fails", steps: [{ type: "ci", payload: { mock: { failTimes: 1, retryable: false, error: "boom" } } }], limits: { maxSteps: 3 } };
    const id = (await ok(["submit", "-"], { input: JSON.stringify(packet) })).stdout.trim();
    const w = await orch(["watch", id]);
    expect(w.code, w.stdout + w.stderr).toBe(1);
    expect(w.stdout).toMatch(/failed/);
    expect(w.stdout.trim().split("\n").at(-1)).toMatch(new RegExp(`^run ${id} failed`));

    const j = await orch(["watch", id, "--json"]);
    expect(j.code).toBe(1);
    const events = j.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(events[0]).toMatchObject({ runId: id, type: "run.created", seq: 1 });
    expect(events.at(-1)).toMatchObject({ type: "run.finished", data: { status: "failed" } });
  });

  it("submits a workflow run from flags, and approves and rejects at its gates; watch follows it to the end", async () => {
    const inputs = join(tmp, "inputs.yaml");
    writeFileSync(inputs, "feature_id: 001-cli\nfeature_description: overridden by --input\n");
    const s = await ok([
      "submit",
      "--definition",
      "speckit.specify",
      "--project",
      "acme",
      "--title",
      "CLI feature",
      "--input",
      "feature_description=Add a command line to the orchestrator",
      "--input-file",
      inputs,
      "--label",
      "feature=001",
      "--json",
    ]);
    const run = JSON.parse(s.stdout);
    expect(run).toMatchObject({ projectId: "acme", title: "CLI feature", labels: { feature: "001" }, definition: { id: "speckit.specify" } });
    expect(run.input).toMatchObject({ feature_description: "Add a command line to the orchestrator", feature_id: "001-cli" });
    const id = run.id as string;
    const watching = orch(["watch", id]);

    await until(id, (r) => stepOf(r, "phase_1").status === "waiting_approval", "phase 1 to wait");
    const a = await ok(["approve", id, "--comment", "looks right"]);
    expect(a.stdout.trim()).toMatch(new RegExp(`^run ${id}: approved step phase_1; run running`));
    await until(id, (r) => stepOf(r, "phase_2").status === "waiting_approval", "phase 2 to wait");
    const r = await ok(["reject", id, "--reason", "say more"]);
    expect(r.stdout.trim()).toMatch(new RegExp(`^run ${id}: rejected step phase_2`));
    await until(id, (x) => stepOf(x, "phase_2").status === "waiting_approval" && stepOf(x, "phase_2").attempt === 2, "the rework to wait");
    await ok(["approve", id, "--step", "phase_2"]);

    const w = await watching;
    expect(w.code, w.stdout + w.stderr).toBe(0);
    expect(w.stdout).toMatch(/phase_1 +awaiting_approval/);
    expect(w.stdout).toMatch(/phase_1 +approved .*by cli-test: looks right/);
    expect(w.stdout).toMatch(/phase_2 +rejected .*by cli-test: say more/);
    expect(w.stdout.trim().split("\n").at(-1)).toMatch(new RegExp(`^run ${id} completed`));

    const history = (await api("GET", `/api/v1/runs/${id}/history`)).items;
    expect(history.find((e: any) => e.type === "step.approved").data).toMatchObject({ stepId: "phase_1", actor: "cli-test" });
    expect(history.find((e: any) => e.type === "step.rejected").data).toMatchObject({ stepId: "phase_2", actor: "cli-test" });

    // The step's agent session transcript, and every session of the run.
    const logs = (await ok(["logs", id, "--step", "phase_1"])).stdout;
    expect(logs).toMatch(/^== phase_1 attempt 1 · architect · stub · session \S+ · completed$/m);
    expect(logs).toMatch(/^✎ (add|modify) specs\/001-cli\//m);
    expect(logs).toMatch(/^● commit [0-9a-f]{10} /m);
    expect(logs).toMatch(/^-- session completed --$/m);
    const all = (await ok(["logs", id])).stdout;
    expect(all.match(/^== /gm)).toHaveLength(3);
    const nd = (await ok(["logs", id, "--step", "phase_2", "--json"])).stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(nd.every((e: any) => e.stepId === "phase_2" && typeof e.type === "string")).toBe(true);
    const follow = await ok(["logs", id, "--step", "phase_1", "--follow"]);
    expect(follow.stdout).toContain("-- session completed --");
  });

  it("cancels a run; an action the run cannot take is refused with the server's reason (exit 6)", async () => {
    const id = (
      await ok(["submit", "-d", "speckit.specify", "-p", "acme", "-i", "feature_description=Cancel me from the command line", "-i", "feature_id=002-cancel"])
    ).stdout.trim();
    await until(id, (r) => stepOf(r, "phase_1").status === "waiting_approval", "phase 1 to wait");
    const c = await ok(["cancel", id, "--reason", "not needed"]);
    expect(c.stdout.trim()).toMatch(new RegExp(`^run ${id}: cancelled; run cancelled`));
    // Cancelling is idempotent; resuming a run that is not paused is refused.
    await ok(["cancel", id]);
    const again = await orch(["resume", id]);
    expect(again.code).toBe(6);
    expect(again.stderr).toMatch(/^orch: POST \/api\/v1\/runs\/\S+\/actions\/resume: 409 ILLEGAL_TRANSITION: .*\(reason \w+\)\n$/);
    const approve = await orch(["approve", id]);
    expect(approve.code).toBe(6);
    expect(approve.stderr).toBe(`orch: no step of run ${id} waits for approval (run cancelled)\n`);
    const w = await orch(["watch", id]);
    expect(w.code).toBe(1);
    expect(w.stdout.trim().split("\n").at(-1)).toMatch(new RegExp(`^run ${id} cancelled`));
  });

  it("retries a failed step", async () => {
    const run = await api("POST", "/api/v1/runs", { definition: "protocol", projectId: "acme", input: { protocol_name: "cli-retry" } });
    const id = run.id as string;
    if ((await runOf(id)).status === "pending") await api("POST", `/api/v1/runs/${id}/actions/start`);
    await until(id, (r) => r.status === "planned", "planning to finish");
    await api("POST", `/api/v1/runs/${id}/actions/add_steps`, {
      steps: [{ id: "flaky", role: "tester", type: "agent", payload: { mock: { failTimes: 5 } }, retry: { maxAttempts: 1 } }],
    });
    await api("POST", `/api/v1/runs/${id}/actions/run_step`, { stepId: "flaky" });
    await until(id, (r) => r.status === "blocked" && stepOf(r, "flaky").status === "failed", "the step to fail");
    const r = await ok(["retry", id, "--reason", "try again"]);
    expect(r.stdout.trim()).toMatch(new RegExp(`^run ${id}: retrying its latest step; run `));
    await until(id, (x) => stepOf(x, "flaky").retries === 1 && stepOf(x, "flaky").status === "failed", "the retry to fail again");
    const s = await ok(["retry", id, "--step", "flaky", "--json"]);
    expect(JSON.parse(s.stdout)).toMatchObject({ id });
  });

  it("lists the scheduler's timers", async () => {
    const packet = { goal: "slow", steps: [{ type: "ci", payload: { mock: { delayMs: 20_000 } } }], limits: { maxSteps: 1, maxWallMs: 60_000 } };
    const id = (await ok(["submit", "-"], { input: JSON.stringify(packet) })).stdout.trim();
    const listed = await waitFor(
      async () => {
        const l = JSON.parse((await ok(["timers", "--run", id, "--json"])).stdout);
        return l.items.length > 0 ? l : undefined;
      },
      { timeoutMs: 20_000, what: "a timer of the run" },
    );
    expect(listed.items[0]).toMatchObject({ runId: id });
    const t = (await ok(["timers", "--run", id])).stdout;
    expect(t.split("\n")[0]).toMatch(/^RUN +KIND +STEP +DUE +IN$/);
    expect(t).toContain(id);
    await ok(["cancel", id]);
  });

  it("lists schedules: when each is due, what it creates, what is next", async () => {
    await api("POST", "/api/v1/schedules", {
      id: "cli-nightly",
      cron: "0 3 * * *",
      timezone: "Europe/Paris",
      creates: { definition: "job", input: { goal: "x" } },
    });
    const listed = await waitFor(
      async () => {
        const l = JSON.parse((await ok(["schedules", "--json"])).stdout);
        return l.items.some((x: any) => x.id === "cli-nightly" && x.schedule) ? l : undefined;
      },
      { what: "the schedule listed" },
    );
    expect(listed.items.find((x: any) => x.id === "cli-nightly").schedule.spec).toMatchObject({ cron: "0 3 * * *", timezone: "Europe/Paris" });
    const t = (await ok(["schedules"])).stdout;
    expect(t.split("\n")[0]).toMatch(/^SCHEDULE +STATUS +WHEN +CREATES +NEXT +FIRED +SKIPPED$/);
    expect(t).toMatch(/cli-nightly +waiting +0 3 \* \* \* \(Europe\/Paris\) +job /);
    await api("DELETE", "/api/v1/schedules/cli-nightly");
  });
});

describe("npx orch", () => {
  it("is the built program, linked into node_modules/.bin by npm install", () => {
    const r = spawnSync(join(ROOT, "node_modules", ".bin", "orch"), ["--help"], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^Usage: orch \[options\] \[command\]/);
    expect(r.stdout).toContain("Exit codes:\n  0  ok\n  1  the watched run failed or was cancelled");
  });
});

describe("orch: errors and exit codes", () => {
  it("2 for a usage error, 3 unreachable, 4 bad token, 5 unknown run, 2 for a request the server finds invalid", async () => {
    const usage = await orch(["runs", "--limit", "0"]);
    expect([usage.code, usage.stderr]).toEqual([2, "orch: --limit 0: must be 1-500\n"]);
    expect((await orch(["frobnicate"])).code).toBe(2);
    expect((await orch(["show"])).code).toBe(2);

    const port = await freePort();
    const down = await orch(["runs"], { env: { ORCH_URL: `http://127.0.0.1:${port}` } });
    expect(down.code).toBe(3);
    expect(down.stderr).toMatch(new RegExp(`^orch: cannot reach the gateway at http://127.0.0.1:${port}: ECONNREFUSED`));

    const bad = await orch(["runs"], { env: { ORCH_API_TOKEN: "wrong" } });
    expect(bad.code).toBe(4);
    expect(bad.stderr).toMatch(/^orch: GET \/api\/v1\/runs: 401 .*ORCH_API_TOKEN or --token/);
    expect((await orch(["runs", "--token", "wrong"])).code).toBe(4);
    expect((await orch(["runs"], { env: { ORCH_API_TOKEN: "" } })).code).toBe(4);
    expect((await orch(["watch", "x"], { env: { ORCH_API_TOKEN: "wrong" } })).code).toBe(4);

    const unknown = await orch(["show", "no-such-run"]);
    expect([unknown.code, unknown.stderr]).toEqual([5, "orch: GET /api/v1/runs/no-such-run: 404 NOT_FOUND: run no-such-run not found\n"]);
    expect((await orch(["watch", "no-such-run"])).code).toBe(5);
    expect((await orch(["logs", "no-such-run"])).code).toBe(5);
    expect((await orch(["cancel", "no-such-run"])).code).toBe(5);

    const invalid = await orch(["submit", "-d", "no.such.definition"]);
    expect(invalid.code).toBe(2);
    expect(invalid.stderr).toMatch(/400 BAD_REQUEST: .*definition/);
    const packet = await orch(["submit", "-"], { input: '{"goal":"no limits"}' });
    expect([packet.code, packet.stderr]).toEqual([
      2,
      "orch: POST /api/orchestrator/jobs: 400 BAD_REQUEST: Invalid Task Packet (limits: Invalid input: expected object, received undefined)\n",
    ]);
  });
});

describe("orch ask: the supervisor's contract", () => {
  let server: Server;
  let url: string;
  const asked: any[] = [];
  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = "";
      req.on("data", (d) => (body += d));
      req.on("end", () => {
        const json = (status: number, b: unknown) => res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(b));
        const m = /^\/api\/v1\/runs\/([^/]+)\/ask$/.exec(req.url ?? "");
        if (req.method !== "POST" || !m) return json(404, { error: { code: "NOT_FOUND", message: "no route" } });
        if (req.headers.authorization !== `Bearer ${TOKEN}`) return json(401, { error: { code: "UNAUTHORIZED", message: "Missing or invalid token" } });
        const q = JSON.parse(body) as { question: string };
        asked.push({ run: m[1], ...q });
        if (m[1] === "nope") return json(404, { error: { code: "NOT_FOUND", message: "run nope not found" } });
        if (q.question === "policy") return json(403, { error: { code: "LLM_POLICY_REFUSED", message: "ORCH_LLM_POLICY=locked refuses every model call" } });
        if (q.question === "unavailable") return json(503, { error: { code: "SUPERVISOR_UNAVAILABLE", message: "no supervisor model configured" } });
        res.writeHead(200, { "content-type": "text/event-stream" });
        const frame = (event: string, data: unknown) => res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
        frame("delta", { text: "The run is " });
        res.write(": ping\n\n");
        frame("delta", { text: "waiting for your approval." });
        if (q.question === "break") {
          frame("error", { error: { code: "MODEL_FAILED", message: "the model went away" } });
          return res.end();
        }
        frame("done", { model: "test-model" });
        res.end();
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it("prints the answer as it streams; --json prints the frames as NDJSON", async () => {
    const r = await ok(["ask", "run-1", "why", "is", "it", "stuck?"], { env: { ORCH_URL: url } });
    expect(r.stdout).toBe("The run is waiting for your approval.\n");
    expect(r.stderr).toBe("(answered by test-model)\n");
    expect(asked.at(-1)).toEqual({ run: "run-1", question: "why is it stuck?" });
    await ok(["ask", "run-1", "--step", "build", "and this step?"], { env: { ORCH_URL: url } });
    expect(asked.at(-1)).toEqual({ run: "run-1", question: "and this step?", stepId: "build" });
    const j = await ok(["ask", "run-1", "again", "--json"], { env: { ORCH_URL: url } });
    expect(
      j.stdout
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l)),
    ).toEqual([
      { event: "delta", data: { text: "The run is " } },
      { event: "delta", data: { text: "waiting for your approval." } },
      { event: "done", data: { model: "test-model" } },
    ]);
  });

  it("exits with the documented codes: 5 unknown run, 4 bad token, 6 refused by the LLM policy, 7 unavailable or failed mid-answer", async () => {
    const nf = await orch(["ask", "nope", "hello"], { env: { ORCH_URL: url } });
    expect([nf.code, nf.stderr]).toEqual([5, "orch: POST /api/v1/runs/nope/ask: 404 NOT_FOUND: run nope not found\n"]);
    expect((await orch(["ask", "run-1", "hello"], { env: { ORCH_URL: url, ORCH_API_TOKEN: "wrong" } })).code).toBe(4);
    const policy = await orch(["ask", "run-1", "policy"], { env: { ORCH_URL: url } });
    expect([policy.code, policy.stderr]).toEqual([
      6,
      "orch: POST /api/v1/runs/run-1/ask: 403 LLM_POLICY_REFUSED: ORCH_LLM_POLICY=locked refuses every model call\n",
    ]);
    const un = await orch(["ask", "run-1", "unavailable"], { env: { ORCH_URL: url } });
    expect([un.code, un.stderr]).toEqual([7, "orch: POST /api/v1/runs/run-1/ask: 503 SUPERVISOR_UNAVAILABLE: no supervisor model configured\n"]);
    const broke = await orch(["ask", "run-1", "break"], { env: { ORCH_URL: url } });
    expect(broke.code).toBe(7);
    expect(broke.stdout).toBe("The run is waiting for your approval.\n");
    expect(broke.stderr).toBe("orch: the supervisor failed: MODEL_FAILED: the model went away\n");
  });
});

describe("orch start: seed 003's provider overrides", () => {
  it("turns each override into the variable the services read", async () => {
    const r = await ok([
      "start",
      "--print-env",
      "--ticketing-provider",
      "ticketing.shortcut",
      "--harness-provider",
      "harness.claude",
      "--vcs-provider",
      "vcs.git_cli",
      "--vcs-repo-provider",
      "vcs_repos.gitlab_rest",
    ]);
    expect(r.stdout).toBe(
      "ORCH_TICKETING_PROVIDER=shortcut\nORCH_AGENT_EXECUTOR=claude\nORCH_VCS_PROVIDER=git_cli\nORCH_VCS_REPO_PROVIDER=vcs_repos.gitlab_rest\n",
    );
    const j = await ok(["start", "--print-env", "--json", "--harness-provider", "harness.opencode", "--ticketing-provider", "ticketing.linear"]);
    expect(JSON.parse(j.stdout)).toEqual({ ORCH_TICKETING_PROVIDER: "linear", ORCH_AGENT_EXECUTOR: "opencode" });
  });

  it("refuses an unknown value with the list of known ones (exit 2)", async () => {
    for (const [flag, value, known] of [
      ["--ticketing-provider", "ticketing.jira", "ticketing.linear, ticketing.shortcut, ticketing.github_issues, ticketing.gitlab_issues"],
      ["--harness-provider", "harness.aider", "harness.opencode, harness.codex, harness.claude"],
      ["--vcs-provider", "vcs.libgit2", "vcs.git_cli"],
      ["--vcs-repo-provider", "vcs_repos.bitbucket", "vcs_repos.github_rest, vcs_repos.github_gh_cli, vcs_repos.gitlab_rest"],
    ] as const) {
      const r = await orch(["start", flag, value]);
      expect(r.code, flag).toBe(2);
      expect(r.stderr, flag).toContain(`argument '${value}' is invalid. Allowed choices are ${known}.`);
    }
  });
});
