import { status, type sendUnaryData, type ServerUnaryCall, type ServerWritableStream } from "@grpc/grpc-js";
import { readdir, readFile, realpath, stat } from "node:fs/promises";
import { isAbsolute, join, relative, resolve, sep } from "node:path";
import { getRunRecord, listRuns, newRunId, QueryRefusedError, readEvents, replayEvents, sendCommandAndWait, type Bus } from "@orch/bus";
import { DEFAULT_PROJECT, isToken, type CommandOutcome, type RunRecord, type RunStatus } from "@orch/contracts";
import { describeRun, parseDefinitionText, SignalSchema, type RunState, type Totals, DefinitionError } from "@orch/engine";
import type { Logger } from "@orch/logging";
import {
  jsonToStruct,
  jsonToValue,
  structToJson,
  type CreateRunRequest,
  type DefinitionSummaryMessage,
  type GetHistoryRequest,
  type GetHistoryResponse,
  type GetRunRequest,
  type HistoryRecord,
  type ImportDefinitionsRequest,
  type ImportDefinitionsResponse,
  type ListDefinitionsResponse,
  type ListRunsRequest,
  type ListRunsResponse,
  type PutDefinitionRequest,
  type Run,
  type RunEventMessage,
  type SignalRunRequest,
  type WatchRunRequest,
} from "@orch/proto";
import { DefinitionConflictError, DefinitionNotFoundError, type DefinitionStore, type DefinitionSummary } from "@orch/runs";

/** The run and definition API over gRPC: commands through the command stream, queries from KV and the index. */

export interface RunApiOptions {
  bus: Bus;
  logger: Logger;
  definitions: DefinitionStore;
  mode: "mock" | "live";
  importRoots: string[];
}

export class GrpcFailure extends Error {
  constructor(
    readonly code: status,
    message: string,
  ) {
    super(message);
  }
}

/** The core's refusal codes → gRPC statuses: one table. */
const REFUSAL_STATUS: Record<string, status> = {
  NOT_FOUND: status.NOT_FOUND,
  ILLEGAL_TRANSITION: status.FAILED_PRECONDITION,
  GUARD_FAILED: status.FAILED_PRECONDITION,
  TERMINAL_STATE: status.FAILED_PRECONDITION,
  STALE_REVISION: status.ABORTED,
  INVALID: status.INVALID_ARGUMENT,
};

export function unary<Req, Res>(log: Logger, name: string, fn: (req: Req) => Promise<Res>) {
  return (call: ServerUnaryCall<Req, Res>, cb: sendUnaryData<Res>) => {
    fn(call.request).then(
      (res) => cb(null, res),
      (err: unknown) => {
        if (err instanceof GrpcFailure) return cb({ code: err.code, details: err.message });
        if (err instanceof DefinitionError) return cb({ code: status.INVALID_ARGUMENT, details: err.message });
        if (err instanceof DefinitionNotFoundError) return cb({ code: status.NOT_FOUND, details: err.message });
        if (err instanceof DefinitionConflictError) return cb({ code: status.ALREADY_EXISTS, details: err.message });
        if (err instanceof QueryRefusedError) return cb({ code: err.code === "BAD_REQUEST" ? status.INVALID_ARGUMENT : status.INTERNAL, details: err.message });
        log.error({ err, rpc: name }, "gRPC call failed");
        cb({ code: status.UNAVAILABLE, details: "the request could not be served; try again" });
      },
    );
  };
}

const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());

function checkRunId(id: string): string {
  if (!isToken(id)) throw new GrpcFailure(status.INVALID_ARGUMENT, "run_id is malformed");
  return id;
}

function outcomeFailure(o: CommandOutcome | null, what: string): GrpcFailure | null {
  if (o === null) return new GrpcFailure(status.UNAVAILABLE, `the core has not answered; the ${what} is stored and will be applied`);
  if (o.ok) return null;
  return new GrpcFailure(REFUSAL_STATUS[o.error?.code ?? ""] ?? status.FAILED_PRECONDITION, o.error?.message ?? `${what} refused`);
}

