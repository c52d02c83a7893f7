import type { UiConfig } from "@orch/config";
import { Box, Text, useApp, useInput, useStdout, type Key } from "ink";
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import type { ListJson, RunJson, RunSummaryJson, SessionEventJson, SessionJson, StepJson } from "../api.js";
import { FINAL_SESSION_STATUSES } from "../api.js";
import type { Client } from "../client.js";
import { act, gateStep, type ActionName, type Output } from "../commands.js";
import { CliError } from "../errors.js";
import { age, clip, duration, transcriptLines } from "../format.js";
import { ticketsByPriority, type Ticket } from "../tickets.js";
import { statusColor, type Theme } from "./theme.js";

/**
 * The terminal UI (seed 003's `orchestrator-ui`): the runs list and the selected run's sessions
 * (refreshed every `background_session_refresh_secs`, and at once when its event stream moves), the
 * selected run's steps, its live transcript (the selected step's latest session over SSE, the last
 * `transcript_line_limit` lines) and session details (refreshed every
 * `session_info_background_refresh_secs`); approve / reject / cancel / retry after a confirmation,
 * with the server's reason shown when it refuses; a ticket picker ordered by
 * `ticket_picker_priority_states`; the supervisor's answer about the selected run, streamed.
 */

type Mode =
  | { kind: "normal" }
  | { kind: "confirm"; action: ActionName; stepId?: string | undefined; prompt: string }
  /** A rejection: its reason is typed (the agent is told it), enter rejects, esc keeps the step. */
  | { kind: "reason"; stepId: string; prompt: string; text: string }
  | { kind: "tickets"; index: number }
  | { kind: "ask"; text: string };

interface Message {
  text: string;
  tone: "ok" | "bad" | "info";
}

interface Answer {
  question: string;
  text: string;
  state: "streaming" | "done" | "error";
  note?: string;
}

const ACTION_VERBS: Record<ActionName, string> = { approve: "Approve", reject: "Reject", cancel: "Cancel", retry: "Retry", resume: "Resume" };
const HELP = "↑/↓ select · tab runs/steps · a approve · r reject · c cancel · t retry · p tickets · ? ask supervisor · g refresh · esc close · q quit";

const NO_KEY: Key = {
  upArrow: false,
  downArrow: false,
  leftArrow: false,
  rightArrow: false,
  pageDown: false,
  pageUp: false,
  home: false,
  end: false,
  return: false,
  escape: false,
  ctrl: false,
  shift: false,
  tab: false,
  backspace: false,
  delete: false,
  meta: false,
  super: false,
  hyper: false,
  capsLock: false,
  numLock: false,
};

const errText = (err: unknown) => (err instanceof CliError ? err.message : (err as Error).message);

/** The step a run's detail pane follows when none is chosen: the one waiting, else running, else the last started. */
function autoStep(run: RunJson | undefined): StepJson | undefined {
  if (!run) return undefined;
  const s = run.steps;
  return (
    s.find((x) => x.status === "waiting_approval") ??
    s.find((x) => x.status === "running" || x.status === "qa") ??
    [...s].reverse().find((x) => x.startedAt) ??
    s[0]
  );
}

/** Calls `fn` now, every `secs`, and again whenever `deps` change. */
function usePoll(fn: () => Promise<void>, secs: number, deps: readonly unknown[]): void {
  useEffect(() => {
    let live = true;
    const tick = () => void fn().catch(() => undefined);
    tick();
    const t = setInterval(() => live && tick(), secs * 1000);
    return () => {
      live = false;
      clearInterval(t);
    };
  }, deps);
}

