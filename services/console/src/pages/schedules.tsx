import { useState } from "preact/hooks";
import { api, type ApiError } from "../api.js";
import { useLoad } from "../hooks.js";
import { Link } from "../router.js";
import type { Page, Schedule, Timer } from "../types.js";
import { ActionButton, Empty, ErrorBox, Section, When } from "../ui.js";
import { TERMINAL_RUN } from "../vocabulary.js";

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
        <p class="muted small">Each is a run (open it for its history). Its runs carry the label schedule=&lt;id&gt;.</p>
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
                  <th>Actions</th>
                </tr>
              </thead>
              <tbody>
                {list.data.items.map((s) => (
                  <tr key={s.id} data-schedule={s.id} data-status={s.status}>
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
                    <td>
                      <ScheduleActions schedule={s} onDone={list.reload} />
                    </td>
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

/** `datetime-local` (the browser's time) → ISO; what does not parse is sent as typed, for the server to refuse with its reason. */
const isoOf = (local: string) => {
  const t = new Date(local);
  return Number.isNaN(t.getTime()) ? local : t.toISOString();
};

/**
 * A schedule's actions (`/api/v1/schedules/:id/…`): trigger now, pause or resume, backfill a range,
 * delete. An ended schedule has none. The server decides: a refusal is shown with its reason.
 */
function ScheduleActions({ schedule: s, onDone }: { schedule: Schedule; onDone: () => void }) {
  const [error, setError] = useState<ApiError | undefined>();
  const [backfill, setBackfill] = useState(false);
  const [from, setFrom] = useState("");
  const [to, setTo] = useState("");
  const [busy, setBusy] = useState(false);
  if (TERMINAL_RUN.has(s.status)) return <span class="muted">—</span>;
  const path = `/schedules/${encodeURIComponent(s.id)}`;
  const act = (run: () => Promise<unknown>) => async () => {
    await run();
    onDone();
  };
  return (
    <div class="actions">
      <div class="buttons">
        <ActionButton name="trigger" label="Trigger now" kind="primary" run={act(() => api.post(`${path}/trigger`))} onError={setError} />
        {s.status === "paused" ? (
          <ActionButton name="resume" label="Resume" run={act(() => api.post(`${path}/resume`))} onError={setError} />
        ) : (
          <ActionButton name="pause" label="Pause" run={act(() => api.post(`${path}/pause`))} onError={setError} />
        )}
        <button type="button" class="btn btn-plain" data-action="backfill" aria-expanded={backfill} onClick={() => setBackfill(!backfill)}>
          Backfill…
        </button>
        <ActionButton
          name="delete"
          label="Delete"
          kind="danger"
          confirm={`Delete the schedule ${s.title ?? s.id}? Nothing fires again; the runs it created go on.`}
          run={act(() => api.del(path))}
          onError={setError}
        />
      </div>
      {backfill ? (
        <form
          class="buttons"
          data-form="backfill"
          onSubmit={async (e) => {
            e.preventDefault();
            setBusy(true);
            setError(undefined);
            try {
              await api.post(`${path}/backfill`, { from: isoOf(from), to: isoOf(to) });
              setBackfill(false);
              onDone();
            } catch (err) {
              setError(err as ApiError);
            } finally {
              setBusy(false);
            }
          }}
        >
          <label>
            From <input type="datetime-local" step="1" name="from" value={from} onInput={(e) => setFrom(e.currentTarget.value)} />
          </label>
          <label>
            To <input type="datetime-local" step="1" name="to" value={to} onInput={(e) => setTo(e.currentTarget.value)} />
          </label>
          <button type="submit" class="btn btn-primary" disabled={busy}>
            {busy ? "…" : "Create the missing runs"}
          </button>
        </form>
      ) : null}
      <ErrorBox error={error} title="Refused" />
    </div>
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
