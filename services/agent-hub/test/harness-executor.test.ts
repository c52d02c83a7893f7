import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { EXECUTOR_NAMES } from "@orch/config";
import { waitFor } from "@orch/testing";
import { SessionAbortedError, type Worktree } from "../src/executors/types.js";
import { createHarnessProvider, HARNESS_NAMES, HarnessExecutor, type HarnessName } from "../src/harness/index.js";
import { context, hubConfig, liveInGroup, workItem } from "../../../test/harness/support.js";

/**
 * The harness executor's process control, environment, policy and failure handling, with a stand-in
 * for the external CLI (fixtures/harness/fake-cli.mjs: a node script that prints what it is told,
 * hangs, ignores SIGTERM or leaves a grandchild behind) as the binary. Everything of ours is real:
 * the providers, the executor, its child process handling. The real CLIs run in the harness tier.
 */

const FIXTURES = join(import.meta.dirname, "fixtures", "harness");
const FAKE = join(FIXTURES, "fake-cli.mjs");
const CANARY = "unit-canary-31c4e8a07f";
const KEYS: Record<HarnessName, { name: string; value: string }> = {
  codex: { name: "ORCH_UNIT_CODEX_KEY", value: "sk-unit-codex-1234abcd" },
  claude: { name: "ORCH_UNIT_CLAUDE_KEY", value: "sk-unit-claude-5678efgh" },
  opencode: { name: "ORCH_UNIT_OPENCODE_KEY", value: "sk-unit-opencode-90ijkl" },
};
const HUB_ENV = { ...process.env, ORCH_UNIT_CANARY: CANARY, ...Object.fromEntries(Object.values(KEYS).map((k) => [k.name, k.value])) };

/** What each CLI prints for a finished run, minimal. */
const SUCCESS: Record<HarnessName, unknown[]> = {
  codex: [
    { type: "item.completed", item: { id: "m1", type: "agent_message", text: "Done." } },
    { type: "turn.completed", usage: { input_tokens: 7, output_tokens: 3 } },
  ],
  claude: [{ type: "result", subtype: "success", is_error: false, result: "Done.", usage: { input_tokens: 7, output_tokens: 3 }, total_cost_usd: 0 }],
  opencode: [
    { type: "text", part: { type: "text", text: "Done." } },
    { type: "step_finish", part: { tokens: { input: 7, output: 3 }, cost: 0 } },
  ],
};

function config(name: HarnessName, over: Record<string, string> = {}) {
  const X = name.toUpperCase();
  return hubConfig({
    [`ORCH_${X}_BINARY`]: FAKE,
    [`ORCH_${X}_BASE_URL`]: name === "claude" ? "http://127.0.0.1:9" : "http://127.0.0.1:9/v1",
    [`ORCH_${X}_MODEL`]: "unit-model",
    [`ORCH_${X}_API_KEY_ENV`]: KEYS[name].name,
    ORCH_HARNESS_STARTUP_TIMEOUT_MS: "5000",
    ORCH_SESSION_KILL_GRACE_MS: "300",
    ...over,
  });
}

const dirs: string[] = [];
function worktree(spec: Record<string, unknown>): Worktree {
  const path = mkdtempSync(join(tmpdir(), "orch-harness-unit-"));
  dirs.push(path);
  writeFileSync(join(path, ".fake-cli.json"), JSON.stringify(spec));
  return { path, branch: "orch/session/unit", base: "0000000", repo: path };
}

function setup(name: HarnessName, spec: Record<string, unknown>, over: Record<string, string> = {}, item = workItem()) {
  const c = context(worktree(spec), item);
  const executor = new HarnessExecutor(config(name, over), c.ctx.logger, name, { env: HUB_ENV });
  return { c, executor };
}

/** Whether `pid` is a live process (a zombie waiting for its new parent to reap it is not). */
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
};
const pidsOf = (wt: Worktree) => JSON.parse(readFileSync(join(wt.path, ".fake-cli-pids.json"), "utf8")) as { leader: number; grandchild: number };