export function App({ api, cfg, theme: t }: { api: Client; cfg: UiConfig; theme: Theme }) {
  const { exit } = useApp();
  const { stdout } = useStdout();
  const [size, setSize] = useState({ cols: stdout.columns || 120, rows: stdout.rows || 40 });
  useEffect(() => {
    const onResize = () => setSize({ cols: stdout.columns || 120, rows: stdout.rows || 40 });
    stdout.on("resize", onResize);
    return () => void stdout.off("resize", onResize);
  }, [stdout]);

  const [runs, setRuns] = useState<RunSummaryJson[]>([]);
  const [total, setTotal] = useState(0);
  const [runsError, setRunsError] = useState<string>();
  const [selectedId, setSelectedId] = useState<string>();
  const [run, setRun] = useState<RunJson>();
  const [sessions, setSessions] = useState<SessionJson[]>([]);
  const [chosenStep, setChosenStep] = useState<string>();
  const [focus, setFocus] = useState<"runs" | "steps">("runs");
  const [transcript, setTranscript] = useState<string[]>([]);
  const [sessionInfo, setSessionInfo] = useState<SessionJson>();
  const [mode, setMode] = useState<Mode>({ kind: "normal" });
  const [message, setMessage] = useState<Message>();
  const [answer, setAnswer] = useState<Answer>();
  const [live, setLive] = useState(false);
  const [kick, setKick] = useState(0);

  // ------------------------------------------------------------------ the runs list
  const loadRuns = useCallback(async () => {
    try {
      const list = await api.get<ListJson<RunSummaryJson>>("/api/v1/runs", { limit: 200 });
      setRuns(list.items);
      setTotal(list.total);
      setRunsError(undefined);
      setSelectedId((cur) => cur ?? list.items[0]?.id);
    } catch (err) {
      setRunsError(errText(err));
    }
  }, [api]);
  usePoll(loadRuns, cfg.ORCH_UI_BACKGROUND_SESSION_REFRESH_SECS, [loadRuns, kick]);

  // ------------------------------------------------------------------ the selected run, live
  // What keys act on, current within a chunk of keys typed faster than a render.
  const selectedRef = useRef(selectedId);
  selectedRef.current = selectedId;
  const focusRef = useRef(focus);
  focusRef.current = focus;
  const chosenRef = useRef(chosenStep);
  chosenRef.current = chosenStep;
  const loadRun = useCallback(async () => {
    const id = selectedRef.current;
    if (!id) return;
    try {
      const r = await api.get<RunJson>(`/api/v1/runs/${encodeURIComponent(id)}`);
      if (selectedRef.current !== id) return;
      setRun(r);
      // The list shows what the stream just said, without waiting for its next refresh.
      setRuns((list) => list.map((x) => (x.id === r.id ? { ...x, status: r.status, ...(r.stage ? { stage: r.stage } : {}), updatedAt: r.updatedAt } : x)));
    } catch (err) {
      if (selectedRef.current === id) setMessage({ text: errText(err), tone: "bad" });
    }
  }, [api]);
  const loadSessions = useCallback(async () => {
    const id = selectedRef.current;
    if (!id) return;
    const list = await api.get<ListJson<SessionJson>>(`/api/v1/runs/${encodeURIComponent(id)}/sessions`);
    if (selectedRef.current === id) setSessions(list.items);
  }, [api]);

  useEffect(() => {
    setRun(undefined);
    setSessions([]);
    setChosenStep(undefined);
    if (!selectedId) return;
    const ac = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const soon = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        void loadRun();
        void loadSessions().catch(() => undefined);
      }, 150);
    };
    void loadRun();
    void (async () => {
      try {
        // Every event says the run moved: read it (and its sessions) again, once a burst is over.
        for await (const _event of api.follow(`/api/v1/runs/${encodeURIComponent(selectedId)}/events`, (f) => f.event === "run.finished", ac.signal)) {
          setLive(true);
          soon();
        }
      } catch {
        // the background refresh carries on
      } finally {
        if (!ac.signal.aborted) setLive(false);
      }
    })();
    return () => {
      ac.abort();
      clearTimeout(timer);
      setLive(false);
    };
  }, [api, selectedId, loadRun, loadSessions]);
  usePoll(loadSessions, cfg.ORCH_UI_BACKGROUND_SESSION_REFRESH_SECS, [selectedId, loadSessions]);

  // ------------------------------------------------------------------ the step, its session, its transcript
  const step = useMemo(() => (chosenStep && run?.steps.find((s) => s.id === chosenStep)) || autoStep(run), [run, chosenStep]);
  const session = useMemo(
    () =>
      sessions
        .filter((s) => s.stepId === step?.id)
        .sort((a, b) => a.createdAt.localeCompare(b.createdAt))
        .at(-1),
    [sessions, step?.id],
  );
  const sessionId = session?.id;
  useEffect(() => {
    setTranscript([]);
    setSessionInfo(undefined);
    if (!sessionId) return;
    const ac = new AbortController();
    const limit = cfg.ORCH_UI_TRANSCRIPT_LINE_LIMIT;
    let lines: string[] = [];
    let inDelta = false;
    let timer: NodeJS.Timeout | undefined;
    const flush = () => {
      timer = undefined;
      setTranscript(lines.slice(-limit));
    };
    void (async () => {
      try {
        for await (const f of api.follow(`/api/v1/sessions/${encodeURIComponent(sessionId)}/events`, () => false, ac.signal)) {
          let e: SessionEventJson;
          try {
            e = JSON.parse(f.data) as SessionEventJson;
          } catch {
            continue;
          }
          // A lifecycle change: the session's details say more now than at the last refresh.
          if (e.type.startsWith("session.")) {
            void api
              .get<SessionJson>(`/api/v1/sessions/${encodeURIComponent(sessionId)}`)
              .then((x) => !ac.signal.aborted && setSessionInfo(x))
              .catch(() => undefined);
          }
          const out = transcriptLines(e);
          if ("delta" in out) {
            const parts = out.delta.split("\n");
            if (!inDelta) lines.push("");
            lines[lines.length - 1] += parts[0]!;
            lines.push(...parts.slice(1));
            inDelta = true;
          } else {
            lines.push(...out);
            inDelta = false;
          }
          if (lines.length > limit * 2) lines = lines.slice(-limit);
          timer ??= setTimeout(flush, 50);
        }
      } catch (err) {
        if (!ac.signal.aborted) lines.push(`(transcript stream: ${errText(err)})`);
      }
      if (!ac.signal.aborted) flush();
    })();
    return () => {
      ac.abort();
      clearTimeout(timer);
    };
  }, [api, sessionId, cfg.ORCH_UI_TRANSCRIPT_LINE_LIMIT]);
  usePoll(
    async () => {
      if (!sessionId) return;
      setSessionInfo(await api.get<SessionJson>(`/api/v1/sessions/${encodeURIComponent(sessionId)}`));
    },
    cfg.ORCH_UI_SESSION_INFO_REFRESH_SECS,
    [sessionId],
  );
  const info = sessionInfo?.id === sessionId ? sessionInfo : session;

  // ------------------------------------------------------------------ actions, tickets, the supervisor
  const tickets: Ticket[] = useMemo(() => ticketsByPriority(runs, cfg.ORCH_UI_TICKET_PICKER_PRIORITY_STATES), [runs, cfg]);

  const confirm = (action: ActionName) => {
    if (!run) return setMessage({ text: "no run selected", tone: "bad" });
    let stepId: string | undefined;
    if (action === "approve" || action === "reject") {
      try {
        stepId = gateStep(run, focus === "steps" ? step?.id : undefined).id;
      } catch (err) {
        return setMessage({ text: `✗ ${errText(err)}`, tone: "bad" });
      }
    } else if (action === "retry" && focus === "steps") stepId = step?.id;
    const what = stepId ? `step ${stepId} of run ${run.id}` : `run ${run.id}`;
    if (action === "reject" && stepId) return setMode({ kind: "reason", stepId, prompt: `Reject ${what}: why? (enter rejects, esc keeps it)`, text: "" });
    setMode({ kind: "confirm", action, stepId, prompt: `${ACTION_VERBS[action]} ${what}? (y/n)` });
  };

  const perform = async (action: ActionName, stepId: string | undefined, reason?: string) => {
    if (!run) return;
    const said: string[] = [];
    const io: Output = { out: (l) => void said.push(l), write: () => undefined, err: () => undefined };
    setMessage({ text: `${ACTION_VERBS[action]}…`, tone: "info" });
    try {
      await act(api, action, run.id, { ...(stepId ? { step: stepId } : {}), ...(reason ? { reason } : {}) }, io);
      setMessage({ text: `✓ ${said.join(" ")}`, tone: "ok" });
    } catch (err) {
      setMessage({ text: `✗ refused: ${errText(err)}`, tone: "bad" });
    }
    void loadRun();
    void loadRuns();
  };

  /** The question is about the run, or about its selected step when the steps are focused. */
  const askSupervisor = async (question: string) => {
    if (!run) return;
    const id = run.id;
    const stepId = focusRef.current === "steps" ? step?.id : undefined;
    setAnswer({ question, text: "", state: "streaming" });
    try {
      for await (const f of api.stream(`/api/v1/runs/${encodeURIComponent(id)}/ask`, {
        method: "POST",
        json: { question, ...(stepId ? { stepId } : {}) },
      })) {
        const data = JSON.parse(f.data || "{}") as { text?: string; model?: string; error?: { code?: string; message?: string } };
        if (f.event === "delta" && data.text) setAnswer((a) => a && { ...a, text: a.text + data.text });
        else if (f.event === "done") return setAnswer((a) => a && { ...a, state: "done", ...(data.model ? { note: `answered by ${data.model}` } : {}) });
        else if (f.event === "error")
          return setAnswer((a) => a && { ...a, state: "error", note: `${data.error?.code ?? "ERROR"}: ${data.error?.message ?? ""}` });
      }
      setAnswer((a) => a && { ...a, state: "error", note: "the answer ended before it was done" });
    } catch (err) {
      setAnswer((a) => a && { ...a, state: "error", note: errText(err) });
    }
  };

  const move = (delta: number) => {
    if (focusRef.current === "runs") {
      const i = runs.findIndex((r) => r.id === selectedRef.current);
      const next = runs[Math.max(0, Math.min(runs.length - 1, (i === -1 ? 0 : i) + delta))];
      if (next && next.id !== selectedRef.current) {
        selectedRef.current = next.id;
        setSelectedId(next.id);
      }
    } else if (run && run.steps.length) {
      const i = run.steps.findIndex((s) => s.id === (chosenRef.current ?? step?.id));
      const next = run.steps[Math.max(0, Math.min(run.steps.length - 1, (i === -1 ? 0 : i) + delta))]!.id;
      chosenRef.current = next;
      setChosenStep(next);
    }
  };

  // Keys typed faster than a render (pasted, or sent by a script) arrive as one chunk: each is a key.
  useInput((input, key) => {
    if (input.length > 1 && !key.ctrl && !key.meta && !input.startsWith("\x1b")) {
      for (const ch of input) onKey(ch, { ...NO_KEY, return: ch === "\r" || ch === "\n", tab: ch === "\t" });
      return;
    }
    onKey(input, key);
  });

  // Modes change within a chunk: the handler reads the latest one.
  const modeRef = useRef(mode);
  modeRef.current = mode;
  const setModeNow = (m: Mode) => {
    modeRef.current = m;
    setMode(m);
  };

  const setFocusNow = (f: "runs" | "steps") => {
    focusRef.current = f;
    setFocus(f);
  };

  function onKey(input: string, key: Key) {
    const mode = modeRef.current;
    const setMode = setModeNow;
    if (mode.kind === "confirm") {
      if (input === "y" || input === "Y") {
        setMode({ kind: "normal" });
        void perform(mode.action, mode.stepId);
      } else if (input === "n" || input === "N" || key.escape) {
        setMode({ kind: "normal" });
        setMessage({ text: "not done", tone: "info" });
      }
      return;
    }
    if (mode.kind === "reason") {
      if (key.escape) {
        setMode({ kind: "normal" });
        return setMessage({ text: "not rejected", tone: "info" });
      }
      if (key.return) {
        setMode({ kind: "normal" });
        return void perform("reject", mode.stepId, mode.text.trim() || "rejected in the terminal UI");
      }
      if (key.backspace || key.delete) return setMode({ ...mode, text: mode.text.slice(0, -1) });
      if (input && !key.ctrl && !key.meta) setMode({ ...mode, text: mode.text + input });
      return;
    }
    if (mode.kind === "tickets") {
      if (key.escape || input === "p" || input === "q") return setMode({ kind: "normal" });
      if (key.upArrow || input === "k") return setMode({ kind: "tickets", index: Math.max(0, mode.index - 1) });
      if (key.downArrow || input === "j") return setMode({ kind: "tickets", index: Math.min(tickets.length - 1, mode.index + 1) });
      if (key.return) {
        const tk = tickets[mode.index];
        if (tk) {
          selectedRef.current = tk.run.id;
          setSelectedId(tk.run.id);
          setFocusNow("steps");
          setMessage({ text: `ticket ${tk.key} (${tk.state ?? "no state"})`, tone: "info" });
        }
        setMode({ kind: "normal" });
      }
      return;
    }
    if (mode.kind === "ask") {
      if (key.escape) return setMode({ kind: "normal" });
      if (key.return) {
        setMode({ kind: "normal" });
        if (mode.text.trim()) void askSupervisor(mode.text.trim());
        return;
      }
      if (key.backspace || key.delete) return setMode({ kind: "ask", text: mode.text.slice(0, -1) });
      if (input && !key.ctrl && !key.meta) setMode({ kind: "ask", text: mode.text + input });
      return;
    }
    if (input === "q") return exit();
    if (key.upArrow || input === "k") return move(-1);
    if (key.downArrow || input === "j") return move(1);
    if (key.tab) return setFocusNow(focusRef.current === "runs" ? "steps" : "runs");
    if (key.return) return setFocusNow("steps");
    if (key.escape) {
      if (answer) return setAnswer(undefined);
      setMessage(undefined);
      return setFocusNow("runs");
    }
    if (input === "a") return confirm("approve");
    if (input === "r") return confirm("reject");
    if (input === "c") return confirm("cancel");
    if (input === "t") return confirm("retry");
    if (input === "p") return setMode({ kind: "tickets", index: 0 });
    if (input === "?") return run ? setMode({ kind: "ask", text: "" }) : setMessage({ text: "no run selected", tone: "bad" });
    if (input === "g") {
      setKick((k) => k + 1);
      void loadRun();
    }
  }

  // ------------------------------------------------------------------ layout
  const { cols, rows } = size;
  const bodyHeight = Math.max(10, rows - 3);
  const leftWidth = Math.min(72, Math.max(40, Math.floor(cols * 0.45)));
  const rightWidth = cols - leftWidth;
  const inner = bodyHeight - 2;
  const selIndex = runs.findIndex((r) => r.id === selectedId);
  const firstRow = Math.max(0, Math.min(selIndex - Math.floor((inner - 1) / 2), runs.length - (inner - 1)));
  const visibleRuns = runs.slice(firstRow, firstRow + inner - 1);

  const statusLine =
    mode.kind === "confirm" ? (
      <Text color={t.warn} bold>
        {mode.prompt}
      </Text>
    ) : mode.kind === "reason" ? (
      <Text color={t.warn} bold>
        {mode.prompt} {mode.text}
        <Text inverse> </Text>
      </Text>
    ) : mode.kind === "ask" ? (
      <Text color={t.focus}>
        Ask the supervisor about run {run?.id}: {mode.text}
        <Text inverse> </Text>
      </Text>
    ) : message ? (
      <Text color={message.tone === "bad" ? t.bad : message.tone === "ok" ? t.ok : t.text} wrap="truncate-end">
        {message.text}
      </Text>
    ) : (
      <Text color={t.dim}> </Text>
    );

  return (
    <Box flexDirection="column" width={cols} height={rows}>
      <Box>
        <Text color={t.title} bold>
          Orchestrator
        </Text>
        <Text color={t.dim} wrap="truncate-end">
          {` · ${api.base} · ${runsError ? "" : `${total} runs`} · theme ${t.name} · ${live ? "live" : "idle"}`}
        </Text>
        {runsError ? (
          <Text color={t.bad} wrap="truncate-end">
            {` · ${runsError}`}
          </Text>
        ) : null}
      </Box>
      <Box height={bodyHeight}>
        <Box flexDirection="column" width={leftWidth} borderStyle="round" borderColor={focus === "runs" ? t.focus : t.border} paddingX={1}>
          <Text color={t.title} bold>
            Runs
          </Text>
          {visibleRuns.map((r) => {
            const sel = r.id === selectedId;
            return (
              <Text key={r.id} wrap="truncate-end" {...(sel ? { backgroundColor: t.selectedBg, color: t.selectedFg } : { color: t.text })}>
                {sel ? "▸ " : "  "}
                {r.id.slice(0, 8)} <Text color={statusColor(t, r.status)}>{r.status.padEnd(16)}</Text> {clip(r.definition.id, 18).padEnd(18)}{" "}
                {clip(r.title ?? r.stage ?? "", 40)}
              </Text>
            );
          })}
          {runs.length === 0 ? <Text color={t.dim}>{runsError ? "cannot list runs" : "no runs yet"}</Text> : null}
        </Box>
        <Box flexDirection="column" width={rightWidth} borderStyle="round" borderColor={focus === "steps" ? t.focus : t.border} paddingX={1}>
          {mode.kind === "tickets" ? (
            <TicketPicker tickets={tickets} index={mode.index} t={t} priority={cfg.ORCH_UI_TICKET_PICKER_PRIORITY_STATES} height={inner} />
          ) : (
            <RunPane
              run={run}
              step={step}
              info={info}
              transcript={transcript}
              answer={answer}
              t={t}
              height={inner}
              selectedId={selectedId}
              focusSteps={focus === "steps"}
            />
          )}
        </Box>
      </Box>
      <Box>{statusLine}</Box>
      <Box>
        <Text color={t.dim} wrap="truncate-end">
          {HELP}
        </Text>
      </Box>
    </Box>
  );
}

