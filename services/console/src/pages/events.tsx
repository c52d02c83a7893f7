import { useState } from "preact/hooks";
import { useStream } from "../hooks.js";
import { Link } from "../router.js";
import type { RunEvent } from "../types.js";
import { Empty, Live, Section, When } from "../ui.js";
import { RUN_EVENT_TYPES } from "../vocabulary.js";

const KEEP = 500;

/** Every run's events as they happen (the latest first), from the gateway's event feed. */
export function EventsPage() {
  const [events, setEvents] = useState<RunEvent[]>([]);
  const feed = useStream("/api/v1/events/stream?recent=50", RUN_EVENT_TYPES, (f) => setEvents((l) => [f.data as RunEvent, ...l].slice(0, KEEP)));
  return (
    <Section title="Live events" actions={<Live {...feed} />}>
      {events.length === 0 ? <Empty>Waiting for events…</Empty> : null}
      <ol class="history">
        {events.map((e) => (
          <li key={e.id} data-event-id={e.id}>
            <code>{e.type}</code> <Link href={`/runs/${e.runId}`}>{e.runId}</Link> <span class="muted small">{e.projectId}</span>{" "}
            {typeof e.data?.stepId === "string" ? <span class="small">{e.data.stepId}</span> : null} <When at={e.at} />
          </li>
        ))}
      </ol>
    </Section>
  );
}
