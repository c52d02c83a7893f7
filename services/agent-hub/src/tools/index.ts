import { mkdir, open, stat, writeFile } from "node:fs/promises";
import { dirname, relative, sep } from "node:path";
import { LAUNCHERS, PathGuard, ToolRefusal, realpathLoose, within } from "./guard.js";
import { runProcess } from "./process.js";

export { LAUNCHERS, PathGuard, ToolRefusal, checkOption, realpathLoose, within } from "./guard.js";
export { runProcess, type ProcessOptions, type ProcessOutcome } from "./process.js";

/**
 * The tools a local model may call (`ORCH_TOOL_ALLOWLIST`), as function tools:
 *
 * - a command on the allowlist (`rg`, `ls`, `cat`, …) is a function of the same name taking
 *   `{args: string[]}`, run without a shell in the tool directory;
 * - `read_file {path}` and `write_file {path, content}` are built in (writing is how a model
 *   without a shell changes code); they are offered only when the allowlist names them.
 *
 * Every call goes through the same checks (see guard.ts): a name not on the allowlist, a path
 * outside the allowed roots, an option that runs programs — each is refused, never run, and the
 * refusal goes back to the model as the call's result. `write_file` also refuses anything under
 * `.git`, which would let a model rewrite the worktree's link to its repository or plant a hook.
 */

export const BUILTIN_TOOLS = ["read_file", "write_file"] as const;

/** Function names every API accepts. */
const NAME = /^[A-Za-z0-9_-]{1,64}$/;

export interface ToolsConfig {
  /** `ORCH_TOOL_ALLOWLIST`. */
  allowlist: readonly string[];
  /** `ORCH_TOOL_CWD`; the worktree when unset. */
  cwd?: string;
  /** `ORCH_TOOL_ALLOWED_ROOTS`; the worktree when empty. */
  roots: readonly string[];
  timeoutMs: number;
  maxOutputBytes: number;
}

export interface ToolSpecJson {
  name: string;
  description: string;
  parameters: Record<string, unknown>;
}

export interface ToolOutcome {
  ok: boolean;
  /** What goes back to the model (output, or the error). */
  content: string;
  output?: string;
  error?: string;
  refused?: boolean;
  /** The file a `write_file` created or changed, relative to the worktree. */
  edit?: { path: string; change: "add" | "modify" };
}

/** Problems with an allowlist (names no API accepts, commands that run other commands); empty when fine. */
export function allowlistProblems(allowlist: readonly string[]): string[] {
  const problems: string[] = [];
  for (const name of allowlist) {
    if (!NAME.test(name)) problems.push(`ORCH_TOOL_ALLOWLIST: "${name}" is not a bare command name ([A-Za-z0-9_-], no path)`);
    else if (LAUNCHERS.has(name)) problems.push(`ORCH_TOOL_ALLOWLIST: "${name}" runs other commands, so allowing it would allow anything`);
  }
  return problems;
}

const truncatedNote = (max: number) => `[output truncated at ${max} bytes (ORCH_TOOL_MAX_OUTPUT_BYTES)]`;

export class Toolbox {
  readonly names: readonly string[];

  constructor(private readonly cfg: ToolsConfig) {
    const problems = allowlistProblems(cfg.allowlist);
    if (problems.length > 0) throw new Error(problems.join("; "));
    this.names = [...new Set(cfg.allowlist)];
  }

  /** The function tools to offer the model. */
  specs(cwdShown: string): ToolSpecJson[] {
    return this.names.map((name) => {
      if (name === "read_file") {
        return {
          name,
          description: "Reads a text file of the working tree.",
          parameters: { type: "object", properties: { path: { type: "string", description: "Path relative to the working directory." } }, required: ["path"] },
        };
      }
      if (name === "write_file") {
        return {
          name,
          description: "Creates or replaces a file of the working tree with the given content (parent directories are created).",
          parameters: {
            type: "object",
            properties: {
              path: { type: "string", description: "Path relative to the working directory." },
              content: { type: "string", description: "The whole new content of the file." },
            },
            required: ["path", "content"],
          },
        };
      }
      return {
        name,
        description: `Runs the \`${name}\` command with these arguments in ${cwdShown}, without a shell (no pipes, globs, redirections or variables). Paths must stay inside the working tree.`,
        parameters: {
          type: "object",
          properties: { args: { type: "array", items: { type: "string" }, description: `Arguments to ${name}, one per item.` } },
          required: ["args"],
        },
      };
    });
  }

  /** Opens the tools for one session's worktree. */
  session(worktree: string): ToolSession {
    return new ToolSession(this, this.cfg, worktree);
  }
}

export class ToolSession {
  #guard: Promise<PathGuard> | undefined;

  constructor(
    private readonly box: Toolbox,
    private readonly cfg: ToolsConfig,
    /** The worktree (the default cwd and root; file edits are reported relative to it). */
    readonly worktree: string,
  ) {}

  /** The directory tools run in. */
  get cwd(): string {
    return this.cfg.cwd ?? this.worktree;
  }