export function runHandlers(opts: RunApiOptions) {
  const { bus, logger: log, definitions } = opts;

  async function toRun(rec: RunRecord): Promise<Run> {
    const run: Run = {
      run_id: rec.runId,
      project_id: rec.projectId,
      definition_id: rec.definition.id,
      definition_version: rec.definition.version,
      view: rec.view,
      title: rec.title ?? "",
      labels: rec.labels,
      status: rec.status,
      stage: rec.stage ?? "",
      created_at: iso(rec.createdAt)!,
      updated_at: iso(rec.updatedAt)!,
      steps_run: rec.stepsRun,
    };
    if (rec.startedAt !== undefined) run.started_at = iso(rec.startedAt)!;
    if (rec.finishedAt !== undefined) run.finished_at = iso(rec.finishedAt)!;
    if (rec.error !== undefined) run.error = rec.error;
    if (rec.result !== undefined) run.result = jsonToValue(rec.result);
    if (Object.keys(rec.state).length > 0) {
      const cd = await definitions.get({ id: rec.definition.id, version: rec.definition.version });
      const d = describeRun(cd, rec.state as unknown as RunState);
      run.steps = [...(d.planning ? [d.planning] : []), ...d.steps].map((s) => ({
        id: s.id,
        index: s.index,
        status: s.status,
        role: s.role,
        type: s.type,
        title: s.title ?? "",
        stage: s.stage,
        attempt: s.attempt,
        retries: s.retries,
        reworks: s.reworks,
        iteration: s.iteration,
        revision: s.revision ?? "",
        error: s.error ?? "",
        error_code: s.errorCode ?? "",
        ...(s.output !== undefined ? { output: jsonToValue(s.output) } : {}),
        ...(s.usage ? { usage: { tokens: s.usage.tokens, tokens_in: s.usage.tokensIn, tokens_out: s.usage.tokensOut, cost_usd: s.usage.costUsd, wall_ms: s.usage.wallMs } } : {}),
      }));
      run.facts = jsonToStruct(d.facts);
      const usage = (u: Totals) => ({ tokens: u.tokens, tokens_in: u.tokensIn, tokens_out: u.tokensOut, cost_usd: u.costUsd, wall_ms: u.wallMs });
      const byKey = (m: Record<string, Totals>) => Object.fromEntries(Object.entries(m).map(([k, v]) => [k, usage(v)]));
      const ledger = (rec.state as unknown as RunState).ledger;
      run.usage = usage(d.usage);
      run.usage_by_phase = byKey(ledger.byPhase);
      run.usage_by_role = byKey(ledger.byRole);
      run.usage_by_model = byKey(ledger.byModel);
      if (d.gate) run.gate = d.gate;
    }
    return run;
  }

  async function getRun(runId: string): Promise<Run> {
    const stored = await getRunRecord(bus, checkRunId(runId));
    if (!stored) throw new GrpcFailure(status.NOT_FOUND, `run ${runId} not found`);
    return toRun(stored.record);
  }

  const summary = (s: DefinitionSummary, created?: boolean): DefinitionSummaryMessage => ({
    id: s.id,
    version: s.version,
    title: s.title ?? "",
    view: s.view,
    source: s.source,
    hash: s.hash,
    created: created ?? false,
  });

  async function importRoot(path: string): Promise<string> {
    if (!isAbsolute(path)) throw new GrpcFailure(status.INVALID_ARGUMENT, "path must be absolute");
    const real = await realpath(path).catch(() => {
      throw new GrpcFailure(status.NOT_FOUND, `no such directory: ${path}`);
    });
    const allowed = await Promise.all(opts.importRoots.map((r) => realpath(r).catch(() => resolve(r))));
    if (!allowed.some((r) => real === r || real.startsWith(r + sep))) {
      throw new GrpcFailure(status.PERMISSION_DENIED, `${path} is outside the import roots (ORCH_IMPORT_ROOTS)`);
    }
    const nested = join(real, ".orchestrator", "workflows");
    return (await stat(nested).then((s) => s.isDirectory()).catch(() => false)) ? nested : real;
  }

  return {
    CreateRun: unary<CreateRunRequest, Run>(log, "CreateRun", async (req) => {
      const ref = req.definition;
      if (!ref?.id) throw new GrpcFailure(status.INVALID_ARGUMENT, "definition.id is required");
      const projectId = req.project_id || DEFAULT_PROJECT;
      if (!isToken(projectId)) throw new GrpcFailure(status.INVALID_ARGUMENT, "project_id is malformed");
      const runId = newRunId(req.idempotency_key || undefined);
      const cmd = {
        type: "run.create" as const,
        commandId: `create:${runId}`,
        runId,
        issuedAt: Date.now(),
        actor: "grpc",
        projectId,
        definition: { id: ref.id, ...(ref.version > 0 ? { version: ref.version } : {}) },
        ...(req.title ? { title: req.title } : {}),
        ...(Object.keys(req.labels ?? {}).length ? { labels: req.labels } : {}),
        ...(req.input ? { input: structToJson(req.input) } : {}),
        ...(req.steps?.length ? { steps: req.steps.map((s) => structToJson(s) ?? {}) } : {}),
        ...(req.facts ? { facts: structToJson(req.facts) } : {}),
        ...(req.limits ? { limits: structToJson(req.limits) } : {}),
        ...(req.budgets?.length ? { budgets: req.budgets.map((b) => structToJson(b) ?? {}) } : {}),
        autoStart: req.auto_start ?? true,
        mode: opts.mode,
      };
      const outcome = await sendCommandAndWait(bus, cmd);
      if (outcome === null) {
        return { run_id: runId, project_id: projectId, definition_id: ref.id, status: "pending" satisfies RunStatus } as Run;
      }
      const failure = outcomeFailure(outcome, "run");
      if (failure) throw failure;
      return getRun(runId);
    }),

    GetRun: unary<GetRunRequest, Run>(log, "GetRun", (req) => getRun(req.run_id)),

    ListRuns: unary<ListRunsRequest, ListRunsResponse>(log, "ListRuns", async (req) => {
      const r = await listRuns(bus, {
        ...(req.project_id ? { projectId: req.project_id } : {}),
        ...(req.status?.length ? { status: req.status as RunStatus[] } : {}),
        ...(req.definition_id ? { definitionId: req.definition_id } : {}),
        ...(req.view ? { view: req.view } : {}),
        ...(Object.keys(req.labels ?? {}).length ? { labels: req.labels } : {}),
        limit: req.limit > 0 ? Math.min(req.limit, 500) : 50,
        ...(req.cursor ? { cursor: req.cursor } : {}),
      });
      return {
        runs: r.runs.map((s) => ({
          run_id: s.runId,
          project_id: s.projectId,
          definition_id: s.definition.id,
          definition_version: s.definition.version,
          view: s.view,
          title: s.title ?? "",
          labels: s.labels,
          status: s.status,
          stage: s.stage ?? "",
          created_at: iso(s.createdAt)!,
          updated_at: iso(s.updatedAt)!,
        })),
        next_cursor: r.nextCursor ?? "",
        total: r.total,
      };
    }),

    SignalRun: unary<SignalRunRequest, Run>(log, "SignalRun", async (req) => {
      const runId = checkRunId(req.run_id);
      const parsed = SignalSchema.safeParse(structToJson(req.signal) ?? {});
      if (!parsed.success) {
        throw new GrpcFailure(status.INVALID_ARGUMENT, `invalid signal: ${parsed.error.issues.map((i) => `${i.path.join(".") || "signal"}: ${i.message}`).join("; ")}`);
      }
      const outcome = await sendCommandAndWait(bus, {
        type: "run.signal",
        commandId: req.idempotency_key ? `signal:${runId}:${req.idempotency_key}` : `signal:${runId}:${newRunId()}`,
        runId,
        issuedAt: Date.now(),
        actor: req.actor || "grpc",
        signal: parsed.data as { name: string },
        ...(req.reason ? { reason: req.reason } : {}),
      });
      const failure = outcomeFailure(outcome, "signal");
      if (failure) throw failure;
      return getRun(runId);
    }),

    GetHistory: unary<GetHistoryRequest, GetHistoryResponse>(log, "GetHistory", async (req) => {
      const runId = checkRunId(req.run_id);
      if (!(await getRunRecord(bus, runId))) throw new GrpcFailure(status.NOT_FOUND, `run ${runId} not found`);
      const events = await readEvents(bus, bus.names.subjects.evtRun(runId));
      const records: HistoryRecord[] = events.map(({ streamSeq, event }) => {
        const d = event.data ?? {};
        const str = (v: unknown) => (typeof v === "string" ? v : "");
        return {
          seq: String(streamSeq),
          run_seq: String(event.seq),
          type: event.type,
          at: iso(event.at)!,
          from: str(d.from),
          to: str(d.to),
          trigger: str(d.trigger),
          actor: str(d.actor),
          reason: str(d.reason),
          data: jsonToStruct(d),
        };
      });
      return { records };
    }),

    WatchRun(call: ServerWritableStream<WatchRunRequest, RunEventMessage>) {
      const ac = new AbortController();
      const end = (code: status, details: string) => call.emit("error", { code, details });
      call.on("cancelled", () => ac.abort());
      call.on("close", () => ac.abort());
      void (async () => {
        const runId = call.request.run_id;
        if (!isToken(runId)) return end(status.INVALID_ARGUMENT, "run_id is malformed");
        if (!(await getRunRecord(bus, runId))) return end(status.NOT_FOUND, `run ${runId} not found`);
        const after = Number(call.request.after_seq ?? 0);
        for await (const { streamSeq, event } of replayEvents(bus, bus.names.subjects.evtRun(runId), { startSeq: after + 1, signal: ac.signal })) {
          const msg: RunEventMessage = { run_id: runId, seq: String(streamSeq), run_seq: String(event.seq), type: event.type, at: String(event.at) };
          if (event.data) msg.data = jsonToStruct(event.data);
          if (!call.write(msg)) await new Promise((r) => call.once("drain", r));
          if (event.type === "run.finished") break;
        }
        call.end();
      })().catch((err: unknown) => {
        if (ac.signal.aborted) return;
        log.error({ err }, "WatchRun failed");
        end(status.UNAVAILABLE, "watch failed; resume with after_seq");
      });
    },

    PutDefinition: unary<PutDefinitionRequest, DefinitionSummaryMessage>(log, "PutDefinition", async (req) => {
      if (!req.text) throw new GrpcFailure(status.INVALID_ARGUMENT, "text is required (YAML or JSON)");
      const { created, summary: s } = await definitions.put(parseDefinitionText(req.text));
      return summary(s, created);
    }),

    ListDefinitions: unary<unknown, ListDefinitionsResponse>(log, "ListDefinitions", async () => ({
      definitions: (await definitions.list()).map((s) => summary(s)),
    })),

    ImportDefinitions: unary<ImportDefinitionsRequest, ImportDefinitionsResponse>(log, "ImportDefinitions", async (req) => {
      const dir = await importRoot(req.path);
      const files = (await readdir(dir)).filter((f) => /\.(ya?ml|json)$/i.test(f)).sort();
      const results: ImportDefinitionsResponse["results"] = [];
      for (const f of files) {
        const file = relative(req.path, join(dir, f)) || f;
        try {
          const text = await readFile(join(dir, f), "utf8");
          const { created, summary: s } = await definitions.put(parseDefinitionText(text, file));
          results.push({ file, definition: summary(s, created), error: "" });
        } catch (err) {
          results.push({ file, error: (err as Error).message });
        }
      }
      return { results };
    }),
  };
}