beforeAll(() => chmodSync(FAKE, 0o755));
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("harness executor: a run", () => {
  it("turns a CLI's lines into session events and a result, with raw and normalized events logged", async () => {
    const { c, executor } = setup(
      "codex",
      { mode: "replay", fixture: join(FIXTURES, "codex-run.jsonl") },
      { ORCH_HARNESS_LOG_RAW_EVENTS: "true", ORCH_HARNESS_LOG_NORMALIZED_EVENTS: "true" },
    );
    const r = await executor.run(c.ctx);
    expect(r).toMatchObject({
      ok: true,
      summary: "Created hello.txt.",
      usage: { tokensIn: 420, tokensOut: 52, costUsd: 0 },
      model: "unit-model",
      output: { files: ["hello.txt"] },
    });
    expect(r.commitMessage).toMatch(/^Created hello\.txt\.\n\nimplementer step implement of run run1, by codex \(unit-model\) in session sess1\.$/);
    const lines = readFileSync(join(FIXTURES, "codex-run.jsonl"), "utf8").split("\n").filter(Boolean).length;
    expect(c.of("agent.raw")).toHaveLength(lines);
    expect(c.of("agent.raw")[0]).toMatchObject({ provider: "codex", event: { type: "thread.started" } });
    expect(c.of("agent.file_edit")).toEqual([{ path: "hello.txt", change: "add" }]);
    expect(c.beats.n).toBe(lines);
    expect(c.pids).toHaveLength(1);
    const logged = c.logs.join("");
    expect(logged).toContain("codex raw event");
    expect(logged).toContain("codex event agent.tool_call");
  });

  it("logs lines that are not events and carries on", async () => {
    const lines = ["not json at all", "[1, 2, 3]", ...SUCCESS.codex];
    const { c, executor } = setup("codex", { mode: "env", lines });
    const r = await executor.run(c.ctx);
    expect(r.ok).toBe(true);
    expect(c.logs.join("")).toContain("printed a line that is not JSON");
    expect(c.logs.join("")).toContain("printed JSON that is not an event");
  });

  it("takes a structured answer as the step's result, and a free one as text with a note", async () => {
    const answer = JSON.stringify({ status: "failed", summary: "Tests do not pass", reason: "no test runner" });
    const failed = setup(
      "codex",
      { mode: "env", lines: [{ type: "item.completed", item: { id: "m", type: "agent_message", text: answer } }, SUCCESS.codex[1]] },
      { ORCH_LLM_RESPONSE_FORMAT: "structured-json" },
    );
    const r1 = await failed.executor.run(failed.c.ctx);
    expect(r1).toMatchObject({ ok: false, summary: "Tests do not pass", error: { code: "AGENT_FAILED", retryable: false } });

    const free = setup("codex", { mode: "env", lines: SUCCESS.codex }, { ORCH_LLM_RESPONSE_FORMAT: "structured-json" });
    const r2 = await free.executor.run(free.c.ctx);
    expect(r2.ok).toBe(true);
    expect(r2.notes.at(-1)).toContain("not an AgentResponseSchema object");
  });
});

