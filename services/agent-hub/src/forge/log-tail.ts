/**
 * A failing CI job's log, cut down to what helps fix it: logs run to megabytes, and what matters is
 * the end (where the job failed) and the lines around errors. Pure: the provider fetches, this cuts.
 *
 *   clean (ANSI colours, GitLab `section_start/end` markers, GitHub's per-line timestamps, lines a
 *   `\r` overwrote) → keep the last lines up to `tailShare` of the budget → spend the rest on
 *   windows of `context` lines around the last error lines before that tail → join them in log
 *   order, with `… (n lines omitted) …` where lines were dropped.
 *
 * The result is at most `maxBytes` bytes (UTF-8); any single line longer than `maxLineChars` is cut.
 */

export interface TrimOptions {
  /** 16 KiB when unset. */
  maxBytes?: number;
  /** Lines kept before and after an error line; 3 when unset. */
  context?: number;
  /** The share of the budget the tail gets; 0.6 when unset. */
  tailShare?: number;
  /** 2,000 when unset. */
  maxLineChars?: number;
}

export interface TrimmedLog {
  text: string;
  /** Lines in the cleaned log, and how many were kept. */
  totalLines: number;
  keptLines: number;
  truncated: boolean;
}

/** What counts as an error line in a CI log (test runners, compilers, package managers, shells). */
export const ERROR_LINE =
  /\b(error|errors|failed|failure|failing|fatal|panic|exception|traceback|assert(ion)?error|not ok)\b|\bnpm err!|##\[error\]|✗|✖|\bFAIL\b|exit (code|status) [1-9]/i;

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07/g;
const GITLAB_SECTION = /section_(start|end):\d+:[A-Za-z0-9_.-]+(\[[^\]]*\])?/g;
const GITHUB_TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z ?/;

const bytes = (s: string): number => Buffer.byteLength(s, "utf8");

/** The log's lines as a reader sees them. */
export function cleanLogLines(raw: string): string[] {
  return raw
    .replace(/^\uFEFF/, "")
    .split("\n")
    .map((line) => {
      let l = line.replace(ANSI, "").replace(GITLAB_SECTION, "");
      // A progress line rewritten with `\r` shows only its last state.
      if (l.includes("\r")) {
        const parts = l.split("\r").filter((p) => p !== "");
        l = parts.at(-1) ?? "";
      }
      return l.replace(GITHUB_TIMESTAMP, "").trimEnd();
    });
}

export function trimLog(raw: string, opts: TrimOptions = {}): TrimmedLog {
  const maxBytes = Math.max(256, opts.maxBytes ?? 16_384);
  const context = opts.context ?? 3;
  const tailShare = Math.min(1, Math.max(0, opts.tailShare ?? 0.6));
  const maxLineChars = opts.maxLineChars ?? 2_000;
  const lines = cleanLogLines(raw).map((l) => (l.length > maxLineChars ? `${l.slice(0, maxLineChars)} …` : l));
  while (lines.length > 0 && lines.at(-1) === "") lines.pop();
  const total = lines.length;
  const size = (i: number) => bytes(lines[i]!) + 1;
  // Room for the omission markers.
  const budget = maxBytes - 64;

  let all = 0;
  for (let i = 0; i < total; i++) all += size(i);
  if (all <= maxBytes) return { text: lines.join("\n"), totalLines: total, keptLines: total, truncated: false };

  const keep = new Uint8Array(total);
  let used = 0;
  // The tail.
  let tailStart = total;
  const tailBudget = Math.floor(budget * tailShare);
  while (tailStart > 0 && used + size(tailStart - 1) <= tailBudget) {
    tailStart--;
    used += size(tailStart);
    keep[tailStart] = 1;
  }
  // Windows around the last error lines before the tail, latest first.
  for (let i = tailStart - 1; i >= 0; i--) {
    if (!ERROR_LINE.test(lines[i]!)) continue;
    const from = Math.max(0, i - context);
    const to = Math.min(tailStart - 1, i + context);
    let cost = 0;
    for (let j = from; j <= to; j++) if (!keep[j]) cost += size(j);
    if (used + cost + 32 > budget) {
      if (used + size(i) + 32 > budget) break;
      keep[i] = 1;
      used += size(i) + 32;
      continue;
    }
    for (let j = from; j <= to; j++) keep[j] = 1;
    used += cost + 32;
    i = from;
  }
  // Whatever budget is left goes to the tail after all.
  while (tailStart > 0 && !keep[tailStart - 1] && used + size(tailStart - 1) <= budget) {
    tailStart--;
    used += size(tailStart);
    keep[tailStart] = 1;
  }

  const out: string[] = [];
  let kept = 0;
  let skipped = 0;
  for (let i = 0; i < total; i++) {
    if (!keep[i]) {
      skipped++;
      continue;
    }
    if (skipped > 0) out.push(`… (${skipped} line${skipped === 1 ? "" : "s"} omitted) …`);
    skipped = 0;
    out.push(lines[i]!);
    kept++;
  }
  if (skipped > 0) out.push(`… (${skipped} line${skipped === 1 ? "" : "s"} omitted) …`);
  let text = out.join("\n");
  // A last guard for budgets smaller than a single kept line.
  if (bytes(text) > maxBytes)
    text = Buffer.from(text, "utf8")
      .subarray(-maxBytes)
      .toString("utf8")
      .replace(/^\uFFFD+/, "");
  return { text, totalLines: total, keptLines: kept, truncated: true };
}
