import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readFile, readdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { WorkItem } from "@orch/contracts";
import { artifactFor, featureId, slug, type Artifact } from "../artifacts.js";
import type { Executor, ExecutorResult, SessionContext } from "./types.js";

/**
 * The offline executor (`ORCH_AGENT_EXECUTOR=stub`): no model, deterministic, but real work. In the
 * session's worktree it writes what the step's phase asks for (artifacts.ts): a specification,
 * plan or task list as Markdown; a code change as an ES module with a `node:test` test beside it; a
 * test report made by actually running `node --test`; a review, QA report or pull request
 * description. The session runner commits it. So a whole SpecKit workflow or ticket pipeline runs
 * end to end, with real commits on real branches, and no model anywhere.
 */

const TEST_TIMEOUT_MS = 60_000;

const str = (v: unknown): string | undefined => (typeof v === "string" && v.trim() ? v.trim() : undefined);
const obj = (v: unknown): Record<string, unknown> => (v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {});

/** What the step is about, in a line: the feature, the ticket, the goal. */
function subject(item: WorkItem): string {
  const ticket = obj(item.inputs.ticket);
  return (
    str(item.inputs.feature_description) ??
    str(ticket.title) ??
    str(ticket.description) ??
    str(obj(item.inputs.protocol).description) ??
    str(item.inputs.description) ??
    str(item.goal) ??
    item.title ??
    item.stepId
  );
}

function camel(s: string): string {
  const parts = slug(s, 40).split("-").filter(Boolean);
  const name = parts.map((p, i) => (i === 0 ? p : p[0]!.toUpperCase() + p.slice(1))).join("");
  return /^[a-z]/.test(name) ? name : `feature${name.charAt(0).toUpperCase()}${name.slice(1)}`;
}

function moduleName(item: WorkItem): string {
  if (item.type.startsWith("speckit.")) return featureId(item);
  const ticket = obj(item.inputs.ticket);
  return slug(str(ticket.key) ?? str(ticket.id) ?? str(ticket.title) ?? item.title ?? item.stepId, 40);
}

function markdown(item: WorkItem, a: Artifact): string {
  const lines = [
    `# ${a.title}: ${subject(item)}`,
    "",
    `_Written by the stub ${item.role} (offline executor) for step \`${item.stepId}\` of run \`${item.runId}\`._`,
    "",
  ];
  const ctx = str(item.inputs.context) ?? (item.inputs.context ? JSON.stringify(item.inputs.context) : undefined);
  switch (a.kind) {
    case "plan":
      lines.push(
        "## Approach",
        "",
        `1. Understand: ${subject(item)}.`,
        "2. Change the code in small steps, each with a test.",
        "3. Verify, then open a pull request.",
        "",
      );
      break;
    case "review":
      lines.push("## Findings", "", "- The change does what the task asks.", "- Tests cover the new behaviour.", "", "Verdict: approve.", "");
      break;
    case "pull_request":
      lines.push("## Summary", "", subject(item), "", "## Checks", "", "- [x] tests pass", "");
      break;
    default: {
      const file = a.path.split("/").pop() ?? "";
      if (file === "spec.md") {
        lines.push(
          "## User story",
          "",
          `As a user, I want ${subject(item).replace(/\.$/, "")}, so that my work gets easier.`,
          "",
          "## Functional requirements",
          "",
          "- FR-001: the system provides the capability described above.",
          "- FR-002: failures are reported clearly.",
          "",
          "## Acceptance criteria",
          "",
          "- Given the feature is available, when I use it, then it behaves as described.",
          "",
        );
      } else if (file === "research.md") {
        lines.push(
          "## Technical context",
          "",
          "- Language and runtime: as the repository uses today.",
          "- Constraints: no new external services.",
          "",
          "## Decisions",
          "",
          "- Build on the existing modules; keep the change small.",
          "",
        );
      } else if (file === "plan.md") {
        lines.push("## Phases", "", "1. Data and interfaces.", "2. Behaviour, test first.", "3. Documentation.", "");
      } else if (file === "tasks.md") {
        lines.push("## Tasks", "", "- [ ] T001 Write a failing test for the feature", "- [ ] T002 Implement the feature", "- [ ] T003 Document it", "");
      } else {
        lines.push("## Notes", "", subject(item), "");
      }
    }
  }
  if (ctx) lines.push("## Context", "", ctx, "");
  const prev = item.inputs.previous;
  if (prev !== undefined && prev !== null) lines.push("## Builds on", "", "```json", JSON.stringify(prev, null, 2).slice(0, 4_000), "```", "");
  if (item.rework > 0) lines.push(`## Revision ${item.rework}`, "", `Addressed: ${item.feedback ?? "the reviewer's feedback"}`, "");
  return lines.join("\n");
}

function sourceFiles(item: WorkItem): { src: string; test: string; fn: string } {
  const name = moduleName(item);
  return { src: `src/${name}.mjs`, test: `test/${name}.test.mjs`, fn: camel(name) };
}

