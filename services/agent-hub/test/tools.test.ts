import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { PathGuard, ToolRefusal, Toolbox, allowlistProblems, checkOption, realpathLoose, runProcess, type ToolsConfig } from "../src/tools/index.js";
import { tempRepo } from "./llm-helpers.js";

/** The tool layer on its own: real processes, real files, real symlinks in a temp git repository. */

let repo: ReturnType<typeof tempRepo>;
beforeEach(() => {
  repo = tempRepo();
  writeFileSync(join(repo.path, "a.txt"), "alpha\n");
  writeFileSync(join(dirname(repo.path), "outside.txt"), "outside\n");
});
afterEach(() => repo.cleanup());

const never = new AbortController().signal;
const box = (over: Partial<ToolsConfig> = {}) =>
  new Toolbox({ allowlist: ["ls", "cat", "grep", "find", "sleep", "read_file", "write_file"], roots: [], timeoutMs: 5_000, maxOutputBytes: 65_536, ...over });

describe("allowlist", () => {
  it("accepts bare command names and refuses paths, odd names and commands that launch others", () => {
    expect(allowlistProblems(["rg", "ls", "read_file", "git-lfs"])).toEqual([]);
    const problems = allowlistProblems(["/bin/ls", "python3.11", "bash", "env", "xargs"]);
    expect(problems).toHaveLength(5);
    expect(problems.join("\n")).toMatch(/"bash" runs other commands/);
    expect(() => box({ allowlist: ["sh"] })).toThrow(/ORCH_TOOL_ALLOWLIST/);
  });
});

describe("options that run programs or follow links out", () => {
  it.each([
    ["rg", "--pre=./x"],
    ["rg", "--pre"],
    ["rg", "--pre-glob=*"],
    ["sort", "--compress-prog=sh"],
    ["rg", "-L"],
    ["rg", "--follow"],
    ["find", "-exec"],
    ["find", "-execdir"],
    ["find", "-delete"],
    ["find", "-L"],
    ["fd", "--exec"],
    ["fd", "-Hx"],
    ["git", "-c"],
    ["git", "--upload-pack=evil"],
    ["tar", "--to-command=sh"],
    ["tar", "--to-comm=sh"],
    ["grep", "-R"],
    ["ls", "--exec"],
  ])("%s %s is refused", (cmd, arg) => {
    expect(() => checkOption(cmd, arg)).toThrow(ToolRefusal);
  });

  it.each([
    ["rg", "-n"],
    ["rg", "--pretty"],
    ["rg", "--context=3"],
    ["ls", "-la"],
    ["find", "-name"],
    ["grep", "-rn"],
    ["git", "--no-pager"],
    ["grep", "--text"],
    ["grep", "--include=*.ts"],
    ["rg", "--pr"],
  ])("%s %s is fine", (cmd, arg) => {
    expect(() => checkOption(cmd, arg)).not.toThrow();
  });
});

describe("PathGuard", () => {
  it("resolves inside the roots, and refuses .., absolute paths and symlinks out, existing or not", async () => {
    symlinkSync(join(dirname(repo.path), "outside.txt"), join(repo.path, "link"));
    symlinkSync(dirname(repo.path), join(repo.path, "parent"));
    const g = await PathGuard.create([repo.path], repo.path);
    expect(await g.resolve("a.txt")).toBe(join(repo.path, "a.txt"));
    expect(await g.resolve("new/dir/file.ts")).toBe(join(repo.path, "new", "dir", "file.ts"));
    expect(await g.resolve(".")).toBe(repo.path);
    for (const p of ["..", "../outside.txt", "/etc/passwd", "link", "parent/outside.txt", "parent/not-yet/x", "a.txt/../../outside.txt"]) {
      await expect(g.resolve(p), p).rejects.toThrow(ToolRefusal);
    }
  });

  it("checks option values and attached short values as paths", async () => {
    const g = await PathGuard.create([repo.path], repo.path);
    await expect(g.checkArgs("grep", ["--file=a.txt", "x"])).resolves.toBeUndefined();
    await expect(g.checkArgs("grep", ["--file=../outside.txt", "x"])).rejects.toThrow(/outside the allowed roots/);
    await expect(g.checkArgs("git", ["-C/etc", "status"])).rejects.toThrow(ToolRefusal);
    await expect(g.checkArgs("ls", ["--", "-weird-but-inside"])).resolves.toBeUndefined();
    await expect(g.checkArgs("ls", ["--", "../"])).rejects.toThrow(ToolRefusal);
    await expect(g.checkArgs("cat", ["a\0b"])).rejects.toThrow(/NUL/);
  });

  it("refuses a tool directory outside every root", async () => {
    await expect(PathGuard.create([repo.path], dirname(repo.path))).rejects.toThrow(/ORCH_TOOL_ALLOWED_ROOTS/);
  });

  it("realpathLoose follows the nearest existing parent", async () => {
    symlinkSync(dirname(repo.path), join(repo.path, "up"));
    expect(await realpathLoose(join(repo.path, "up", "x", "y"))).toBe(join(dirname(repo.path), "x", "y"));
  });
});

