import { api } from "../api.js";
import { useLoad } from "../hooks.js";
import { Link } from "../router.js";
import type { Page, Schedule } from "../types.js";
import { Empty, ErrorBox, Section, When } from "../ui.js";

/** The scheduler's armed timers (read only: act on their runs to change them). */
export function SchedulesPage() {
  const list = useLoad(() => api.get<Page<Schedule>>("/schedules"), []);
  return (
    <Section
      title="Schedules"
      actions={
        <button type="button" class="btn" onClick={list.reload}>
          Refresh
        </button>
      }
    >
      <p class="muted small">Timers belong to runs: retry backoffs, timeouts, wall-clock limits, periodic runs. Act on the run to change them.</p>
      <ErrorBox error={list.error} />
      {list.data?.items.length === 0 ? <Empty>No timers are armed.</Empty> : null}
      {list.data?.items.length ? (
        <div class="table-wrap">
          <table>
            <thead>
              <tr>
                <th>Due</th>
                <th>Kind</th>
                <th>Run</th>
                <th class="hide-sm">Step</th>
              </tr>
            </thead>
            <tbody>
              {list.data.items.map((t) => (
                <tr key={t.id}>
                  <td>
                    <When at={t.dueAt} />
                  </td>
                  <td>{t.kind}</td>
                  <td>
                    <Link href={`/runs/${t.runId}`}>{t.runId}</Link>
                  </td>
                  <td class="hide-sm">{t.stepId ?? "—"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
    </Section>
  );
}