function codeChange(item: WorkItem): Record<string, string> {
  const { src, test, fn } = sourceFiles(item);
  const what = subject(item).replace(/\\/g, "\\\\").replace(/"/g, '\\"');
  const revision = item.rework + item.iteration;
  return {
    [src]: [
      `// ${subject(item)}`,
      `// Written by the stub implementer (offline executor), step ${item.stepId} of run ${item.runId}.`,
      "",
      `/** What this feature does, in a sentence. */`,
      `export function ${fn}() {`,
      `  return { feature: "${what}", revision: ${revision} };`,
      "}",
      "",
    ].join("\n"),
    [test]: [
      'import { test } from "node:test";',
      'import assert from "node:assert/strict";',
      `import { ${fn} } from "../${src}";`,
      "",
      `test("${fn} describes the feature", () => {`,
      `  assert.equal(${fn}().feature, "${what}");`,
      "});",
      "",
    ].join("\n"),
  };
}

function extraTests(item: WorkItem): Record<string, string> {
  const { src, fn } = sourceFiles(item);
  return {
    [`test/${moduleName(item)}.verify.test.mjs`]: [
      'import { test } from "node:test";',
      'import assert from "node:assert/strict";',
      'import { existsSync } from "node:fs";',
      "",
      `test("the implementation of ${moduleName(item)} is present", async () => {`,
      `  if (!existsSync(new URL("../${src}", import.meta.url))) return;`,
      `  const m = await import("../${src}");`,
      `  assert.equal(typeof m.${fn}, "function");`,
      "});",
      "",
    ].join("\n"),
  };
}

/** Runs `node --test` on the worktree's test files, as a tester would. */
async function runTests(cwd: string, signal: AbortSignal): Promise<{ ok: boolean; output: string; files: string[] }> {
  const dir = join(cwd, "test");
  const files = existsSync(dir) ? (await readdir(dir)).filter((f) => /\.test\.m?js$/.test(f)).map((f) => join("test", f)) : [];
  if (files.length === 0) return { ok: true, output: "no tests found", files };
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["--test", ...files],
      { cwd, timeout: TEST_TIMEOUT_MS, signal, maxBuffer: 1024 * 1024, env: { PATH: process.env.PATH ?? "", NODE_ENV: "test" } },
      (err, stdout, stderr) => {
        resolve({ ok: !err, output: `${stdout}${stderr}`.slice(-8_000), files });
      },
    );
  });
}

export class StubExecutor implements Executor {
  readonly name = "stub";
  readonly provider = "stub";

  async #write(ctx: SessionContext, files: Record<string, string>): Promise<void> {
    for (const [path, content] of Object.entries(files)) {
      if (ctx.signal.aborted) throw ctx.signal.reason ?? new Error("aborted");
      const abs = join(ctx.worktree.path, path);
      const existed = existsSync(abs);
      if (existed && (await readFile(abs, "utf8")) === content) continue;
      await mkdir(dirname(abs), { recursive: true });
      await writeFile(abs, content);
      ctx.emit({ type: "agent.file_edit", data: { path, change: existed ? "modify" : "add" } });
      ctx.heartbeat();
    }
  }

  async run(ctx: SessionContext): Promise<ExecutorResult> {
    const { item, worktree } = ctx;
    const a = artifactFor(item);
    const files: Record<string, string> = {};
    let ok = true;
    let summary: string;
    const output: Record<string, unknown> = { role: item.role, type: item.type, artifact: a.path, iteration: item.iteration };
    if (item.feedback && item.rework > 0) output.addressed = item.feedback;
    else if (item.feedback) output.fixing = item.feedback;

    let runsTests = false;
    if (a.kind === "code") {
      Object.assign(files, codeChange(item));
      summary = `${item.role} changed ${Object.keys(files).join(", ")}`;
    } else if (a.kind === "tests") {
      Object.assign(files, extraTests(item));
      runsTests = true;
      summary = `${item.role} added ${Object.keys(files).join(", ")}`;
    } else if (a.kind === "report" && item.kind !== "qa") {
      runsTests = true;
      summary = "tests run";
    } else {
      files[a.path] = markdown(item, a);
      summary = `${item.role} wrote ${a.path}`;
    }
    await this.#write(ctx, files);
    if (runsTests) {
      const run = await runTests(worktree.path, ctx.signal);
      ok = run.ok;
      output.tests = { passed: run.ok, files: run.files };
      summary = `${summary}; node --test ${run.ok ? "passed" : "failed"} (${run.files.length} files)`;
      if (a.kind === "report") {
        const report = {
          [a.path]: [
            `# ${a.title}`,
            "",
            `\`node --test\` ${run.ok ? "passed" : "failed"} (${run.files.length} files).`,
            "",
            "```",
            run.output.trim(),
            "```",
            "",
          ].join("\n"),
        };
        await this.#write(ctx, report);
        Object.assign(files, report);
      }
    }
    if (item.kind === "plan") output.steps = [];
    if (item.kind === "qa") {
      output.passed = true;
      summary = `QA of ${item.stepId} passed`;
    }

    output.files = Object.keys(files);
    output.summary = summary;
    ctx.emit({ type: "agent.message", data: { role: "assistant", text: summary } });
    ctx.logger.info({ role: item.role, type: item.type, kind: item.kind, files: Object.keys(files) }, `stub ${item.role}: ${summary}`);
    return {
      ok,
      summary,
      notes: [`stub ${item.role} ${item.kind === "qa" ? "checked" : "did"} ${item.type}${item.rework > 0 ? ` (rework ${item.rework})` : ""}: ${summary}`],
      output,
      usage: { tokensIn: 0, tokensOut: 0, costUsd: 0 },
      commitMessage: `${item.role}: ${a.title} for ${subject(item)}`.slice(0, 200),
      ...(ok ? {} : { error: { code: "TESTS_FAILED", message: summary, retryable: false } }),
    };
  }
}
