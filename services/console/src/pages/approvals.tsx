import { api } from "../api.js";
import { useDebounced, useLoad, useStream } from "../hooks.js";
import { Link } from "../router.js";
import type { Approval, Page } from "../types.js";
import { Badge, Empty, ErrorBox, Live, Section, When } from "../ui.js";
import { RUN_EVENT_TYPES } from "../vocabulary.js";

/** Steps waiting for a human across runs; each links to its gate on the run's page. */
export function ApprovalsPage() {
  const list = useLoad(() => api.get<Page<Approval>>("/approvals"), []);
  const reload = useDebounced(list.reload, 500);
  const feed = useStream("/api/v1/events/stream", RUN_EVENT_TYPES, (f) => {
    if (f.type.startsWith("step.") || f.type === "run.finished") reload();
  });
  return (
    <Section title="Approvals waiting on you" actions={<Live {...feed} />}>
      <ErrorBox error={list.error} />
      {list.data?.items.length === 0 ? <Empty>Nothing waits for an approval.</Empty> : null}
      <ul class="plain-list">
        {(list.data?.items ?? []).map((a) => (
          <li key={`${a.runId}-${a.step.id}`} data-approval={`${a.runId}/${a.step.id}`}>
            <Link href={`/runs/${a.runId}#gate-${a.step.id}`}>
              {a.runTitle ?? a.runId}: {a.step.title ?? a.step.id}
            </Link>{" "}
            <Badge status={a.step.status} />
            <div class="muted small">
              {a.definition.id}@{a.definition.version} · {a.projectId} · {a.step.role} · revision <code>{a.step.revision}</code> · finished{" "}
              <When at={a.step.finishedAt} />
            </div>
          </li>
        ))}
      </ul>
    </Section>
  );
}