function RunPane(p: {
  run: RunJson | undefined;
  step: StepJson | undefined;
  info: SessionJson | undefined;
  transcript: string[];
  answer: Answer | undefined;
  t: Theme;
  height: number;
  selectedId: string | undefined;
  focusSteps: boolean;
}) {
  const { run, step, info, t } = p;
  if (!run) return <Text color={t.dim}>{p.selectedId ? `loading run ${p.selectedId}…` : "select a run"}</Text>;
  const now = Date.now();
  const header = (
    <>
      <Text wrap="truncate-end">
        <Text color={t.title} bold>
          Run {run.id}
        </Text>{" "}
        <Text color={statusColor(t, run.status)} bold>
          {run.status}
        </Text>
        <Text color={t.dim}>
          {run.stage ? ` (${run.stage})` : ""} · {run.definition.id}@{run.definition.version} · project {run.projectId} · {age(run.createdAt, now)} ago
        </Text>
      </Text>
      {run.title || run.error ? (
        <Text color={run.error ? t.bad : t.text} wrap="truncate-end">
          {run.error ? `error: ${run.error}` : run.title}
        </Text>
      ) : null}
    </>
  );
  const steps = run.steps.map((s) => {
    const sel = s.id === step?.id;
    const took = s.startedAt ? duration((s.finishedAt ? Date.parse(s.finishedAt) : now) - Date.parse(s.startedAt)) : "";
    return (
      <Text key={s.id} wrap="truncate-end" {...(sel && p.focusSteps ? { backgroundColor: t.selectedBg } : {})}>
        <Text color={t.text}>{sel ? "▸ " : "  "}</Text>
        <Text color={t.text}>{clip(s.id, 20).padEnd(20)}</Text> <Text color={statusColor(t, s.status)}>{s.status.padEnd(17)}</Text>{" "}
        <Text color={t.dim}>
          {s.role.padEnd(12)} {took.padStart(7)}
          {s.attempt > 1 ? ` attempt ${s.attempt}` : ""}
          {s.error ? ` ${clip(s.error, 60)}` : ""}
        </Text>
      </Text>
    );
  });
  const used = 4 + (run.title || run.error ? 1 : 0) + run.steps.length;
  const room = Math.max(3, p.height - used);
  let lower;
  if (p.answer) {
    const lines = `${p.answer.text}${p.answer.state === "streaming" ? "▍" : ""}`.split("\n");
    lower = (
      <>
        <Text color={t.title} bold>
          Supervisor · {clip(p.answer.question, 80)}
          <Text color={t.dim}> {p.answer.state === "streaming" ? "answering…" : p.answer.state === "done" ? (p.answer.note ?? "") : ""}</Text>
        </Text>
        {p.answer.state === "error" ? (
          <Text color={t.bad} wrap="truncate-end">
            ✗ {p.answer.note}
          </Text>
        ) : null}
        {lines.slice(-(room - 1)).map((l, i) => (
          <Text key={i} color={t.text} wrap="truncate-end">
            {l || " "}
          </Text>
        ))}
      </>
    );
  } else {
    const sessionLine = info
      ? `session ${info.id.slice(0, 12)} · ${info.executor}${info.model ? ` (${info.model})` : ""} · ${info.status}${
          info.usage ? ` · ${info.usage.tokensIn ?? 0}/${info.usage.tokensOut ?? 0} tokens` : ""
        }${!FINAL_SESSION_STATUSES.has(info.status) && info.heartbeatAt ? ` · heartbeat ${age(info.heartbeatAt, now)} ago` : ""}`
      : step
        ? "no session yet"
        : "";
    lower = (
      <>
        <Text color={t.title} bold wrap="truncate-end">
          Transcript{step ? ` · ${step.id}` : ""} <Text color={t.dim}>{sessionLine}</Text>
        </Text>
        {p.transcript.slice(-(room - 1)).map((l, i) => (
          <Text key={i} color={t.text} wrap="truncate-end">
            {l || " "}
          </Text>
        ))}
      </>
    );
  }
  return (
    <>
      {header}
      <Text color={t.title} bold>
        Steps
      </Text>
      {steps}
      {lower}
    </>
  );
}

