import { describe, expect, it } from "vitest";
import { encode } from "@orch/bus";
import { StepDiffReply, StepDiffRequest, type SessionRecord } from "@orch/contracts";
import { boundFiles, cutBytes, parseNumstat, parsePatch, StepDiffService } from "../src/diffs/index.js";
import { RepoFailure } from "../src/repos.js";
import { GitCommandError, GitOutputLimitError } from "../src/git/index.js";
import { secretRedactor } from "../src/supervisor/index.js";

const PATCH = [
  "diff --git a/specs/001 x/spec.md b/specs/001 x/spec.md",
  "new file mode 100644",
  "index 0000000..1111111",
  "--- /dev/null",
  "+++ b/specs/001 x/spec.md",
  "@@ -0,0 +1,3 @@",
  "+# Spec",
  "+",
  "+--- not a header: a line that starts with three dashes",
  "diff --git a/README.md b/README.md",
  "index 2222222..3333333 100644",
  "--- a/README.md",
  "+++ b/README.md",
  "@@ -1,2 +1,2 @@",
  " # title",
  "-old line",
  "+new line",
  "\\ No newline at end of file",
  "diff --git a/gone.txt b/gone.txt",
  "deleted file mode 100644",
  "index 4444444..0000000",
  "--- a/gone.txt",
  "+++ /dev/null",
  "@@ -1 +0,0 @@",
  "-bye",
  "diff --git a/logo.png b/logo.png",
  "new file mode 100644",
  "index 0000000..5555555",
  "Binary files /dev/null and b/logo.png differ",
  "",
].join("\n");

describe("parsePatch", () => {
  it("splits a commit's patch into files with their change and counts", () => {
    const files = parsePatch(PATCH);
    expect(files.map(({ patch: _, ...f }) => f)).toEqual([
      { path: "specs/001 x/spec.md", change: "add", additions: 3, deletions: 0 },
      { path: "README.md", change: "modify", additions: 1, deletions: 1 },
      { path: "gone.txt", change: "delete", additions: 0, deletions: 1 },
      { path: "logo.png", change: "add", additions: 0, deletions: 0, binary: true },
    ]);
    expect(files[0]!.patch.startsWith("diff --git a/specs/001 x/spec.md")).toBe(true);
    expect(files[0]!.patch.endsWith("+--- not a header: a line that starts with three dashes\n")).toBe(true);
    expect(files.map((f) => f.patch).join("")).toBe(PATCH);
  });

  it("reads nothing from an empty patch, and quoted paths without their quotes", () => {
    expect(parsePatch("")).toEqual([]);
    const [f] = parsePatch('diff --git "a/t\\"ab.md" "b/t\\"ab.md"\nindex 1..2 100644\n--- "a/t\\"ab.md"\n+++ "b/t\\"ab.md"\n@@ -1 +1 @@\n-a\n+b\n');
    expect(f).toMatchObject({ path: 't"ab.md', additions: 1, deletions: 1 });
  });
});

