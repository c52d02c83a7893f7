import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Stack, http, waitFor, type HttpResponse } from "@orch/testing";

/**
 * What a gate asks you to approve, as a diff: a SpecKit run with the stub executor commits a real
 * spec file into a real repository and waits at phase 1; `GET …/steps/phase_1/diff` (answered by
 * the agent hub over NATS) shows that commit's patch, and `orch diff` prints it. A step with no
 * commit, an unknown step and an unknown run are 404s; with no agent hub, 503.
 */

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const CLI = join(ROOT, "services", "cli", "dist", "main.js");
const TOKEN = "step-diff-test-token-0123456789";
const AUTH = { authorization: `Bearer ${TOKEN}` };
let stack: Stack;
let base: string;
const repo = mkdtempSync(join(tmpdir(), "orch-diff-repo-"));
const git = (...args: string[]) => execFileSync("git", ["-c", "user.name=Test", "-c", "user.email=test@localhost", ...args], { cwd: repo, encoding: "utf8" });

beforeAll(async () => {
  git("init", "-q", "-b", "main");
  writeFileSync(join(repo, "README.md"), "# diffs\n");
  git("add", "-A");
  git("commit", "-q", "-m", "initial");
  stack = await Stack.start({ env: { ORCH_API_TOKEN: TOKEN, ORCH_RATE_LIMIT_MAX: "10000" } });
  base = `${stack.baseUrl}/api/v1`;
  const p = await http("PUT", `${base}/projects/acme`, { headers: AUTH, json: { name: "Acme", localPath: repo, baseBranch: "main" } });
  expect(p.status, p.text).toBe(201);
});

afterAll(async () => {
  await stack?.stop();
  rmSync(repo, { recursive: true, force: true });
});

const get = (path: string) => http("GET", base + path, { headers: AUTH });
const ok = (r: HttpResponse, status = 200) => {
  expect(r.status, r.text).toBe(status);
  return r.json();
};

function orch(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, ORCH_URL: stack.baseUrl, ORCH_API_TOKEN: TOKEN, ORCH_CONFIG: "none", ORCH_ACTOR: "diff-test" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("a step's diff: GET /api/v1/runs/{id}/steps/{stepId}/diff and orch diff", () => {
  let runId: string;

  beforeAll(async () => {
    const run = ok(
      await http("POST", `${base}/runs`, {
        headers: AUTH,
        json: { definition: "speckit.specify", projectId: "acme", input: { feature_description: "Export invoices as CSV", feature_id: "001-export" } },
      }),
      201,
    );
    runId = run.id;
    await waitFor(
      async () => {
        const r = ok(await get(`/runs/${runId}`));
        return r.steps[0].status === "waiting_approval" ? r : undefined;
      },
      { timeoutMs: 30_000, what: "phase 1 to wait for approval" },
    );
  });

  it("shows the spec file phase 1 committed, line by line, with its counts", async () => {
    const d = ok(await get(`/runs/${runId}/steps/phase_1/diff`));
    expect(d).toMatchObject({ stepId: "phase_1", attempt: 1, truncated: false });
    expect(d.commits).toHaveLength(1);
    const [c] = d.commits;
    expect(c.sha).toMatch(/^[0-9a-f]{40}$/);
    expect(git("cat-file", "-t", c.sha).trim()).toBe("commit");
    expect(c.branch).toBeTruthy();
    const spec = c.files.find((f: any) => f.path.endsWith("/spec.md"));
    expect(spec, JSON.stringify(c.files.map((f: any) => f.path))).toBeDefined();
    expect(spec).toMatchObject({ change: "add", deletions: 0 });
    expect(spec.additions).toBeGreaterThan(5);
    expect(spec.patch).toMatch(/^diff --git a\/\S+spec\.md b\/\S+spec\.md\nnew file mode/);
    expect(spec.patch).toContain("\n+## Functional requirements\n");
    expect(spec.patch).toContain("+- FR-001: the system provides the capability described above.");
    // The counts are the patch's own.
    expect(spec.patch.split("\n").filter((l: string) => l.startsWith("+") && !l.startsWith("+++")).length).toBe(spec.additions);
    // The same attempt, named.
    expect(ok(await get(`/runs/${runId}/steps/phase_1/diff?attempt=1`)).commits[0].sha).toBe(c.sha);
  });

  it("answers 404 for a step with no commit, an unknown step and an unknown run; 400 for a bad attempt; 401 without a token", async () => {
    for (const path of [`/runs/${runId}/steps/phase_2/diff`, `/runs/${runId}/steps/phase_1/diff?attempt=7`, `/runs/${runId}/steps/nope/diff`]) {
      const r = await get(path);
      expect(r.status, `${path}: ${r.text}`).toBe(404);
      expect(r.json().error.code).toBe("NOT_FOUND");
    }
    expect((await get(`/runs/${runId}/steps/phase_2/diff`)).json().error.message).toMatch(/phase_2/);
    expect((await get(`/runs/run-doesnotexist/steps/phase_1/diff`)).status).toBe(404);
    expect((await get(`/runs/${runId}/steps/phase_1/diff?attempt=x`)).status).toBe(400);
    expect((await http("GET", `${base}/runs/${runId}/steps/phase_1/diff`)).status).toBe(401);
  });

  it("orch diff prints the patch of the step waiting for approval; --json the API's answer; exit 5 without a commit", async () => {
    const r = await orch(["diff", runId]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^commit [0-9a-f]{40} \(\S+\) · phase_1 attempt 1 · \d+ files? \+\d+ -0$/m);
    expect(r.stdout).toMatch(/^diff --git a\/\S+spec\.md/m);
    expect(r.stdout).toContain("+## Functional requirements\n");

    const j = await orch(["diff", runId, "--step", "phase_1", "--json"]);
    expect(j.code, j.stderr).toBe(0);
    expect(JSON.parse(j.stdout)).toMatchObject({ stepId: "phase_1", attempt: 1 });

    const none = await orch(["diff", runId, "--step", "phase_2"]);
    expect(none.code).toBe(5);
    expect(none.stderr).toMatch(/phase_2/);
  });

  it("answers 503 UNAVAILABLE when no agent hub answers", async () => {
    await stack.kill("agent-hub");
    const r = await get(`/runs/${runId}/steps/phase_1/diff`);
    expect(r.status, r.text).toBe(503);
    expect(r.json().error).toMatchObject({ code: "UNAVAILABLE", message: expect.stringMatching(/agent hub/) });
  });
});
