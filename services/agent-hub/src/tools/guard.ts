import { realpath } from "node:fs/promises";
import { dirname, isAbsolute, relative, resolve, sep } from "node:path";

/**
 * What a model's tool call may touch. Every path-like argument and the working directory are
 * resolved against the tool's cwd with symlinks followed (`realpath`; for a path that does not
 * exist yet, the realpath of its nearest existing parent plus the rest), and refused unless the
 * result lies inside one of the allowed roots (themselves realpath'd). So `..`, absolute paths and
 * symlinks pointing out of the worktree are all caught the same way.
 *
 * Which arguments are path-like: every argument that is not an option, the value of a long option
 * (`--file=../x`), and an attached short-option value that looks like a path (`-C/etc`). A search
 * pattern is checked too — `rg foo` is fine, `rg /etc` is refused: the guard errs on refusing.
 *
 * Options that run other programs or follow symlinks out of the tree are refused outright, per
 * command (`rg --pre`, `find -exec`, `fd --exec`, `git -c`, `tar --to-command`, `grep -R`, …), as
 * are commands whose purpose is to run other commands (`sh`, `env`, `xargs`, `sudo`, …). An
 * interpreter on the allowlist (`node`, `python`, `awk`, `sed` with its `e` command, `make`) runs
 * whatever the model writes inside the roots' checks of its arguments only: allowlist those knowingly.
 */

export class ToolRefusal extends Error {
  override readonly name = "ToolRefusal";
  readonly code = "TOOL_REFUSED";
}

/** Commands that exist to run other commands: with one of them, an allowlist would allow anything. */
export const LAUNCHERS: ReadonlySet<string> = new Set([
  "sh",
  "bash",
  "zsh",
  "dash",
  "ksh",
  "fish",
  "csh",
  "tcsh",
  "env",
  "xargs",
  "sudo",
  "doas",
  "su",
  "nohup",
  "timeout",
  "nice",
  "ionice",
  "setsid",
  "stdbuf",
  "chroot",
  "watch",
  "parallel",
  "busybox",
  "exec",
  "eval",
  "command",
  "script",
  "unshare",
  "nsenter",
]);

/** Options refused for every command: they run a program or reach outside by design. */
const ANY_COMMAND = [
  "--pre",
  "--exec",
  "--exec-batch",
  "--upload-pack",
  "--receive-pack",
  "--to-command",
  "--use-compress-program",
  "--checkpoint-action",
  "--info-script",
  "--new-volume-script",
  "--rsh-command",
  "--ext-diff",
  "--textconv",
  "--config-env",
  "--exec-path",
];

/** Per-command options that run programs, write outside checks, or follow symlinks out of the tree. */
const PER_COMMAND: Readonly<Record<string, { long?: string[]; short?: string }>> = {
  rg: { long: ["--pre-glob", "--follow", "--search-zip"], short: "Lz" },
  grep: { long: ["--dereference-recursive"], short: "R" },
  find: { long: ["-exec", "-execdir", "-ok", "-okdir", "-delete", "-fprint", "-fprint0", "-fprintf", "-fls", "-follow"], short: "L" },
  fd: { long: ["--follow"], short: "xXL" },
  git: { long: ["--git-dir", "--work-tree", "--namespace", "--output", "--run", "--exec"], short: "c" },
  tar: { long: ["--to-command", "--use-compress-program"], short: "IF" },
  sort: { long: ["--compress-program"] },
};

function optionName(arg: string): string {
  const eq = arg.indexOf("=");
  return eq > 0 ? arg.slice(0, eq) : arg;
}

/**
 * Refuses `arg` when it names a refused option of `cmd`: long options exactly, and a command's own
 * `--` options also by the abbreviation GNU getopt accepts (`tar --to-comm`; abbreviations are
 * matched only against the command's table, where the command's other options are known not to
 * collide — `grep --text` is not `--textconv`); short ones anywhere in a bundle (`fd -Hx`).
 */