describe("bounding", () => {
  it("cuts after a whole line, never inside a character", () => {
    expect(cutBytes("one\ntwo\nthree\n", 9)).toBe("one\ntwo\n");
    expect(cutBytes("short", 100)).toBe("short");
    expect(cutBytes("ééé", 3)).toBe("é");
  });

  it("cuts a file over its own bound and the files past the answer's, each with a note; counts stay whole", () => {
    const big = `diff --git a/a b/a\n@@ -0,0 +1,1000 @@\n${"+line of text\n".repeat(1000)}`;
    const files = [...parsePatch(big), ...parsePatch(big.replaceAll("a/a b/a", "a/b b/b")), ...parsePatch(big.replaceAll("a/a b/a", "a/c b/c"))];
    const bounds = { fileMax: 10_000, left: 14_000 };
    expect(boundFiles(files, bounds)).toBe(true);
    expect(files.map((f) => f.truncated)).toEqual([true, true, true]);
    expect(files.map((f) => f.additions)).toEqual([1000, 1000, 1000]);
    expect(Buffer.byteLength(files[0]!.patch)).toBeLessThan(10_200);
    expect(files[0]!.patch).toMatch(/\+line of text\n… \d+ more bytes of this file's patch not shown \(1000 additions, 0 deletions in all\)\n$/);
    expect(files[1]!.patch.length).toBeLessThan(4_200);
    expect(files[2]!.patch).toMatch(/^… \d+ more bytes/);
    expect(bounds.left).toBeLessThan(256);

    const small = parsePatch(PATCH);
    expect(boundFiles(small, { fileMax: 10_000, left: 100_000 })).toBe(false);
    expect(small.some((f) => f.truncated)).toBe(false);
  });

  it("reads --numstat lines for a commit too large to show", () => {
    expect(parseNumstat("3\t1\tsrc/a.ts\n-\t-\tlogo.png\n")).toEqual([
      { path: "src/a.ts", change: "modify", additions: 3, deletions: 1, patch: "", truncated: true },
      { path: "logo.png", change: "modify", additions: 0, deletions: 0, binary: true, patch: "", truncated: true },
    ]);
  });
});

describe("StepDiffService", () => {
  const session = (over: Partial<SessionRecord>): SessionRecord =>
    ({
      v: 1,
      sessionId: "s1",
      runId: "run-1",
      projectId: "acme",
      stepId: "phase_1",
      attemptId: "a",
      attempt: 1,
      createdAt: 1,
      worktree: { repo: "/r", path: "/w", branch: "orch/s1", base: "b", runBranch: "orch/run-1" },
      result: { ok: true, notes: [], commit: "a".repeat(40) },
      ...over,
    }) as SessionRecord;
  const logger = { warn: () => {}, info: () => {}, child: () => logger } as never;
  const service = (
    sessions: SessionRecord[],
    show: (sha: string, stat: boolean) => Promise<{ message: string; body: string }>,
    more: Partial<ConstructorParameters<typeof StepDiffService>[0]> = {},
  ) =>
    new StepDiffService({
      bus: {} as never,
      git: { showCommit: (_cwd: string, sha: string, o: { stat?: boolean } = {}) => show(sha, o.stat === true) },
      repository: async () => "/r",
      redact: secretRedactor(["hunter2-secret-value"]),
      logger,
      sessions: async () => sessions,
      ...more,
    });
  const ask = async (s: StepDiffService, req: Partial<StepDiffRequest> = {}) => {
    const out = await s.answer(encode(StepDiffRequest, { runId: "run-1", stepId: "phase_1", attempt: 1, ...req }));
    return StepDiffReply.parse(JSON.parse(new TextDecoder().decode(out)));
  };

  it("shows the attempt's commits, oldest first, with secrets redacted before the patch is cut", async () => {
    const s = service(
      [
        session({ sessionId: "s2", createdAt: 2, result: { ok: true, notes: [], commit: "b".repeat(40) } }),
        session({}),
        session({ attempt: 2, sessionId: "s3" }),
      ],
      async (sha) => ({ message: `work ${sha[0]}`, body: `diff --git a/x b/x\n@@ -1 +1 @@\n-a\n+token: hunter2-secret-value\n` }),
    );
    const r = await ask(s);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.diff.commits.map((c) => [c.sha[0], c.message, c.branch])).toEqual([
      ["a", "work a", "orch/s1"],
      ["b", "work b", "orch/s1"],
    ]);
    expect(r.diff.commits[0]!.files[0]!.patch).not.toContain("hunter2");
    expect(r.diff.commits[0]!.files[0]!.patch).toContain("[REDACTED]");
  });

  it("answers NOT_FOUND without a commit in that attempt, GIT_ERROR when git fails, and lists a commit too large to show", async () => {
    expect(
      await ask(
        service([session({})], async () => ({ message: "", body: "" })),
        { attempt: 3 },
      ),
    ).toMatchObject({
      ok: false,
      error: { code: "NOT_FOUND", message: "Step phase_1 made no commit in attempt 3" },
    });
    expect(await ask(service([session({ stepId: "other" })], async () => ({ message: "", body: "" })))).toMatchObject({
      ok: false,
      error: { code: "NOT_FOUND" },
    });
    const failing = service([session({})], async () => {
      throw new GitCommandError({ args: ["show"], cwd: "/r", stderr: "fatal: bad object aaaa" }, 128);
    });
    expect(await ask(failing)).toMatchObject({ ok: false, error: { code: "GIT_ERROR", message: expect.stringMatching(/bad object/) } });
    const huge = service([session({})], async (_sha, stat) => {
      if (!stat) throw new GitOutputLimitError({ args: ["show"], cwd: "/r", stderr: "" }, 10);
      return { message: "big", body: "5\t0\tbig.txt\n" };
    });
    expect(await ask(huge)).toMatchObject({
      ok: true,
      diff: { truncated: true, commits: [{ truncated: true, files: [{ path: "big.txt", additions: 5, patch: "" }] }] },
    });
  });

  it("reads a project with no record where its session worked (a scratch repository), when this hub has it", async () => {
    const seen: string[] = [];
    const noProject = (exists: boolean) =>
      service([session({})], async () => ({ message: "m", body: "" }), {
        repository: async () => {
          throw new RepoFailure("NOT_FOUND", "Project not found");
        },
        exists: (p) => (seen.push(p), exists),
      });
    expect(await ask(noProject(true))).toMatchObject({ ok: true, diff: { commits: [{ message: "m", files: [] }] } });
    expect(seen).toEqual(["/r"]);
    expect(await ask(noProject(false))).toMatchObject({ ok: false, error: { code: "NOT_FOUND", message: "Project not found" } });
  });
});
