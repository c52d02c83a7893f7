import { useState } from "preact/hooks";
import { api, query } from "../api.js";
import { useDebounced, useLoad, useStream } from "../hooks.js";
import { Link, navigate } from "../router.js";
import type { Definition, Page, Project, RunSummaryJson } from "../types.js";
import { Badge, Empty, ErrorBox, Live, Section, When } from "../ui.js";
import { RUN_EVENT_TYPES } from "../vocabulary.js";

const STATUSES = ["pending", "planning", "planned", "running", "paused", "blocked", "waiting", "completed", "failed", "cancelled"];

/** Runs, newest first, filtered by project, status, definition or view and label; kept live by the event feed. */
export function RunsPage({ query: q }: { query: URLSearchParams }) {
  const filters = {
    projectId: q.get("projectId") ?? "",
    status: q.getAll("status"),
    definition: q.get("definition") ?? "",
    view: q.get("view") ?? "",
    label: q.getAll("label"),
  };
  const [cursor, setCursor] = useState<string | undefined>();
  const key = q.toString();
  const runs = useLoad(() => api.get<Page<RunSummaryJson>>(`/runs${query({ ...filters, limit: 50, cursor })}`), [key, cursor]);
  const projects = useLoad(() => api.get<Page<Project>>("/projects"), []);
  const defs = useLoad(() => api.get<Page<Definition>>("/definitions"), []);
  const reload = useDebounced(runs.reload, 500);
  const feed = useStream(`/api/v1/events/stream`, RUN_EVENT_TYPES, reload);

  const set = (k: string, v: string | string[]) => {
    const next = new URLSearchParams(q);
    next.delete(k);
    for (const x of [v].flat()) if (x) next.append(k, x);
    setCursor(undefined);
    navigate(`/runs${next.toString() ? `?${next}` : ""}`, true);
  };
  const defIds = [...new Set((defs.data?.items ?? []).map((d) => d.id))];
  const views = [...new Set((defs.data?.items ?? []).map((d) => d.view))];

  return (
    <Section
      title="Runs"
      actions={
        <>
          <Live {...feed} />
          <Link href="/runs/new" class="btn btn-primary">
            New run
          </Link>
        </>
      }
    >
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <label>
          Project
          <select name="projectId" value={filters.projectId} onChange={(e) => set("projectId", (e.target as HTMLSelectElement).value)}>
            <option value="">any</option>
            {(projects.data?.items ?? []).map((p) => (
              <option key={p.id} value={p.id}>
                {p.name} ({p.id})
              </option>
            ))}
          </select>
        </label>
        <label>
          Status
          <select name="status" value={filters.status[0] ?? ""} onChange={(e) => set("status", (e.target as HTMLSelectElement).value)}>
            <option value="">any</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <label>
          Definition
          <select name="definition" value={filters.definition} onChange={(e) => set("definition", (e.target as HTMLSelectElement).value)}>
            <option value="">any</option>
            {defIds.map((d) => (
              <option key={d} value={d}>
                {d}
              </option>
            ))}
          </select>
        </label>
        <label>
          View
          <select name="view" value={filters.view} onChange={(e) => set("view", (e.target as HTMLSelectElement).value)}>
            <option value="">any</option>
            {views.map((v) => (
              <option key={v} value={v}>
                {v}
              </option>
            ))}
          </select>
        </label>
        <label>
          Label
          <input
            name="label"
            placeholder="key:value"
            value={filters.label[0] ?? ""}
            onChange={(e) => set("label", (e.target as HTMLInputElement).value.trim())}
          />
        </label>
      </form>
      <ErrorBox error={runs.error} />
      {runs.data && runs.data.items.length === 0 ? <Empty>No runs match.</Empty> : null}
      {runs.data && runs.data.items.length > 0 ? (
        <div class="table-wrap">
          <table class="runs">
            <thead>
              <tr>
                <th>Run</th>
                <th>Status</th>
                <th class="hide-sm">Definition</th>
                <th class="hide-sm">Project</th>
                <th>Updated</th>
              </tr>
            </thead>
            <tbody>
              {runs.data.items.map((r) => (
                <tr key={r.id} data-run={r.id} data-status={r.status}>
                  <td>
                    <Link href={`/runs/${r.id}`}>{r.title ?? r.id}</Link>
                    {r.stage ? <div class="muted small">{r.stage}</div> : null}
                    {Object.entries(r.labels).length ? (
                      <div class="labels">
                        {Object.entries(r.labels).map(([k, v]) => (
                          <span key={k} class="label">
                            {k}:{v}
                          </span>
                        ))}
                      </div>
                    ) : null}
                  </td>
                  <td>
                    <Badge status={r.status} />
                  </td>
                  <td class="hide-sm">
                    {r.definition.id}@{r.definition.version} <span class="muted">({r.view})</span>
                  </td>
                  <td class="hide-sm">{r.projectId}</td>
                  <td>
                    <When at={r.updatedAt} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      <div class="pager">
        {cursor ? (
          <button type="button" class="btn" onClick={() => setCursor(undefined)}>
            First page
          </button>
        ) : null}
        {runs.data?.nextCursor ? (
          <button type="button" class="btn" onClick={() => setCursor(runs.data!.nextCursor)}>
            Older runs
          </button>
        ) : null}
        {runs.data ? <span class="muted small">{runs.data.total} runs</span> : null}
      </div>
    </Section>
  );
}