  private guard(): Promise<PathGuard> {
    this.#guard ??= PathGuard.create(this.cfg.roots.length > 0 ? this.cfg.roots : [this.worktree], this.cwd);
    return this.#guard;
  }

  /** Runs one call; refusals and failures are outcomes, never exceptions. */
  async call(name: string, args: Record<string, unknown> | undefined, signal: AbortSignal): Promise<ToolOutcome> {
    try {
      if (!this.box.names.includes(name))
        throw new ToolRefusal(`${name || "(no name)"} is not an allowed tool (ORCH_TOOL_ALLOWLIST: ${this.box.names.join(", ") || "empty"})`);
      if (!args) return failed("the arguments are not a JSON object");
      const guard = await this.guard();
      if (name === "read_file") return await this.readFile(guard, args);
      if (name === "write_file") return await this.writeFile(guard, args);
      return await this.command(guard, name, args, signal);
    } catch (err) {
      if (err instanceof ToolRefusal) return { ok: false, refused: true, error: err.message, content: `refused: ${err.message}` };
      return failed((err as Error).message);
    }
  }

  private async command(guard: PathGuard, cmd: string, args: Record<string, unknown>, signal: AbortSignal): Promise<ToolOutcome> {
    const argv = args.args ?? [];
    if (!Array.isArray(argv) || !argv.every((a): a is string => typeof a === "string")) return failed("`args` must be an array of strings");
    await guard.checkArgs(cmd, argv);
    const r = await runProcess(cmd, argv, { cwd: guard.cwd, timeoutMs: this.cfg.timeoutMs, maxBytes: this.cfg.maxOutputBytes, signal });
    if (r.spawnError) return failed(r.spawnError === "ENOENT" ? `${cmd} is not installed on this host` : `${cmd} could not start: ${r.spawnError}`);
    const parts: string[] = [];
    if (r.stdout) parts.push(r.stdout);
    if (r.stderr) parts.push(`[stderr]\n${r.stderr}`);
    if (r.truncated) parts.push(truncatedNote(this.cfg.maxOutputBytes));
    const output = parts.join(parts.length > 1 && !r.stdout.endsWith("\n") ? "\n" : "");
    if (r.aborted) return { ok: false, output, error: "aborted", content: `${output}\n[aborted]` };
    if (r.timedOut) {
      const error = `killed after ${this.cfg.timeoutMs} ms (ORCH_TOOL_TIMEOUT_MS)`;
      return { ok: false, output, error, content: `${output}\n[${error}]` };
    }
    if (r.truncated) return { ok: true, output, content: output };
    if (r.code !== 0) {
      const error = `exited with code ${r.code}`;
      return { ok: false, output, error, content: `${output}${output && !output.endsWith("\n") ? "\n" : ""}[${error}]` };
    }
    return { ok: true, output, content: output || "[no output]" };
  }

  private async readFile(guard: PathGuard, args: Record<string, unknown>): Promise<ToolOutcome> {
    if (typeof args.path !== "string" || args.path === "") return failed("`path` must be a non-empty string");
    const real = await guard.resolve(args.path);
    const st = await stat(real).catch(() => undefined);
    if (!st) return failed(`${args.path} does not exist`);
    if (!st.isFile()) return failed(`${args.path} is not a file`);
    const max = this.cfg.maxOutputBytes;
    const fh = await open(real, "r");
    try {
      const buf = Buffer.alloc(Math.min(st.size, max));
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
      let output = buf.subarray(0, bytesRead).toString("utf8");
      if (st.size > max) output += `\n${truncatedNote(max)}`;
      return { ok: true, output, content: output };
    } finally {
      await fh.close();
    }
  }

  private async writeFile(guard: PathGuard, args: Record<string, unknown>): Promise<ToolOutcome> {
    if (typeof args.path !== "string" || args.path === "") return failed("`path` must be a non-empty string");
    if (typeof args.content !== "string") return failed("`content` must be a string");
    const real = await guard.resolve(args.path);
    const root = guard.roots.find((r) => within(r, real)) ?? guard.cwd;
    if (relative(root, real).split(sep).includes(".git")) throw new ToolRefusal(`${args.path} is inside .git: refused`);
    const st = await stat(real).catch(() => undefined);
    if (st && !st.isFile()) return failed(`${args.path} exists and is not a file`);
    await mkdir(dirname(real), { recursive: true });
    await writeFile(real, args.content, "utf8");
    const worktree = await realpathLoose(this.worktree);
    const rel = relative(worktree, real);
    const path = within(worktree, real) ? rel.split(sep).join("/") : real;
    const change = st ? "modify" : "add";
    return {
      ok: true,
      output: `wrote ${Buffer.byteLength(args.content)} bytes to ${path}`,
      content: `wrote ${Buffer.byteLength(args.content)} bytes to ${path}`,
      edit: { path, change },
    };
  }
}

function failed(error: string): ToolOutcome {
  return { ok: false, error, content: `error: ${error}` };
}
