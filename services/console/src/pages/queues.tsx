import { api, query } from "../api.js";
import { useLoad } from "../hooks.js";
import { Link } from "../router.js";
import type { Page, Queue, Session } from "../types.js";
import { Badge, Empty, ErrorBox, Section, When } from "../ui.js";

/** Work queues (the event-bus's jobs projection) and the agent hubs' worker sessions. */
export function QueuesPage() {
  const queues = useLoad(() => api.get<Page<Queue>>("/queues"), []);
  const sessions = useLoad(() => api.get<Page<Session>>(`/sessions${query({ limit: 100 })}`), []);
  return (
    <>
      <Section
        title="Queues"
        actions={
          <button
            type="button"
            class="btn"
            onClick={() => {
              queues.reload();
              sessions.reload();
            }}
          >
            Refresh
          </button>
        }
      >
        <ErrorBox error={queues.error} />
        {queues.data?.items.length === 0 ? <Empty>No work queues yet.</Empty> : null}
        {queues.data?.items.length ? (
          <div class="table-wrap">
            <table>
              <thead>
                <tr>
                  <th>Queue</th>
                  <th>Queued</th>
                  <th>Started</th>
                  <th>Finished</th>
                  <th>Failed</th>
                </tr>
              </thead>
              <tbody>
                {queues.data.items.map((q) => (
                  <tr key={q.name}>
                    <td>
                      <code>{q.name}</code>
                    </td>
                    <td>{q.queued}</td>
                    <td>{q.started}</td>
                    <td>{q.finished}</td>
                    <td>{q.failed}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ) : null}
      </Section>
      <Section title="Worker sessions">
        <ErrorBox error={sessions.error} />
        {sessions.data?.items.length === 0 ? <Empty>No sessions.</Empty> : null}
        {sessions.data?.items.length ? (
          <div class="table-wrap">
            <table>
              <thead>
                <tr>
                  <th>Session</th>
                  <th>Status</th>
                  <th class="hide-sm">Executor</th>
                  <th class="hide-sm">Hub</th>
                  <th>Started</th>
                </tr>
              </thead>
              <tbody>
                {sessions.data.items.map((s) => (
                  <tr key={s.id}>
                    <td>
                      <Link href={`/runs/${s.runId}`}>{s.stepId}</Link>{" "}
                      <span class="muted small">
                        attempt {s.attempt} · {s.role}
                      </span>
                    </td>
                    <td>
                      <Badge status={s.status} />
                    </td>
                    <td class="hide-sm">
                      {s.executor}
                      {s.model ? ` (${s.model})` : ""}
                    </td>
                    <td class="hide-sm">{s.hub}</td>
                    <td>
                      <When at={s.startedAt ?? s.createdAt} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ) : null}
      </Section>
    </>
  );
}
