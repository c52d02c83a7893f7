import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import type { ListJson, RunEventJson, RunJson, RunSummaryJson, ScheduleJson, SessionEventJson, SessionJson, StepDiffJson, StepJson } from "./api.js";
import { FINAL_RUN_STATUSES, FINAL_SESSION_STATUSES } from "./api.js";
import { reasonOf, type Client, type Frame } from "./client.js";
import { CliError, ExitCode, usage } from "./errors.js";
import { age, clip, duration, stepLine, table, transcriptLines } from "./format.js";

/**
 * The commands that talk to the gateway. Each prints for people by default and, with `--json`,
 * one JSON document (or NDJSON, one event per line, for streams) for machines. Each returns the
 * exit code (or throws a CliError).
 */

export interface Output {
  out(line: string): void;
  /** Without a newline (streamed text). */
  write(text: string): void;
  err(line: string): void;
}

export const stdio: Output = {
  out: (l) => void process.stdout.write(`${l}\n`),
  write: (t) => void process.stdout.write(t),
  err: (l) => void process.stderr.write(`${l}\n`),
};

const enc = encodeURIComponent;

// ---------------------------------------------------------------------------------------------- submit

export interface SubmitOptions {
  definition?: string;
  project?: string;
  title?: string;
  input?: string[];
  inputFile?: string;
  label?: string[];
  idempotencyKey?: string;
  json?: boolean;
}

/** `k=v` pairs (repeatable flags) as an object; the value may contain `=`. */
export function pairs(list: readonly string[] | undefined, flag: string, sep = "="): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of list ?? []) {
    const i = p.indexOf(sep);
    if (i <= 0) throw usage(`${flag} ${JSON.stringify(p)}: expected key${sep}value`);
    out[p.slice(0, i)] = p.slice(i + 1);
  }
  return out;
}