export function checkOption(cmd: string, arg: string): void {
  if (!arg.startsWith("-") || arg === "-" || arg === "--") return;
  const table = PER_COMMAND[cmd] ?? {};
  const name = optionName(arg);
  const isLong = name.startsWith("--") || (cmd === "find" && name.length > 2);
  if (isLong) {
    const abbreviates = (o: string) => name.startsWith("--") && o.startsWith("--") && name.length >= 5 && o.startsWith(name);
    const hit = ANY_COMMAND.find((o) => o === name) ?? (table.long ?? []).find((o) => o === name || abbreviates(o));
    if (hit) throw new ToolRefusal(`${cmd} ${hit} runs other programs or reaches outside the allowed roots: refused`);
    return;
  }
  const bundle = name.slice(1);
  for (const ch of table.short ?? "") {
    if (bundle.includes(ch)) throw new ToolRefusal(`${cmd} -${ch} runs other programs or reaches outside the allowed roots: refused`);
  }
}

/** Realpath of `p`, or of its nearest existing parent joined with the rest when `p` does not exist. */
export async function realpathLoose(p: string): Promise<string> {
  const missing: string[] = [];
  let cur = p;
  for (;;) {
    try {
      const real = await realpath(cur);
      return missing.length > 0 ? resolve(real, ...missing.reverse()) : real;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== "ENOENT" && code !== "ENOTDIR") throw err;
      const parent = dirname(cur);
      if (parent === cur) return p;
      missing.push(cur.slice(parent.length).replace(/^[/\\]+/, ""));
      cur = parent;
    }
  }
}

/** Whether `p` is `root` or lies below it (both already real). */
export function within(root: string, p: string): boolean {
  const rel = relative(root, p);
  return rel === "" || (!rel.startsWith(`..${sep}`) && rel !== ".." && !isAbsolute(rel));
}

export class PathGuard {
  private constructor(
    /** Realpaths of the allowed roots. */
    readonly roots: readonly string[],
    /** The tool's working directory (real, inside a root). */
    readonly cwd: string,
  ) {}

  /** Resolves the roots and the cwd; refuses a cwd outside every root. */
  static async create(roots: readonly string[], cwd: string): Promise<PathGuard> {
    const realRoots = await Promise.all(roots.map((r) => realpathLoose(resolve(r))));
    const realCwd = await realpathLoose(resolve(cwd));
    if (!realRoots.some((r) => within(r, realCwd))) throw new ToolRefusal(`the tool directory ${cwd} is outside the allowed roots (ORCH_TOOL_ALLOWED_ROOTS)`);
    return new PathGuard(realRoots, realCwd);
  }

  /** The real path `p` (relative to the cwd) points at; refused outside every root. */
  async resolve(p: string): Promise<string> {
    if (p.includes("\0")) throw new ToolRefusal("a path contains a NUL byte: refused");
    const real = await realpathLoose(resolve(this.cwd, p));
    if (!this.roots.some((r) => within(r, real))) throw new ToolRefusal(`${p} resolves to ${real}, outside the allowed roots: refused`);
    return real;
  }

  /** Checks one command's argv: refused options, then every path-like part against the roots. */
  async checkArgs(cmd: string, args: readonly string[]): Promise<void> {
    let options = true;
    for (const arg of args) {
      if (arg.includes("\0")) throw new ToolRefusal("an argument contains a NUL byte: refused");
      if (options && arg === "--") {
        options = false;
        continue;
      }
      if (options && arg.startsWith("-") && arg !== "-") {
        checkOption(cmd, arg);
        const eq = arg.indexOf("=");
        if (eq > 0) await this.resolve(arg.slice(eq + 1));
        else if (!arg.startsWith("--") && arg.length > 2 && /[/~]|\.\./.test(arg.slice(2))) await this.resolve(arg.slice(2));
        continue;
      }
      await this.resolve(arg);
    }
  }
}
