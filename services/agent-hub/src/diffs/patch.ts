import type { DiffFile, FileChangeKind } from "@orch/contracts";

/**
 * A commit's patch (`git show --format= --patch --no-renames`, unified diff) as files, and the
 * bounding of their text. Pure: no git, no I/O.
 *
 * Grammar read: each file starts at a `diff --git a/<p> b/<p>` line, then extended headers
 * (`new file mode`, `deleted file mode`, `index`, `Binary files … differ`), then `--- `/`+++ `,
 * then hunks (`@@ … @@` and lines starting with ` `, `+`, `-` or `\`). Counts are taken from the
 * whole patch, before any bounding.
 */

const HEADER = "diff --git ";

/** Strips a quoted path's quotes and the `a/`/`b/` prefix (`"b/sp ace"` → `sp ace`). */
function pathOf(raw: string): string {
  let p = raw.trim();
  if (p.startsWith('"') && p.endsWith('"') && p.length >= 2) p = p.slice(1, -1).replace(/\\(["\\])/g, "$1");
  return p.replace(/^[ab]\//, "");
}

/** `a/<p> b/<p>` with the same `<p>` on both sides (renames are off): its middle split, spaces and all. */
function headerPath(rest: string): string {
  if (rest.startsWith('"')) {
    const end = rest.indexOf('" ', 1);
    return pathOf(end > 0 ? rest.slice(0, end + 1) : rest);
  }
  const n = (rest.length - 5) / 2;
  return Number.isInteger(n) && n > 0 ? rest.slice(2, 2 + n) : pathOf(rest.split(" ")[0] ?? rest);
}

export function parsePatch(text: string): DiffFile[] {
  const files: DiffFile[] = [];
  const lines = text.split("\n");
  let cur: { lines: string[]; file: DiffFile; inHunk: boolean } | undefined;
  const close = () => {
    if (!cur) return;
    while (cur.lines.length > 0 && cur.lines.at(-1) === "") cur.lines.pop();
    cur.file.patch = `${cur.lines.join("\n")}\n`;
    files.push(cur.file);
    cur = undefined;
  };
  for (const line of lines) {
    if (line.startsWith(HEADER)) {
      close();
      cur = { lines: [line], file: { path: headerPath(line.slice(HEADER.length)), change: "modify", additions: 0, deletions: 0, patch: "" }, inHunk: false };
      continue;
    }
    if (!cur) continue;
    cur.lines.push(line);
    const f = cur.file;
    if (cur.inHunk) {
      if (line.startsWith("+")) f.additions++;
      else if (line.startsWith("-")) f.deletions++;
      else if (line.startsWith("@@")) continue;
      continue;
    }
    if (line.startsWith("@@")) cur.inHunk = true;
    else if (line.startsWith("new file mode")) f.change = "add";
    else if (line.startsWith("deleted file mode")) f.change = "delete";
    else if (line.startsWith("Binary files ") || line === "GIT binary patch") f.binary = true;
    else if (line.startsWith("+++ ") && !line.startsWith("+++ /dev/null")) f.path = pathOf(line.slice(4));
    else if (line.startsWith("--- ") && !line.startsWith("--- /dev/null") && f.change === "delete") f.path = pathOf(line.slice(4));
  }
  close();
  return files;
}

export const byteLength = (s: string): number => Buffer.byteLength(s, "utf8");

/** The start of `s` in at most `max` bytes, cut after a whole line when there is one. */
export function cutBytes(s: string, max: number): string {
  if (byteLength(s) <= max) return s;
  let head = Buffer.from(s, "utf8").subarray(0, Math.max(0, max)).toString("utf8");
  if (head.endsWith("\uFFFD")) head = head.slice(0, -1);
  const nl = head.lastIndexOf("\n");
  return nl > 0 ? head.slice(0, nl + 1) : head;
}

/** Below this, a file's patch is left out whole rather than cut. */
const MIN_KEPT = 256;

export interface Bounds {
  /** Patch bytes of one file. */
  fileMax: number;
  /** Patch bytes left for this answer; lowered as files are kept. */
  left: number;
}

/**
 * Cuts each file's patch to what `bounds` leave (the file's own bound and the answer's), with a
 * note saying how much was left out. Returns whether anything was.
 */
export function boundFiles(files: DiffFile[], bounds: Bounds): boolean {
  let truncated = false;
  for (const f of files) {
    const size = byteLength(f.patch);
    const max = Math.min(bounds.fileMax, bounds.left);
    if (size <= max) {
      bounds.left -= size;
      continue;
    }
    // A few bytes left are not worth a stub of a header: the note alone says what is missing.
    const kept = max < MIN_KEPT ? "" : cutBytes(f.patch, max);
    const note = `… ${size - byteLength(kept)} more bytes of this file's patch not shown (${f.additions} additions, ${f.deletions} deletions in all)\n`;
    f.patch = kept + note;
    f.truncated = true;
    truncated = true;
    bounds.left = Math.max(0, bounds.left - byteLength(kept));
  }
  return truncated;
}

/** `git show --numstat` lines (`<adds>\t<dels>\t<path>`, `-` for binary) as files without patches. */
export function parseNumstat(text: string): DiffFile[] {
  const out: DiffFile[] = [];
  for (const line of text.split("\n")) {
    const m = /^(\d+|-)\t(\d+|-)\t(.+)$/.exec(line);
    if (!m) continue;
    const binary = m[1] === "-";
    out.push({
      path: m[3]!,
      change: "modify" as FileChangeKind,
      additions: binary ? 0 : Number(m[1]),
      deletions: binary ? 0 : Number(m[2]),
      ...(binary ? { binary } : {}),
      patch: "",
      truncated: true,
    });
  }
  return out;
}
