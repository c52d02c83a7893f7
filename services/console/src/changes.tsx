import { useState } from "preact/hooks";
import { api } from "./api.js";
import { useLoad } from "./hooks.js";
import type { StepDiff, StepDiffFile } from "./types.js";
import { ErrorBox } from "./ui.js";

/**
 * "Changes": what a step's attempt committed (GET …/steps/{stepId}/diff), per file, collapsible,
 * added and removed lines coloured. Loaded when shown; the server's refusal is shown as it said it.
 */
export function Changes({ runId, stepId, attempt, open = false }: { runId: string; stepId: string; attempt: number; open?: boolean }) {
  const [shown, setShown] = useState(open);
  return (
    <details class="changes" data-changes={`${stepId}:${attempt}`} open={shown} onToggle={(e) => setShown((e.target as HTMLDetailsElement).open)}>
      <summary>Changes</summary>
      {shown ? <ChangesBody runId={runId} stepId={stepId} attempt={attempt} /> : null}
    </details>
  );
}

function ChangesBody({ runId, stepId, attempt }: { runId: string; stepId: string; attempt: number }) {
  const diff = useLoad(
    () => api.get<StepDiff>(`/runs/${encodeURIComponent(runId)}/steps/${encodeURIComponent(stepId)}/diff?attempt=${attempt}`),
    [runId, stepId, attempt],
  );
  if (diff.error) return <ErrorBox error={diff.error} />;
  if (!diff.data) return <p class="muted small">Loading…</p>;
  return (
    <div class="diff-commits">
      {diff.data.commits.map((c) => (
        <div class="diff-commit" key={c.sha} data-commit={c.sha}>
          <div class="small">
            <code>{c.sha.slice(0, 12)}</code> on <code>{c.branch}</code> <span class="muted">{c.message.split("\n")[0]}</span>
          </div>
          {c.files.map((f) => (
            <FileDiff key={f.path} file={f} />
          ))}
        </div>
      ))}
      {diff.data.truncated ? <p class="muted small">Some of the diff is not shown (512 KB in all, 128 KB per file).</p> : null}
    </div>
  );
}

const lineClass = (l: string) =>
  l.startsWith("+++") || l.startsWith("---") || l.startsWith("diff --git")
    ? "dl-meta"
    : l.startsWith("+")
      ? "dl-add"
      : l.startsWith("-")
        ? "dl-del"
        : l.startsWith("@@")
          ? "dl-hunk"
          : "";

function FileDiff({ file: f }: { file: StepDiffFile }) {
  return (
    <details class="diff-file" data-file={f.path} open>
      <summary>
        <code>{f.path}</code> <span class="muted small">{f.change}</span> <span class="dl-add">+{f.additions}</span> <span class="dl-del">-{f.deletions}</span>
        {f.binary ? <span class="muted small"> binary</span> : null}
        {f.truncated ? <span class="muted small"> (cut short)</span> : null}
      </summary>
      <pre class="diff">
        {f.patch
          .replace(/\n$/, "")
          .split("\n")
          .map((l, i) => (
            <span key={i} class={lineClass(l)}>
              {l}
              {"\n"}
            </span>
          ))}
      </pre>
    </details>
  );
}
