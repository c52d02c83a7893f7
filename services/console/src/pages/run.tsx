import { Fragment } from "preact";
import { useRef, useState } from "preact/hooks";
import { ApiError, api, ask } from "../api.js";
import { Changes } from "../changes.js";
import { runActions, type RunAction } from "../actions.js";
import { useDebounced, useLoad, useStream } from "../hooks.js";
import { Link, useLocation } from "../router.js";
import type { Page, Run, RunEvent, Session, SessionEvent, Step } from "../types.js";
import { ActionButton, Badge, Empty, ErrorBox, Json, Live, Section, UsageLine, When, span, usd, num } from "../ui.js";
import { FINAL_SESSION, RUN_EVENT_TYPES, SESSION_EVENT_TYPES } from "../vocabulary.js";

/** The run; one the core accepted but has not applied yet answers 404 for a moment, so `patient` waits (up to 10 s). */
async function loadRun(id: string, patient: boolean): Promise<Run> {
  for (let i = 0; ; i++) {
    try {
      return await api.get<Run>(`/runs/${id}`);
    } catch (err) {
      if (!patient || i >= 20 || !(err instanceof ApiError) || err.status !== 404) throw err;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

/**
 * A run: its state and actions, the gates waiting on you (what you approve and what its revision
 * covers), its steps as a timeline with their attempts and sessions (live transcripts), tokens and
 * cost, its branch and pull request, its event history (live, from the run's event stream), and
 * the supervisor's answers.
 */
export function RunPage({ id }: { id: string }) {
  // Just created, and the core had not answered yet (202): the run appears in a moment.
  const accepted = useLocation().query.get("accepted") === "1";
  const run = useLoad(() => loadRun(id, accepted), [id]);
  const sessions = useLoad(() => api.get<Page<Session>>(`/runs/${id}/sessions`), [id]);
  const [events, setEvents] = useState<RunEvent[]>([]);
  const refresh = useDebounced(() => {
    run.reload();
    sessions.reload();
  }, 150);
  const stream = useStream(
    `/api/v1/runs/${id}/events`,
    RUN_EVENT_TYPES,
    (f) => {
      setEvents((list) => [...list, f.data as RunEvent]);
      refresh();
    },
    (f) => f.type === "run.finished",
  );

  if (!run.data) {
    return <Section title={`Run ${id}`}>{run.error ? <ErrorBox error={run.error} /> : <p class="muted">Loading…</p>}</Section>;
  }
  const r = run.data;
  const all = sessions.data?.items ?? [];
  const waiting = r.steps.filter((s) => s.status === "waiting_approval");
  const branch = all.find((s) => s.worktree?.runBranch)?.worktree?.runBranch ?? (typeof r.facts.branch === "string" ? r.facts.branch : undefined);

  return (
    <div class="run-page" data-run={r.id} data-status={r.status}>
      <Section
        title={
          <>
            {r.title ?? r.id} <Badge status={r.status} />
          </>
        }
        actions={<Live {...stream} />}
      >
        <dl class="facts">
          <dt>Run</dt>
          <dd>
            <code>{r.id}</code>
          </dd>
          <dt>Definition</dt>
          <dd>
            {r.definition.id}@{r.definition.version}{" "}
            <span class="muted">
              ({r.view}, {r.mode})
            </span>
          </dd>
          <dt>Project</dt>
          <dd>
            <Link href={`/runs?projectId=${r.projectId}`}>{r.projectId}</Link>
          </dd>
          {r.stage ? (
            <>
              <dt>Stage</dt>
              <dd>{r.stage}</dd>
            </>
          ) : null}
          <dt>Created</dt>
          <dd>
            <When at={r.createdAt} />
            {r.startedAt ? <span class="muted"> · ran {span(r.startedAt, r.finishedAt)}</span> : null}
          </dd>
          <dt>Usage</dt>
          <dd>
            <UsageLine usage={r.usage} />
          </dd>
          {branch ? (
            <>
              <dt>Branch</dt>
              <dd>
                <BranchLink run={r} branch={branch} />
              </dd>
            </>
          ) : null}
          {r.pullRequest ? (
            <>
              <dt>Pull request</dt>
              <dd>
                {r.pullRequest.url ? (
                  <a href={r.pullRequest.url} target="_blank" rel="noopener noreferrer">
                    #{r.pullRequest.number ?? "?"} {r.pullRequest.repository ?? ""}
                  </a>
                ) : (
                  <span>#{r.pullRequest.number ?? "?"}</span>
                )}{" "}
                <Badge status={r.pullRequest.state} />
                {r.pullRequest.checks ? <span class="muted"> · checks {r.pullRequest.checks.state}</span> : null}
              </dd>
            </>
          ) : null}
          {Object.keys(r.labels).length ? (
            <>
              <dt>Labels</dt>
              <dd class="labels">
                {Object.entries(r.labels).map(([k, v]) => (
                  <span key={k} class="label">
                    {k}:{v}
                  </span>
                ))}
              </dd>
            </>
          ) : null}
          {r.gate ? (
            <>
              <dt>Budget gate</dt>
              <dd class="warn">{r.gate}</dd>
            </>
          ) : null}
          {r.error ? (
            <>
              <dt>Error</dt>
              <dd class="bad">{r.error}</dd>
            </>
          ) : null}
        </dl>
        <RunActions run={r} onDone={refresh} />
      </Section>

      {waiting.map((s) => (
        <Gate key={`${s.id}-${s.revision}`} run={r} step={s} sessions={all.filter((x) => x.stepId === s.id)} onDone={refresh} />
      ))}

      <Section title="Steps">
        <ol class="timeline">
          {r.steps.map((s, i) => (
            <Fragment key={s.id}>
              {s.phase && s.phase !== r.steps[i - 1]?.phase ? (
                <li key={`phase-${s.phase}-${i}`} class="phase" data-phase={s.phase}>
                  {s.phase}
                </li>
              ) : null}
              <StepItem runId={r.id} step={s} sessions={all.filter((x) => x.stepId === s.id)} />
            </Fragment>
          ))}
        </ol>
        <UsageBy run={r} />
      </Section>

      <AskPanel runId={r.id} steps={r.steps.map((s) => s.id)} />

      <Section title={`History (${events.length})`}>
        {events.length === 0 ? <Empty>No events yet.</Empty> : null}
        <ol class="history">
          {[...events].reverse().map((e) => (
            <li key={e.id} data-event-id={e.id} data-type={e.type}>
              <span class="seq">#{e.seq}</span> <code>{e.type}</code> <EventSummary e={e} /> <When at={e.at} />
            </li>
          ))}
        </ol>
      </Section>
    </div>
  );
}

function BranchLink({ run, branch }: { run: Run; branch: string }) {
  const pr = run.pullRequest;
  // A branch is linked where the forge is known (from its pull request's URL); else it is named.
  const m = pr?.url ? /^(https?:\/\/[^/]+\/[^/]+\/[^/]+)\//.exec(pr.url) : null;
  if (m && pr?.provider === "github") {
    return (
      <a href={`${m[1]}/tree/${encodeURIComponent(branch)}`} target="_blank" rel="noopener noreferrer">
        <code>{branch}</code>
      </a>
    );
  }
  return <code>{branch}</code>;
}

function RunActions({ run, onDone }: { run: Run; onDone: () => void }) {
  const [error, setError] = useState<ApiError | undefined>();
  const acts = runActions(run);
  if (acts.length === 0) return null;
  const perform = async (a: RunAction) => {
    if (a.name === "extend_budget") {
      const tokens = window.prompt("Extend the budget by how many tokens? (empty: the budget's own amount again)", "");
      if (tokens === null) return;
      await api.post(`/runs/${run.id}/actions/extend_budget`, tokens.trim() ? { tokens: Number(tokens) } : {});
    } else await api.post(`/runs/${run.id}/actions/${a.name}`);
    onDone();
  };
  return (
    <div class="actions">
      <div class="buttons">
        {acts.map((a) => (
          <ActionButton
            key={a.name}
            name={a.name}
            label={a.label}
            {...(a.kind ? { kind: a.kind } : {})}
            {...(a.confirm ? { confirm: a.confirm } : {})}
            run={() => perform(a)}
            onError={setError}
          />
        ))}
      </div>
      <ErrorBox error={error} title="Refused" />
    </div>
  );
}

/** A step waiting for you: what it produced, the revision you decide on (and what it covers), approve or reject with a comment. */
function Gate({ run, step, sessions, onDone }: { run: Run; step: Step; sessions: Session[]; onDone: () => void }) {
  const [comment, setComment] = useState("");
  const [error, setError] = useState<ApiError | undefined>();
  const output = step.output as Record<string, unknown> | undefined;
  const mine = sessions.filter((s) => s.attempt === step.attempt || s.attemptId === step.attemptId);
  const decide = (action: "approve" | "reject") => async () => {
    await api.post(`/runs/${run.id}/steps/${step.id}/${action}`, {
      ...(step.revision ? { revision: step.revision } : {}),
      ...(comment.trim() ? { reason: comment.trim() } : {}),
    });
    setComment("");
    onDone();
  };
  return (
    <section class="card gate" data-gate={step.id} id={`gate-${step.id}`}>
      <header class="card-head">
        <h2>Waiting for your approval: {step.title ?? step.id}</h2>
      </header>
      <p>
        <strong>{step.role}</strong> finished <code>{step.id}</code> (attempt {step.attempt}
        {step.reworks ? `, rework ${step.reworks}` : ""}). Review what it produced:
      </p>
      {output && typeof output.artifact === "string" ? (
        <p>
          Artifact: <code>{output.artifact}</code>
        </p>
      ) : null}
      {typeof output?.diff === "string" ? <pre class="diff">{output.diff}</pre> : null}
      <Commits sessions={mine} />
      {mine.some((s) => s.result?.commit) ? <Changes runId={run.id} stepId={step.id} attempt={step.attempt} open /> : null}
      <details open>
        <summary>Output</summary>
        <Json value={step.output} />
      </details>
      <p class="revision">
        Revision <code data-revision={step.revision}>{step.revision ?? "—"}</code>: attempt {step.attempt} and the first 12 hex digits of the SHA-256 of this
        output (canonical JSON). Your decision carries it: if the output changed since you read it, the server refuses it (409 CONFLICT).
      </p>
      <label>
        Comment <span class="muted small">(recorded with the decision; a rejection gives it to the agent)</span>
        <textarea name="comment" rows={3} value={comment} onInput={(e) => setComment((e.target as HTMLTextAreaElement).value)} />
      </label>
      <div class="buttons">
        <ActionButton name="approve" label="Approve" kind="primary" run={decide("approve")} onError={setError} />
        <ActionButton name="reject" label="Reject" kind="danger" run={decide("reject")} onError={setError} />
      </div>
      <ErrorBox error={error} title="Refused" />
    </section>
  );
}

function Commits({ sessions }: { sessions: Session[] }) {
  const commits = sessions.filter((s) => s.result?.commit);
  if (commits.length === 0) return null;
  return (
    <ul class="commits">
      {commits.map((s) => (
        <li key={s.id}>
          commit <code>{s.result!.commit!.slice(0, 12)}</code> on <code>{s.worktree?.runBranch ?? s.worktree?.branch ?? "?"}</code>
          {s.result?.summary ? <span class="muted"> — {s.result.summary}</span> : null}
        </li>
      ))}
    </ul>
  );
}

function StepItem({ runId, step, sessions }: { runId: string; step: Step; sessions: Session[] }) {
  const running = sessions.some((s) => !FINAL_SESSION.has(s.status));
  const [open, setOpen] = useState(false);
  const shown = open || step.status === "waiting_approval";
  return (
    <li class={`step st-${step.status}`} data-step={step.id} data-status={step.status}>
      <div class="step-head" onClick={() => setOpen(!open)}>
        <span class="dot" />
        <div class="step-title">
          <strong>{step.title ?? step.id}</strong>
          <span class="muted small">
            {" "}
            {step.role} · {step.type}
            {step.model ? ` · ${step.model}` : ""}
            {step.phase ? ` · ${step.phase}` : ""}
          </span>
        </div>
        <Badge status={step.status} />
      </div>
      <div class="step-meta small">
        <span>attempt {step.attempt}</span>
        {step.retries ? <span>retries {step.retries}</span> : null}
        {step.reworks ? <span>reworks {step.reworks}</span> : null}
        {step.startedAt ? <span>{span(step.startedAt, step.finishedAt)}</span> : null}
        <UsageLine usage={step.usage} />
        <button type="button" class="linkish" onClick={() => setOpen(!open)}>
          {shown ? "hide" : `attempts (${sessions.length})${running ? " · live" : ""}`}
        </button>
      </div>
      {step.error ? <div class="bad small">{step.error}</div> : null}
      {shown ? (
        <div class="attempts">
          {sessions.length === 0 ? <Empty>No sessions for this step.</Empty> : null}
          {sessions.map((s) => (
            <SessionItem key={s.id} session={s} autoOpen={!FINAL_SESSION.has(s.status)} />
          ))}
          {[...new Set(sessions.filter((s) => s.result?.commit).map((s) => s.attempt))].map((a) => (
            <div class="attempt-changes small" key={a}>
              <span class="muted">attempt {a}</span>
              <Changes runId={runId} stepId={step.id} attempt={a} />
            </div>
          ))}
          {step.notes?.length ? (
            <ul class="notes small">
              {step.notes.map((n, i) => (
                <li key={i}>{n}</li>
              ))}
            </ul>
          ) : null}
        </div>
      ) : null}
    </li>
  );
}

function SessionItem({ session: s, autoOpen }: { session: Session; autoOpen: boolean }) {
  const [open, setOpen] = useState(autoOpen);
  return (
    <div class="session" data-session={s.id}>
      <div class="session-head">
        <span>
          attempt {s.attempt} · {s.kind} · <strong>{s.executor}</strong>
          {s.model ? ` (${s.model})` : ""} · {s.role}
        </span>
        <Badge status={s.status} />
        <span class="muted small">
          {s.usage ? `${num(s.usage.tokensIn + s.usage.tokensOut)} tokens · ${usd(s.usage.costUsd)}` : ""} {span(s.startedAt, s.finishedAt) ?? ""}
        </span>
        <button type="button" class="linkish" onClick={() => setOpen(!open)}>
          {open ? "hide transcript" : "transcript"}
        </button>
      </div>
      {s.worktree ? (
        <div class="muted small">
          branch <code>{s.worktree.branch}</code> → <code>{s.worktree.runBranch}</code>
        </div>
      ) : null}
      {s.error ? (
        <div class="bad small">
          {s.error.code}: {s.error.message}
        </div>
      ) : null}
      {open ? <Transcript sessionId={s.id} /> : null}
    </div>
  );
}

interface Piece {
  key: number;
  kind: string;
  text: string;
  extra?: string;
}

/** A session's events as a transcript: streamed text joined, tool calls, edits, commits, status. */
function Transcript({ sessionId }: { sessionId: string }) {
  const [pieces, setPieces] = useState<Piece[]>([]);
  const st = useStream(
    `/api/v1/sessions/${sessionId}/events`,
    SESSION_EVENT_TYPES,
    (f) => {
      const e = f.data as SessionEvent;
      setPieces((list) => addPiece(list, e));
    },
    (f) => f.type.startsWith("session.") && FINAL_SESSION.has(f.type.slice(8)),
  );
  return (
    <div class="transcript" data-transcript={sessionId}>
      <Live {...st} />
      {pieces.length === 0 ? <Empty>Nothing yet.</Empty> : null}
      {pieces.map((p) => (
        <div key={p.key} class={`tp tp-${p.kind}`}>
          {p.extra ? <span class="tp-tag">{p.extra}</span> : null}
          <span class="tp-text">{p.text}</span>
        </div>
      ))}
    </div>
  );
}

function addPiece(list: Piece[], e: SessionEvent): Piece[] {
  const d = e.data;
  const s = (v: unknown) => (typeof v === "string" ? v : v === undefined ? "" : JSON.stringify(v));
  const last = list[list.length - 1];
  switch (e.type) {
    case "agent.delta":
      if (last?.kind === (d.channel === "reasoning" ? "reasoning" : "delta")) return [...list.slice(0, -1), { ...last, text: last.text + s(d.text) }];
      return [...list, { key: e.id, kind: d.channel === "reasoning" ? "reasoning" : "delta", text: s(d.text) }];
    case "agent.message":
      return [...list, { key: e.id, kind: "message", text: s(d.text), extra: s(d.role) }];
    case "agent.tool_call":
      return [...list, { key: e.id, kind: "tool", text: `${s(d.name)}(${s(d.args).slice(0, 500)})`, extra: "tool call" }];
    case "agent.tool_result":
      return [
        ...list,
        {
          key: e.id,
          kind: d.ok ? "tool-ok" : "tool-bad",
          text: s(d.ok ? d.output : (d.error ?? d.output)).slice(0, 2_000),
          extra: `${s(d.name)} ${d.ok ? "ok" : "failed"}`,
        },
      ];
    case "agent.file_edit":
      return [...list, { key: e.id, kind: "edit", text: s(d.path), extra: s(d.change) }];
    case "agent.commit":
      return [
        ...list,
        {
          key: e.id,
          kind: "commit",
          text: `${s(d.sha).slice(0, 12)} on ${s(d.branch)}: ${s(d.message)} (${Array.isArray(d.files) ? d.files.join(", ") : ""})`,
          extra: "commit",
        },
      ];
    case "agent.usage":
      return [
        ...list,
        {
          key: e.id,
          kind: "usage",
          text: `${num(Number(d.tokensIn ?? 0))} in / ${num(Number(d.tokensOut ?? 0))} out${d.model ? ` · ${s(d.model)}` : ""}`,
          extra: "usage",
        },
      ];
    case "agent.log":
      return [...list, { key: e.id, kind: "log", text: s(d.msg), extra: s(d.level) }];
    case "agent.raw":
      return list;
    default:
      return [
        ...list,
        {
          key: e.id,
          kind: "status",
          text: `${e.type.replace("session.", "")}${d.reason ? `: ${s(d.reason)}` : ""}${d.error ? ` (${s(d.error)})` : ""}`,
          extra: "session",
        },
      ];
  }
}

function UsageBy({ run }: { run: Run }) {
  const rows = [
    ...Object.entries(run.usageBy.role).map(([k, t]) => ["role", k, t] as const),
    ...Object.entries(run.usageBy.model).map(([k, t]) => ["model", k, t] as const),
  ];
  if (rows.length === 0) return null;
  return (
    <details class="usage-by">
      <summary>Tokens and cost by role and model</summary>
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              <th>By</th>
              <th>Name</th>
              <th>Tokens</th>
              <th>Cost</th>
              <th>Calls</th>
            </tr>
          </thead>
          <tbody>
            {rows.map(([by, k, t]) => (
              <tr key={`${by}-${k}`}>
                <td>{by}</td>
                <td>{k}</td>
                <td>{num(t.tokens)}</td>
                <td>{usd(t.costUsd)}</td>
                <td>{num(t.calls)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </details>
  );
}

function EventSummary({ e }: { e: RunEvent }) {
  const d = e.data ?? {};
  const parts: string[] = [];
  for (const k of ["stepId", "from", "to", "status", "actor", "reason", "error", "revision"]) {
    const v = d[k];
    if (typeof v === "string" || typeof v === "number") parts.push(k === "stepId" ? String(v) : `${k} ${String(v).slice(0, 120)}`);
  }
  return <span class="muted small">{parts.join(" · ")}</span>;
}

/** Ask the supervisor about this run: its answer streams in as it is written. */
function AskPanel({ runId, steps }: { runId: string; steps: string[] }) {
  const [question, setQuestion] = useState("");
  const [stepId, setStepId] = useState("");
  const [answer, setAnswer] = useState("");
  const [model, setModel] = useState<string | undefined>();
  const [error, setError] = useState<ApiError | undefined>();
  const [busy, setBusy] = useState(false);
  const ac = useRef<AbortController | undefined>(undefined);
  return (
    <Section title="Ask the supervisor">
      <form
        class="ask"
        onSubmit={async (e) => {
          e.preventDefault();
          if (!question.trim()) return setError(new ApiError(0, "BAD_INPUT", "Write a question first"));
          setBusy(true);
          setAnswer("");
          setModel(undefined);
          setError(undefined);
          ac.current = new AbortController();
          await ask(
            runId,
            { question: question.trim(), ...(stepId ? { stepId } : {}) },
            { onDelta: (t) => setAnswer((a) => a + t), onDone: setModel, onError: setError },
            ac.current.signal,
          );
          setBusy(false);
        }}
      >
        <textarea
          name="question"
          rows={2}
          placeholder="Why did the last step fail? What is this run waiting for?"
          value={question}
          onInput={(e) => setQuestion((e.target as HTMLTextAreaElement).value)}
        />
        <label>
          About
          <select name="stepId" value={stepId} onChange={(e) => setStepId((e.target as HTMLSelectElement).value)}>
            <option value="">the whole run</option>
            {steps.map((id) => (
              <option key={id} value={id}>
                step {id}
              </option>
            ))}
          </select>
        </label>
        <div class="buttons">
          <button type="submit" class="btn btn-primary" disabled={busy}>
            {busy ? "Answering…" : "Ask"}
          </button>
          {busy ? (
            <button type="button" class="btn" onClick={() => ac.current?.abort()}>
              Stop
            </button>
          ) : null}
        </div>
      </form>
      {answer ? <div class="answer">{answer}</div> : null}
      {model ? <p class="muted small">Answered by {model}</p> : null}
      <ErrorBox error={error} title="The supervisor could not answer" />
    </Section>
  );
}