function TicketPicker({ tickets, index, t, priority, height }: { tickets: Ticket[]; index: number; t: Theme; priority: readonly string[]; height: number }) {
  const first = Math.max(0, Math.min(index - Math.floor((height - 3) / 2), tickets.length - (height - 3)));
  return (
    <>
      <Text color={t.title} bold wrap="truncate-end">
        Tickets <Text color={t.dim}>by state: {priority.join(" › ")} › others · enter opens · esc closes</Text>
      </Text>
      {tickets.length === 0 ? <Text color={t.dim}>no tickets (runs of the ticket definition, or with a ticket label)</Text> : null}
      {tickets.slice(first, first + height - 2).map((tk, i) => {
        const sel = first + i === index;
        return (
          <Text key={tk.run.id} wrap="truncate-end" {...(sel ? { backgroundColor: t.selectedBg, color: t.selectedFg } : { color: t.text })}>
            {sel ? "▸ " : "  "}
            {clip(tk.key, 16).padEnd(16)} {clip(tk.state ?? "-", 16).padEnd(16)} <Text color={statusColor(t, tk.run.status)}>{tk.run.status.padEnd(10)}</Text>{" "}
            {tk.run.id.slice(0, 8)} {clip(tk.run.title ?? "", 50)}
          </Text>
        );
      })}
    </>
  );
}