/** A JSON or YAML document from a file, or from stdin for `-`. */
export function readDocument(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path === "-" ? 0 : path, "utf8");
  } catch (err) {
    throw usage(`cannot read ${path === "-" ? "stdin" : path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    try {
      doc = parseYaml(text);
    } catch (err) {
      throw usage(`${path === "-" ? "stdin" : path} is neither JSON nor YAML: ${(err as Error).message.split("\n")[0]}`);
    }
  }
  if (!doc || typeof doc !== "object" || Array.isArray(doc)) throw usage(`${path === "-" ? "stdin" : path}: expected an object`);
  return doc as Record<string, unknown>;
}

/**
 * A seed 000 job packet (`{goal, steps, limits}`: POST /api/orchestrator/jobs) or a workflow run
 * (`{definition, …}` or flags: POST /api/v1/runs). Prints the new run's id (a job's id is its run's).
 */
export async function submit(api: Client, file: string | undefined, o: SubmitOptions, io: Output): Promise<{ id: string; kind: "job" | "run" }> {
  const doc = file !== undefined ? readDocument(file) : undefined;
  const headers = o.idempotencyKey ? { "idempotency-key": o.idempotencyKey } : undefined;
  const isRun = o.definition !== undefined || (doc !== undefined && "definition" in doc);
  if (!doc && !isRun) throw usage("submit needs a file (or - for stdin) holding a job packet or a run, or --definition");
  if (!isRun) {
    if (o.project || o.input?.length || o.inputFile || o.label?.length || o.title) {
      throw usage("--project, --title, --input, --input-file and --label are for workflow runs (a document with `definition`, or --definition)");
    }
    const r = await api.post<{ job_id: string }>("/api/orchestrator/jobs", doc, headers);
    if (o.json) io.out(JSON.stringify({ id: r.job_id, kind: "job" }));
    else io.out(r.job_id);
    return { id: r.job_id, kind: "job" };
  }
  const input = {
    ...((doc?.input as Record<string, unknown> | undefined) ?? {}),
    ...(o.inputFile ? readDocument(o.inputFile) : {}),
    ...pairs(o.input, "--input"),
  };
  const labels = { ...((doc?.labels as Record<string, string> | undefined) ?? {}), ...pairs(o.label, "--label") };
  const body: Record<string, unknown> = {
    ...doc,
    ...(o.definition ? { definition: o.definition } : {}),
    ...(o.project ? { projectId: o.project } : {}),
    ...(o.title ? { title: o.title } : {}),
    ...(Object.keys(input).length ? { input } : {}),
    ...(Object.keys(labels).length ? { labels } : {}),
  };
  const run = await api.post<RunJson>("/api/v1/runs", body, headers);
  if (o.json) io.out(JSON.stringify(run));
  else io.out(run.id);
  return { id: run.id, kind: "run" };
}

// ---------------------------------------------------------------------------------------------- reads

export interface RunsOptions {
  project?: string;
  status?: string[];
  definition?: string;
  view?: string;
  label?: string[];
  limit?: string;
  json?: boolean;
}

export async function runs(api: Client, o: RunsOptions, io: Output): Promise<void> {
  const limit = o.limit === undefined ? undefined : Number(o.limit);
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 1 || limit > 500)) throw usage(`--limit ${o.limit}: must be 1-500`);
  // `k=v` or the API's own `k:v`.
  const labels = (o.label ?? []).map((l) => {
    const i = l.search(/[=:]/);
    if (i <= 0) throw usage(`--label ${JSON.stringify(l)}: expected key=value`);
    return `${l.slice(0, i)}:${l.slice(i + 1)}`;
  });
  const list = await api.get<ListJson<RunSummaryJson>>("/api/v1/runs", {
    projectId: o.project,
    status: o.status?.length ? o.status.join(",") : undefined,
    definition: o.definition,
    view: o.view,
    label: labels,
    limit,
  });
  if (o.json) return io.out(JSON.stringify(list));
  if (list.items.length === 0) return io.out("no runs");
  io.out(
    table([
      ["ID", "STATUS", "STAGE", "DEFINITION", "PROJECT", "AGE", "TITLE"],
      ...list.items.map((r) => [
        r.id,
        r.status,
        r.stage ?? "-",
        `${r.definition.id}@${r.definition.version}`,
        r.projectId,
        age(r.createdAt),
        clip(r.title ?? "", 50),
      ]),
    ]),
  );
  if (list.total > list.items.length) io.out(`(${list.items.length} of ${list.total}; --limit for more)`);
}

const stepRow = (s: StepJson, now: number) => {
  const took = s.startedAt ? duration((s.finishedAt ? Date.parse(s.finishedAt) : now) - Date.parse(s.startedAt)) : "-";
  const extra = [s.attempt > 1 ? `attempt ${s.attempt}` : "", s.reworks ? `${s.reworks} rework(s)` : "", s.error ? clip(s.error, 80) : ""]
    .filter(Boolean)
    .join(", ");
  return [s.id, s.status, s.role, took, extra];
};

export function describeRun(run: RunJson, now = Date.now()): string[] {
  const lines = [
    `run ${run.id}  ${run.status}${run.stage ? ` (${run.stage})` : ""}`,
    `  definition ${run.definition.id}@${run.definition.version}  view ${run.view}  project ${run.projectId}`,
  ];
  if (run.title) lines.push(`  title      ${run.title}`);
  const labels = Object.entries(run.labels ?? {});
  if (labels.length) lines.push(`  labels     ${labels.map(([k, v]) => `${k}=${v}`).join(" ")}`);
  lines.push(`  created    ${run.createdAt}${run.finishedAt ? `  finished ${run.finishedAt}` : ""}`);
  if (run.error) lines.push(`  error      ${run.error}`);
  if (run.gate) lines.push(`  gate       ${run.gate}`);
  if (run.steps.length) {
    lines.push("", ...table([["STEP", "STATUS", "ROLE", "TIME", ""], ...run.steps.map((s) => stepRow(s, now))]).split("\n"));
  }
  return lines;
}

export async function show(api: Client, id: string, o: { json?: boolean }, io: Output): Promise<void> {
  const run = await api.get<RunJson>(`/api/v1/runs/${enc(id)}`);
  if (o.json) return io.out(JSON.stringify(run));
  for (const l of describeRun(run)) io.out(l);
}

/**
 * Follows a run's events until it finishes: one line per step change with its status and the time
 * it took, then a summary. RunFailed when the run failed or was cancelled.
 */
export async function watch(api: Client, id: string, o: { json?: boolean }, io: Output): Promise<ExitCode> {
  const path = `/api/v1/runs/${enc(id)}`;
  const first = await api.get<RunJson>(path);
  const started = new Map<string, number>();
  let finished: RunEventJson | undefined;
  if (!o.json) io.out(`watching run ${first.id} (${first.definition.id}, ${first.status})`);
  for await (const f of api.follow(`${path}/events`, (f) => f.event === "run.finished")) {
    const e = parseFrame<RunEventJson>(f);
    if (!e) continue;
    if (o.json) io.out(JSON.stringify(e));
    if (e.type === "run.finished") finished = e;
    if (o.json) continue;
    const l = stepLine(e, started);
    if (l)
      io.out(
        `${e.at.slice(11, 19)}  ${l.stepId.padEnd(16)} ${l.status.padEnd(18)}${l.elapsed ? ` ${l.elapsed.padStart(7)}` : ""}${l.note ? `  ${l.note}` : ""}`,
      );
    else if (e.type === "run.status_changed" || e.type === "run.stage_entered") {
      const d = e.data ?? {};
      io.out(`${e.at.slice(11, 19)}  ${"run".padEnd(16)} ${String(d.to ?? d.stage ?? "")}`);
    }
  }
  const run = await api.get<RunJson>(path);
  const status = (finished?.data?.status as string | undefined) ?? run.status;
  if (!o.json) {
    const took = run.startedAt && run.finishedAt ? duration(Date.parse(run.finishedAt) - Date.parse(run.startedAt)) : "-";
    const counts = new Map<string, number>();
    for (const s of run.steps) counts.set(s.status, (counts.get(s.status) ?? 0) + 1);
    io.out(`run ${run.id} ${status} in ${took}: ${[...counts].map(([k, n]) => `${n} ${k}`).join(", ") || "no steps"}${run.error ? ` (${run.error})` : ""}`);
  }
  if (!FINAL_RUN_STATUSES.has(status)) throw new CliError(ExitCode.Server, `the event stream of run ${id} ended before the run finished`);
  return status === "completed" ? ExitCode.Ok : ExitCode.RunFailed;
}

function parseFrame<T>(f: Frame): T | undefined {
  try {
    return JSON.parse(f.data) as T;
  } catch {
    return undefined;
  }
}

/**
 * A step's agent session transcript: the run's sessions (of `--step`, or all, in order), each
 * session's events. Without `--follow` it prints what each session has so far; with it, it
 * follows running sessions to their end and waits for the run's next sessions until it finishes.
 */
export async function logs(api: Client, id: string, o: { step?: string; follow?: boolean; json?: boolean }, io: Output): Promise<void> {
  const runPath = `/api/v1/runs/${enc(id)}`;
  const run = await api.get<RunJson>(runPath);
  if (o.step && !run.steps.some((s) => s.id === o.step)) {
    throw new CliError(ExitCode.NotFound, `run ${id} has no step ${o.step} (its steps: ${run.steps.map((s) => s.id).join(", ")})`);
  }
  const seen = new Set<string>();
  let pendingDelta = false;
  const flush = () => {
    if (pendingDelta) io.write("\n");
    pendingDelta = false;
  };
  for (;;) {
    const sessions = (await api.get<ListJson<SessionJson>>(`${runPath}/sessions`)).items
      .filter((s) => !o.step || s.stepId === o.step)
      .filter((s) => !seen.has(s.id))
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt));
    for (const s of sessions) {
      seen.add(s.id);
      if (!o.json) io.out(`== ${s.stepId} attempt ${s.attempt} · ${s.role} · ${s.executor}${s.model ? ` (${s.model})` : ""} · session ${s.id} · ${s.status}`);
      const live = !FINAL_SESSION_STATUSES.has(s.status);
      const ac = new AbortController();
      // Not following: a running session's stream is read until it goes quiet (its replay is over).
      let quiet: NodeJS.Timeout | undefined;
      const arm = () => {
        if (!live || o.follow) return;
        clearTimeout(quiet);
        quiet = setTimeout(() => ac.abort(), 750);
      };
      arm();
      try {
        for await (const f of api.follow(`/api/v1/sessions/${enc(s.id)}/events`, () => false, ac.signal)) {
          arm();
          const e = parseFrame<SessionEventJson>(f);
          if (!e) continue;
          if (o.json) {
            io.out(JSON.stringify(e));
            continue;
          }
          const lines = transcriptLines(e);
          if ("delta" in lines) {
            io.write(lines.delta);
            pendingDelta = true;
            continue;
          }
          flush();
          for (const l of lines) io.out(l);
        }
      } finally {
        clearTimeout(quiet);
        flush();
      }
    }
    if (!o.follow) break;
    const now = await api.get<RunJson>(runPath);
    if (FINAL_RUN_STATUSES.has(now.status) && sessions.length === 0) break;
    if (sessions.length === 0) await new Promise((r) => setTimeout(r, 1000));
  }
  if (seen.size === 0 && !o.json) io.out(o.step ? `step ${o.step} of run ${id} has no sessions yet` : `run ${id} has no sessions yet`);
}

export async function timers(api: Client, o: { run?: string; json?: boolean }, io: Output): Promise<void> {
  const list = await api.get<ListJson<{ id: string; runId: string; kind: string; stepId?: string; dueAt: string; setAt: string }>>("/api/v1/timers", {
    runId: o.run,
  });
  if (o.json) return io.out(JSON.stringify(list));
  if (list.items.length === 0) return io.out("no timers armed");
  const now = Date.now();
  io.out(
    table([["RUN", "KIND", "STEP", "DUE", "IN"], ...list.items.map((t) => [t.runId, t.kind, t.stepId ?? "-", t.dueAt, duration(Date.parse(t.dueAt) - now)])]),
  );
}

/** Schedules (runs of the `schedule` built-in): when each is due, what it creates, what is next. */
export async function schedules(api: Client, o: { project?: string; json?: boolean }, io: Output): Promise<void> {
  const list = await api.get<ListJson<ScheduleJson>>("/api/v1/schedules", { projectId: o.project });
  if (o.json) return io.out(JSON.stringify(list));
  if (list.items.length === 0) return io.out("no schedules");
  const when = (s: ScheduleJson["schedule"]) =>
    !s ? "-" : s.spec.cron !== undefined ? `${s.spec.cron} (${s.spec.timezone ?? "UTC"})` : `every ${duration(s.spec.everyMs ?? 0)}`;
  io.out(
    table([
      ["SCHEDULE", "STATUS", "WHEN", "CREATES", "NEXT", "FIRED", "SKIPPED"],
      ...list.items.map((x) => [
        x.id,
        x.status,
        when(x.schedule),
        x.schedule?.spec.creates?.definition?.id ?? "-",
        x.schedule?.nextAt ?? "-",
        String(x.schedule?.fired ?? 0),
        String(x.schedule?.skipped ?? 0),
      ]),
    ]),
  );
}

// ---------------------------------------------------------------------------------------------- actions

export type ActionName = "approve" | "reject" | "cancel" | "retry" | "resume";

/** The step an approval or rejection is about: `--step`, else the one step waiting for approval. */
export function gateStep(run: RunJson, step: string | undefined): StepJson {
  if (step) {
    const s = run.steps.find((x) => x.id === step);
    if (!s) throw new CliError(ExitCode.NotFound, `run ${run.id} has no step ${step} (its steps: ${run.steps.map((x) => x.id).join(", ")})`);
    return s;
  }
  const waiting = run.steps.filter((s) => s.status === "waiting_approval");
  if (waiting.length === 1) return waiting[0]!;
  if (waiting.length === 0) throw new CliError(ExitCode.Refused, `no step of run ${run.id} waits for approval (run ${run.status})`);
  throw usage(`several steps of run ${run.id} wait for approval (${waiting.map((s) => s.id).join(", ")}): say which with --step`);
}

export interface ActionOptions {
  step?: string;
  comment?: string;
  reason?: string;
  json?: boolean;
}

/**
 * Approve or reject a gate (with the revision of the output just read, so what is decided is what
 * was seen), cancel, retry (the latest failed step, or `--step`), resume.
 */
export async function act(api: Client, name: ActionName, id: string, o: ActionOptions, io: Output): Promise<RunJson> {
  const path = `/api/v1/runs/${enc(id)}`;
  const reason = o.reason ?? o.comment;
  let after: RunJson;
  let what: string = name;
  if (name === "approve" || name === "reject") {
    const run = await api.get<RunJson>(path);
    const s = gateStep(run, o.step);
    what = `${name === "approve" ? "approved" : "rejected"} step ${s.id}`;
    after = await api.post<RunJson>(`${path}/steps/${enc(s.id)}/${name}`, {
      ...(s.revision ? { revision: s.revision } : {}),
      ...(reason ? { reason } : {}),
    });
  } else if (name === "retry" && o.step) {
    what = `retrying step ${o.step}`;
    after = await api.post<RunJson>(`${path}/actions/run_step`, { stepId: o.step, ...(reason ? { feedback: reason } : {}) });
  } else {
    const action = name === "retry" ? "retry_latest" : name;
    what = { cancel: "cancelled", retry: "retrying its latest step", resume: "resumed" }[name as "cancel" | "retry" | "resume"];
    after = await api.post<RunJson>(`${path}/actions/${action}`, reason ? (name === "retry" ? { feedback: reason } : { reason }) : {});
  }
  if (o.json) io.out(JSON.stringify(after));
  else if ((after as { accepted?: boolean }).accepted) io.out(`run ${id}: ${what} (accepted; the core applies it shortly)`);
  else io.out(`run ${id}: ${what}; run ${after.status}${after.stage ? ` (${after.stage})` : ""}`);
  return after;
}

// ---------------------------------------------------------------------------------------------- ask

/**
 * Asks the supervisor about a run (POST /api/v1/runs/{id}/ask): `event: delta` frames carry the
 * answer's text as it is written, `done` the model, `error` a failure mid-answer.
 */
export async function ask(api: Client, id: string, question: string, o: { step?: string; json?: boolean }, io: Output): Promise<void> {
  if (!question.trim()) throw usage("ask needs a question");
  let done = false;
  let wrote = false;
  for await (const f of api.stream(`/api/v1/runs/${enc(id)}/ask`, { method: "POST", json: { question, ...(o.step ? { stepId: o.step } : {}) } })) {
    const data = parseFrame<Record<string, any>>(f) ?? {};
    if (o.json) io.out(JSON.stringify({ event: f.event, data }));
    if (f.event === "delta") {
      if (!o.json && typeof data.text === "string") {
        io.write(data.text);
        wrote = true;
      }
    } else if (f.event === "done") {
      done = true;
      if (!o.json) io.write(wrote ? "\n" : "");
      if (!o.json && data.model) io.err(`(answered by ${data.model})`);
      break;
    } else if (f.event === "error") {
      if (!o.json && wrote) io.write("\n");
      const e = data.error ?? {};
      const code = e.code === "NOT_FOUND" ? ExitCode.NotFound : e.code === "UNAUTHORIZED" || e.code === "FORBIDDEN" ? ExitCode.Auth : ExitCode.Server;
      throw new CliError(code, `the supervisor failed: ${e.code ?? "ERROR"}: ${e.message ?? "no message"}${e.code ? reasonOf(e) : ""}`, e);
    }
  }
  if (!done) throw new CliError(ExitCode.Server, "the supervisor's answer ended before it was done");
}

// ---------------------------------------------------------------------------------------------- diff

/**
 * `orch diff <run> [--step id]`: what a step's attempt committed, as one patch (each commit's
 * header, then its files' unified diffs): the step waiting for approval by default, else the
 * latest step that started. `--json` prints the API's answer as it is.
 */
export async function diff(api: Client, id: string, o: { step?: string; attempt?: string; json?: boolean }, io: Output): Promise<void> {
  const run = await api.get<RunJson>(`/api/v1/runs/${enc(id)}`);
  let stepId = o.step;
  if (stepId === undefined) {
    const started = run.steps.filter((s) => s.startedAt).sort((a, b) => b.startedAt!.localeCompare(a.startedAt!));
    stepId = (run.steps.find((s) => s.status === "waiting_approval") ?? started[0])?.id;
    if (stepId === undefined) throw new CliError(ExitCode.NotFound, `run ${id} has no step that ran yet`);
  }
  if (o.attempt !== undefined && !/^\d{1,7}$/.test(o.attempt)) throw usage(`--attempt ${JSON.stringify(o.attempt)}: expected a number`);
  const d = await api.get<StepDiffJson>(`/api/v1/runs/${enc(id)}/steps/${enc(stepId)}/diff${o.attempt !== undefined ? `?attempt=${o.attempt}` : ""}`);
  if (o.json) return io.out(JSON.stringify(d, null, 2));
  for (const c of d.commits) {
    const adds = c.files.reduce((n, f) => n + f.additions, 0);
    const dels = c.files.reduce((n, f) => n + f.deletions, 0);
    io.out(`commit ${c.sha} (${c.branch}) · ${d.stepId} attempt ${d.attempt} · ${c.files.length} file${c.files.length === 1 ? "" : "s"} +${adds} -${dels}`);
    for (const line of c.message.split("\n")) io.out(`    ${line}`);
    io.out("");
    for (const f of c.files) io.write(f.patch || `(${f.path}: ${f.binary ? "binary" : "patch not shown"}, +${f.additions} -${f.deletions})\n`);
  }
  if (d.truncated) io.err("orch: the diff was cut short (512 KB in all, 128 KB per file); the notes in it say where");
}
