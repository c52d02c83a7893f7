import { api } from "../api.js";
import { useLoad } from "../hooks.js";
import { Link } from "../router.js";
import type { Page, Schedule, Timer } from "../types.js";
import { Empty, ErrorBox, Section, When } from "../ui.js";

const when = (s: Schedule["schedule"]) =>
  !s ? "—" : s.spec.cron !== undefined ? `${s.spec.cron} (${s.spec.timezone ?? "UTC"})` : `every ${(s.spec.everyMs ?? 0) / 1000}s`;

/** Schedules (runs of the `schedule` built-in), then the scheduler's armed timers (read only). */
export function SchedulesPage() {
  const list = useLoad(() => api.get<Page<Schedule>>("/schedules"), []);
  return (
    <>
      <Section
        title="Schedules"
        actions={
          <button type="button" class="btn" onClick={list.reload}>
            Refresh
          </button>
        }
      >
        <p class="muted small">Each is a run: open it to pause, resume, trigger or cancel it. Its runs carry the label schedule=&lt;id&gt;.</p>
        <ErrorBox error={list.error} />
        {list.data?.items.length === 0 ? <Empty>No schedules.</Empty> : null}
        {list.data?.items.length ? (
          <div class="table-wrap">
            <table>
              <thead>
                <tr>
                  <th>Schedule</th>
                  <th>Status</th>
                  <th>When</th>
                  <th class="hide-sm">Creates</th>
                  <th>Next</th>
                  <th class="hide-sm">Fired</th>
                </tr>
              </thead>
              <tbody>
                {list.data.items.map((s) => (
                  <tr key={s.id}>
                    <td>
                      <Link href={`/runs/${s.id}`}>{s.title ?? s.id}</Link>
                    </td>
                    <td>{s.status}</td>
                    <td>{when(s.schedule)}</td>
                    <td class="hide-sm">
                      <Link href={`/runs?label=schedule:${encodeURIComponent(s.id)}`}>{s.schedule?.spec.creates?.definition?.id ?? "—"}</Link>
                    </td>
                    <td>{s.schedule?.nextAt ? <When at={s.schedule.nextAt} /> : "—"}</td>
                    <td class="hide-sm">{s.schedule?.fired ?? 0}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ) : null}
      </Section>
      <TimersSection />
    </>
  );
}

/** The scheduler's armed timers (read only: act on their runs to change them). */
function TimersSection() {
  const list = useLoad(() => api.get<Page<Timer>>("/timers"), []);
  return (
    <Section
      title="Timers"
      actions={
        <button type="button" class="btn" onClick={list.reload}>
          Refresh
        </button>
      }
    >
      <p class="muted small">Timers belong to runs: retry backoffs, timeouts, wall-clock limits, schedules' next due times. Act on the run to change them.</p>
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