describe("harness executor: the CLI's environment", () => {
  const expected: Record<HarnessName, string[]> = {
    codex: ["CODEX_HOME", KEYS.codex.name],
    claude: ["ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "CLAUDE_CODE_MAX_RETRIES"],
    opencode: ["OPENCODE_DISABLE_AUTOUPDATE", "OPENCODE_DISABLE_LSP_DOWNLOAD", "OPENCODE_DISABLE_MODELS_FETCH", KEYS.opencode.name, "npm_config_offline"],
  };

  it.each(HARNESS_NAMES)("%s gets only what it needs, a HOME of its own with its configuration, removed afterwards", async (name) => {
    const { c, executor } = setup(name, { mode: "env", lines: SUCCESS[name] });
    const r = await executor.run(c.ctx);
    expect(r.error).toBeUndefined();
    const seen = JSON.parse(readFileSync(join(c.ctx.worktree.path, ".fake-cli-env.json"), "utf8")) as {
      env: Record<string, string>;
      argv: string[];
      home: Record<string, string>;
    };
    const base = ["HOME", "LANG", "PATH", "TERM", "TMPDIR", ...(process.env.LC_ALL ? ["LC_ALL"] : [])];
    expect(Object.keys(seen.env).sort()).toEqual([...base, ...expected[name]].sort());
    expect(seen.env.TERM).toBe("dumb");
    expect(seen.env.PATH).toBe(process.env.PATH);
    const home = seen.env.HOME!;
    expect(home.startsWith(join(tmpdir(), `orch-${name}-`))).toBe(true);
    expect(seen.env.TMPDIR).toBe(join(home, "tmp"));
    expect(JSON.stringify(seen)).not.toContain(CANARY);
    expect(existsSync(home)).toBe(false);

    const key = KEYS[name];
    const files = Object.entries(seen.home).map(([p, text]) => [p.slice(home.length), text] as const);
    switch (name) {
      case "codex": {
        expect(seen.env[key.name]).toBe(key.value);
        expect(seen.env.CODEX_HOME).toBe(seen.env.HOME);
        expect(seen.argv.slice(0, 5)).toEqual(["exec", "--json", "--sandbox", "workspace-write", "--skip-git-repo-check"]);
        const toml = Object.fromEntries(files)["/config.toml"]!;
        expect(toml).toContain('base_url = "http://127.0.0.1:9/v1"');
        expect(toml).toContain(`env_key = "${key.name}"`);
        expect(toml).toContain('model = "unit-model"');
        expect(toml).not.toContain(key.value);
        break;
      }
      case "claude":
        // Claude Code reads its key under a fixed name only.
        expect(seen.env.ANTHROPIC_API_KEY).toBe(key.value);
        expect(seen.env.ANTHROPIC_BASE_URL).toBe("http://127.0.0.1:9");
        expect(seen.argv).toEqual(
          expect.arrayContaining(["-p", "--output-format", "stream-json", "--verbose", "--permission-mode", "acceptEdits", "--model", "unit-model"]),
        );
        expect(seen.argv).not.toContain("--dangerously-skip-permissions");
        break;
      case "opencode": {
        expect(seen.env[key.name]).toBe(key.value);
        const cfg = JSON.parse(Object.fromEntries(files)["/.config/opencode/opencode.json"]!) as {
          model: string;
          provider: { orch: { options: Record<string, string> } };
        };
        expect(cfg.model).toBe("orch/unit-model");
        expect(cfg.provider.orch.options).toEqual({ baseURL: "http://127.0.0.1:9/v1", apiKey: `{env:${key.name}}` });
        expect(seen.argv.slice(0, 3)).toEqual(["run", "--format", "json"]);
        break;
      }
    }
    // The step's prompt is the last argument, whole.
    expect(seen.argv.at(-1)).toContain("# Add hello.txt");
  });

  it("redacts the key wherever the CLI prints it, in events and in logs", async () => {
    const key = KEYS.codex.value;
    const lines = [
      {
        type: "item.completed",
        item: { id: "c", type: "command_execution", command: "env", aggregated_output: `KEY=${key}\n`, exit_code: 0, status: "completed" },
      },
      ...SUCCESS.codex,
    ];
    const { c, executor } = setup("codex", { mode: "env", lines }, { ORCH_HARNESS_LOG_RAW_EVENTS: "true", ORCH_HARNESS_LOG_NORMALIZED_EVENTS: "true" });
    await executor.run(c.ctx);
    expect(c.of("agent.tool_result")[0]!.output).toBe("KEY=[redacted]\n");
    expect(JSON.stringify(c.events)).not.toContain(key);
    expect(c.logs.join("")).not.toContain(key);
  });

  it("leaves the key out of Codex's configuration when the hub has none (a server that needs none)", async () => {
    const c = context(worktree({ mode: "env", lines: SUCCESS.codex }));
    const executor = new HarnessExecutor(config("codex"), c.ctx.logger, "codex", { env: { PATH: process.env.PATH } });
    expect((await executor.run(c.ctx)).ok).toBe(true);
    const seen = JSON.parse(readFileSync(join(c.ctx.worktree.path, ".fake-cli-env.json"), "utf8")) as {
      env: Record<string, string>;
      home: Record<string, string>;
    };
    expect(Object.keys(seen.env)).not.toContain(KEYS.codex.name);
    expect(Object.values(seen.home).join("")).not.toContain("env_key");
  });
});

describe("harness executor: process control", () => {
  it("stops a CLI that prints nothing within the startup time: retryable HARNESS_ERROR, group gone", async () => {
    const { c, executor } = setup("codex", { mode: "silent" }, { ORCH_HARNESS_STARTUP_TIMEOUT_MS: "400" });
    const t0 = Date.now();
    const r = await executor.run(c.ctx);
    expect(Date.now() - t0).toBeLessThan(400 + 300 + 3_000);
    expect(r).toMatchObject({ ok: false, error: { code: "HARNESS_ERROR", retryable: true } });
    expect(r.error!.message).toContain("ORCH_HARNESS_STARTUP_TIMEOUT_MS");
    expect(liveInGroup(c.pids[0]!)).toEqual([]);
  });

  it("stops a CLI that outlives the step's timeout when it is shorter than ORCH_HARNESS_TIMEOUT_MS", async () => {
    const { c, executor } = setup("codex", { mode: "slow" }, { ORCH_HARNESS_TIMEOUT_MS: "60000" }, workItem({ timeoutMs: 800 }));
    const r = await executor.run(c.ctx);
    expect(r).toMatchObject({ ok: false, error: { code: "HARNESS_ERROR", retryable: true } });
    expect(r.error!.message).toContain("still running after 800 ms");
    expect(c.beats.n).toBeGreaterThan(3);
  });

  it.each([
    ["leaves on SIGTERM", false],
    ["ignores SIGTERM (SIGKILL after the grace period)", true],
  ])("on abort, kills the whole process group and throws SessionAbortedError: a CLI that %s", async (_what, stubborn) => {
    const { c, executor } = setup("codex", { mode: "fork", stubborn }, { ORCH_SESSION_KILL_GRACE_MS: "300" });
    const running = executor.run(c.ctx);
    const pids = await waitFor(() => existsSync(join(c.ctx.worktree.path, ".fake-cli-pids.json")) && c.beats.n > 0 && pidsOf(c.ctx.worktree), {
      what: "the fake CLI's grandchild",
    });
    expect(alive(pids.grandchild)).toBe(true);
    const t0 = Date.now();
    c.abort.abort(new Error("cancelled"));
    await expect(running).rejects.toBeInstanceOf(SessionAbortedError);
    expect(Date.now() - t0).toBeLessThan(300 + 2_500);
    expect(alive(pids.leader)).toBe(false);
    expect(alive(pids.grandchild)).toBe(false);
    expect(liveInGroup(pids.leader)).toEqual([]);
  });

  it("kills what the CLI left running in its group when it exits on its own", async () => {
    const { c, executor } = setup("codex", { mode: "leave", lines: SUCCESS.codex });
    expect((await executor.run(c.ctx)).ok).toBe(true);
    expect(alive(pidsOf(c.ctx.worktree).grandchild)).toBe(false);
  });

  it("fails retryably when the CLI exits non-zero, with the end of its stderr", async () => {
    const { c, executor } = setup("codex", { mode: "fail", lines: [{ type: "turn.failed", error: { message: "model said no" } }] });
    const r = await executor.run(c.ctx);
    expect(r).toMatchObject({ ok: false, error: { code: "HARNESS_ERROR", retryable: true } });
    expect(r.error!.message).toContain("model said no (exit code 3)");
    expect(r.error!.message).toContain("fake-cli: something went wrong");
    expect(r.commitMessage).toContain("unfinished");
  });

  it("throws SessionAbortedError without starting anything when the session is already aborted", async () => {
    const { c, executor } = setup("codex", { mode: "silent" });
    c.abort.abort();
    await expect(executor.run(c.ctx)).rejects.toBeInstanceOf(SessionAbortedError);
    expect(c.pids).toEqual([]);
  });
});

describe("harness executor: what keeps a run from starting", () => {
  it.each([
    ["a path that is not there", "/nonexistent/bin/codex", '"/nonexistent/bin/codex" is not an executable file;'],
    ["a name that is not on the PATH", "codex-not-installed-here", '"codex-not-installed-here" is not an executable file on the PATH'],
  ])("a missing binary (%s) is a HARNESS_ERROR that says how to install it, not retried", async (_what, binary, says) => {
    const { c, executor } = setup("codex", { mode: "silent" }, { ORCH_CODEX_BINARY: binary });
    const r = await executor.run(c.ctx);
    expect(r).toMatchObject({ ok: false, error: { code: "HARNESS_ERROR", retryable: false } });
    expect(r.error!.message).toContain(says);
    expect(r.error!.message).toContain("npm install -g @openai/codex");
    expect(r.error!.message).toContain("ORCH_CODEX_BINARY");
    expect(c.pids).toEqual([]);
    expect(await executor.check()).toMatchObject({ ok: false, detail: r.error!.message });
  });

  it.each([
    ["locked refuses every run", { ORCH_LLM_POLICY: "locked" }, "ORCH_LLM_POLICY=locked"],
    ["oss refuses a hosted base URL", { ORCH_CODEX_BASE_URL: "https://api.example.com/v1" }, "api.example.com is not a local model server"],
    [
      "oss refuses the CLI's hosted default when no base URL is set",
      { ORCH_CODEX_BASE_URL: "" },
      "ORCH_CODEX_BASE_URL is unset, so codex would call its hosted default (https://api.openai.com/v1)",
    ],
  ])("the LLM policy: %s (LLM_POLICY_REFUSED, nothing started)", async (_what, over, says) => {
    const { c, executor } = setup("codex", { mode: "silent" }, over);
    const r = await executor.run(c.ctx);
    expect(r).toMatchObject({ ok: false, error: { code: "LLM_POLICY_REFUSED", retryable: false } });
    expect(r.error!.message).toContain(says);
    expect(c.pids).toEqual([]);
    expect((await executor.check()).ok).toBe(false);
  });

  it.each([
    ["ALLOW_HOSTED_LLM", { ORCH_CODEX_BASE_URL: "", ALLOW_HOSTED_LLM: "true" }],
    ["LOCAL_LLM_ALLOWED_HOSTS", { ORCH_CODEX_BASE_URL: "", LOCAL_LLM_ALLOWED_HOSTS: "api.openai.com" }],
    ["ORCH_LLM_POLICY=hosted", { ORCH_CODEX_BASE_URL: "https://api.example.com/v1", ORCH_LLM_POLICY: "hosted" }],
  ])("the LLM policy lets a hosted endpoint through with %s", async (_what, over) => {
    const { c, executor } = setup("codex", { mode: "env", lines: SUCCESS.codex }, over);
    expect((await executor.run(c.ctx)).ok).toBe(true);
  });

  it("Claude Code without its key, and OpenCode without a model, are HARNESS_ERRORs not retried", async () => {
    const claude = context(worktree({ mode: "silent" }));
    const r1 = await new HarnessExecutor(config("claude"), claude.ctx.logger, "claude", { env: { PATH: process.env.PATH } }).run(claude.ctx);
    expect(r1).toMatchObject({ ok: false, error: { code: "HARNESS_ERROR", retryable: false } });
    expect(r1.error!.message).toContain(`${KEYS.claude.name} is not set`);

    const opencode = context(worktree({ mode: "silent" }));
    const r2 = await new HarnessExecutor(config("opencode", { ORCH_OPENCODE_MODEL: "" }), opencode.ctx.logger, "opencode", { env: HUB_ENV }).run(opencode.ctx);
    expect(r2).toMatchObject({ ok: false, error: { code: "HARNESS_ERROR", retryable: false } });
    expect(r2.error!.message).toContain("ORCH_OPENCODE_MODEL");
    expect([...claude.pids, ...opencode.pids]).toEqual([]);
  });

  it("the readiness check runs `--version` and names the model server", async () => {
    const { executor } = setup("opencode", { mode: "silent" });
    const r = await executor.check();
    expect(r.ok).toBe(true);
    expect(r.detail).toContain("fake-cli 9.9.9");
    expect(r.detail).toContain("http://127.0.0.1:9/v1");
  });
});

describe("harness provider factory", () => {
  it("builds a provider for every harness the routing names, and seed 003's aliases reach them", () => {
    expect(EXECUTOR_NAMES.filter((n) => (HARNESS_NAMES as readonly string[]).includes(n))).toEqual([...HARNESS_NAMES]);
    const cfg = hubConfig({
      ORCH_AGENT_EXECUTOR: "harness.codex",
      ORCH_AGENT_EXECUTOR_REVIEWER: "claude-code",
      ORCH_AGENT_EXECUTOR_TESTER: "harness.opencode",
    });
    expect([cfg.ORCH_AGENT_EXECUTOR, cfg.ORCH_AGENT_EXECUTOR_REVIEWER, cfg.ORCH_AGENT_EXECUTOR_TESTER]).toEqual(["codex", "claude", "opencode"]);
    for (const name of HARNESS_NAMES) {
      const p = createHarnessProvider(name, cfg);
      expect(p.name).toBe(name);
      expect(p.binary).toBe(name);
      const e = new HarnessExecutor(cfg, context(worktree({})).ctx.logger, name);
      expect([e.name, e.provider]).toEqual([name, name]);
    }
  });
});
