import { useState } from "preact/hooks";
import { ApiError, api, query, request } from "../api.js";
import { useLoad } from "../hooks.js";
import type { DeadLetter } from "../types.js";
import { ActionButton, Empty, ErrorBox, Json, Section, When } from "../ui.js";

interface LetterPage {
  items: DeadLetter[];
  total: number;
  nextAfter?: number;
}

/** Messages a consumer could not decode or handle: read them, replay them, or delete them all. */
export function DeadLettersPage() {
  const [after, setAfter] = useState<number | undefined>();
  const page = useLoad(() => api.get<LetterPage>(`/dead-letters${query({ limit: 50, after })}`), [after]);
  const [error, setError] = useState<ApiError | undefined>();
  const [note, setNote] = useState<string | undefined>();
  return (
    <Section
      title={`Dead letters${page.data ? ` (${page.data.total})` : ""}`}
      actions={
        <>
          <ActionButton
            name="replay"
            label="Replay all"
            run={async () => {
              const r = await api.post<{ replayed: number; failed: number }>("/dead-letters/replay", {});
              setNote(`Replayed ${r.replayed}, failed ${r.failed}`);
              page.reload();
            }}
            onError={setError}
          />
          <ActionButton
            name="purge"
            label="Delete all"
            kind="danger"
            confirm="Delete every dead letter?"
            run={async () => {
              const r = await request<{ purged: number }>("DELETE", "/api/v1/dead-letters");
              setNote(`Deleted ${r.purged}`);
              page.reload();
            }}
            onError={setError}
          />
        </>
      }
    >
      <ErrorBox error={page.error ?? error} />
      {note ? <p class="note">{note}</p> : null}
      {page.data?.items.length === 0 ? <Empty>No dead letters.</Empty> : null}
      <ul class="plain-list">
        {(page.data?.items ?? []).map((l) => (
          <li key={l.id} data-letter={l.id}>
            <strong>#{l.id}</strong> <code>{l.reason}</code> from <code>{l.origin}</code> · {l.deliveries} deliveries · <When at={l.at} />
            <div class="small">
              <code>{l.subject}</code>
            </div>
            <div class="bad small">{l.error}</div>
            {l.payload !== undefined ? (
              <details>
                <summary>payload</summary>
                <Json value={l.payload} />
              </details>
            ) : null}
          </li>
        ))}
      </ul>
      <div class="pager">
        {after !== undefined ? (
          <button type="button" class="btn" onClick={() => setAfter(undefined)}>
            First page
          </button>
        ) : null}
        {page.data?.nextAfter !== undefined ? (
          <button type="button" class="btn" onClick={() => setAfter(page.data!.nextAfter)}>
            Next page
          </button>
        ) : null}
      </div>
    </Section>
  );
}