/** Running (a killed child not yet reaped by its new parent is a zombie: dead). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

describe("runProcess", () => {
  it("kills the whole process group at the time cap", async () => {
    const started = Date.now();
    const r = await runProcess("sh", ["-c", "sleep 30 & echo $!; wait"], { cwd: repo.path, timeoutMs: 300, maxBytes: 1024, signal: never });
    expect(r.timedOut).toBe(true);
    expect(Date.now() - started).toBeLessThan(3_000);
    const grandchild = Number(r.stdout.trim());
    expect(grandchild).toBeGreaterThan(0);
    await new Promise((res) => setTimeout(res, 100));
    expect(alive(grandchild)).toBe(false);
  });

  it("caps the output and says so", async () => {
    writeFileSync(join(repo.path, "big.txt"), "x".repeat(200_000));
    const r = await box({ maxOutputBytes: 2048 })
      .session(repo.path)
      .call("cat", { args: ["big.txt"] }, never);
    expect(r.ok).toBe(true);
    expect(r.output!.startsWith("x".repeat(2048))).toBe(true);
    expect(r.output).toContain("[output truncated at 2048 bytes (ORCH_TOOL_MAX_OUTPUT_BYTES)]");
    expect(r.output!.length).toBeLessThan(2_200);
  });

  it("passes no secret of the hub's environment to a tool", async () => {
    process.env.LOCAL_LLM_API_KEY = "sk-must-not-leak";
    try {
      const r = await runProcess("env", [], { cwd: repo.path, timeoutMs: 5_000, maxBytes: 65_536, signal: never });
      expect(r.code).toBe(0);
      expect(r.stdout).toContain("PATH=");
      expect(r.stdout).not.toContain("sk-must-not-leak");
    } finally {
      delete process.env.LOCAL_LLM_API_KEY;
    }
  });

  it("runs without a shell: metacharacters are plain arguments", async () => {
    const r = await box()
      .session(repo.path)
      .call("ls", { args: ["a.txt;touch pwned"] }, never);
    expect(r.ok).toBe(false);
    expect(r.output).toContain("No such file");
    expect(await box().session(repo.path).call("ls", { args: [] }, never)).toMatchObject({ ok: true });
    expect((await box().session(repo.path).call("ls", { args: [] }, never)).output).not.toContain("pwned");
  });

  it("stops at once when the session aborts", async () => {
    const ctl = new AbortController();
    const started = Date.now();
    const pending = box()
      .session(repo.path)
      .call("sleep", { args: ["30"] }, ctl.signal);
    setTimeout(() => ctl.abort(), 100);
    const r = await pending;
    expect(r).toMatchObject({ ok: false, error: "aborted" });
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it("a tool over ORCH_TOOL_TIMEOUT_MS is killed and reported", async () => {
    const r = await box({ timeoutMs: 200 })
      .session(repo.path)
      .call("sleep", { args: ["30"] }, never);
    expect(r).toMatchObject({ ok: false, error: "killed after 200 ms (ORCH_TOOL_TIMEOUT_MS)" });
  });
});

describe("built-in file tools", () => {
  it("read_file caps, write_file creates parents and reports add then modify", async () => {
    writeFileSync(join(repo.path, "big.txt"), "y".repeat(5_000));
    const s = box({ maxOutputBytes: 1024 }).session(repo.path);
    const read = await s.call("read_file", { path: "big.txt" }, never);
    expect(read.output).toMatch(/^y{1024}\n\[output truncated/);
    expect(await s.call("write_file", { path: "deep/er/f.txt", content: "1" }, never)).toMatchObject({
      ok: true,
      edit: { path: "deep/er/f.txt", change: "add" },
    });
    expect(await s.call("write_file", { path: "deep/er/f.txt", content: "2" }, never)).toMatchObject({ ok: true, edit: { change: "modify" } });
    expect(await s.call("read_file", { path: "deep/er/f.txt" }, never)).toMatchObject({ ok: true, output: "2" });
  });

  it("write_file refuses .git and a directory symlinked out; read_file refuses what is not a file", async () => {
    mkdirSync(join(dirname(repo.path), "elsewhere"));
    symlinkSync(join(dirname(repo.path), "elsewhere"), join(repo.path, "out"));
    const s = box().session(repo.path);
    expect(await s.call("write_file", { path: ".git/config", content: "x" }, never)).toMatchObject({ refused: true });
    expect(await s.call("write_file", { path: "sub/.git", content: "gitdir: /tmp" }, never)).toMatchObject({ refused: true });
    expect(await s.call("write_file", { path: "out/x.txt", content: "x" }, never)).toMatchObject({ refused: true });
    expect(await s.call("read_file", { path: "." }, never)).toMatchObject({ ok: false, error: ". is not a file" });
    expect(await s.call("write_file", { path: "x.txt" }, never)).toMatchObject({ ok: false, error: "`content` must be a string" });
  });

  it("refuses a tool that is not on the allowlist, and an unknown command is an error, not a crash", async () => {
    expect(
      await box({ allowlist: ["cat"] })
        .session(repo.path)
        .call("write_file", { path: "x", content: "" }, never),
    ).toMatchObject({ refused: true });
    expect(
      await box({ allowlist: ["no-such-cmd-xyz"] })
        .session(repo.path)
        .call("no-such-cmd-xyz", { args: [] }, never),
    ).toMatchObject({
      ok: false,
      error: "no-such-cmd-xyz is not installed on this host",
    });
  });
});
