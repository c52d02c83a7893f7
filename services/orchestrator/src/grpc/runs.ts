import { status, type sendUnaryData, type ServerUnaryCall, type ServerWritableStream } from "@grpc/grpc-js";
import { readdir, readFile, realpath, stat } from "node:fs/promises";
import { isAbsolute, join, relative, resolve, sep } from "node:path";
import { parseFeedPosition, QueryRefusedError, type Bus } from "@orch/bus";
import { ErrorCode, OrchError, isToken, type RunStatus, type RunSummary, type RunView, type Totals } from "@orch/contracts";
import { parseDefinitionText, DefinitionError } from "@orch/engine";
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
import { DefinitionConflictError, DefinitionNotFoundError, RunsApi, type DefinitionStore, type DefinitionSummary } from "@orch/runs";
import type { DefinitionWriter } from "../writes/definitions.js";

/** The run and definition API over gRPC: commands through the command stream, queries from KV and the index. */

export interface RunApiOptions {
  bus: Bus;
  logger: Logger;
  definitions: DefinitionStore;
  /** Publishes definitions: the code that answers the edges' `definitions.put`. */
  writer: DefinitionWriter;
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

/** Our error codes → gRPC statuses: one table. */
const STATUS_OF: Record<string, status> = {
  [ErrorCode.BadRequest]: status.INVALID_ARGUMENT,
  [ErrorCode.NotFound]: status.NOT_FOUND,
  [ErrorCode.IllegalTransition]: status.FAILED_PRECONDITION,
  [ErrorCode.Conflict]: status.ABORTED,
  [ErrorCode.Unauthorized]: status.UNAUTHENTICATED,
  [ErrorCode.Forbidden]: status.PERMISSION_DENIED,
  [ErrorCode.Unavailable]: status.UNAVAILABLE,
  [ErrorCode.NatsUnavailable]: status.UNAVAILABLE,
};

export function unary<Req, Res>(log: Logger, name: string, fn: (req: Req) => Promise<Res>) {
  return (call: ServerUnaryCall<Req, Res>, cb: sendUnaryData<Res>) => {
    fn(call.request).then(
      (res) => cb(null, res),
      (err: unknown) => {
        if (err instanceof GrpcFailure) return cb({ code: err.code, details: err.message });
        if (err instanceof OrchError && STATUS_OF[err.code] !== undefined) return cb({ code: STATUS_OF[err.code]!, details: err.message });
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

export function runHandlers(opts: RunApiOptions & { api: RunsApi }) {
  const { logger: log, definitions, writer, api } = opts;

  const usage = (u: Totals) => ({ tokens: u.tokens, tokens_in: u.tokensIn, tokens_out: u.tokensOut, cost_usd: u.costUsd, wall_ms: u.wallMs });
  const byKey = (m: Record<string, Totals>) => Object.fromEntries(Object.entries(m).map(([k, v]) => [k, usage(v)]));

  /** What a run and its index summary have in common, as gRPC fields. */
  const summaryOf = (v: RunSummary) => ({
    run_id: v.runId,
    project_id: v.projectId,
    definition_id: v.definition.id,
    definition_version: v.definition.version,
    view: v.view,
    title: v.title ?? "",
    labels: v.labels,
    status: v.status,
    stage: v.stage ?? "",
    created_at: iso(v.createdAt)!,
    updated_at: iso(v.updatedAt)!,
  });

  function toRun(v: RunView): Run {
    const run: Run = { ...summaryOf(v), steps_run: v.stepsRun };
    if (v.startedAt !== undefined) run.started_at = iso(v.startedAt)!;
    if (v.finishedAt !== undefined) run.finished_at = iso(v.finishedAt)!;
    if (v.error !== undefined) run.error = v.error;
    if (v.result !== undefined) run.result = jsonToValue(v.result);
    if (v.steps.length > 0 || Object.keys(v.facts).length > 0) {
      run.steps = v.steps.map((s) => ({
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
        ...(s.usage ? { usage: usage(s.usage) } : {}),
      }));
      run.facts = jsonToStruct(v.facts);
      run.usage = usage(v.usage);
      run.usage_by_phase = byKey(v.usageBy.phase);
      run.usage_by_role = byKey(v.usageBy.role);
      run.usage_by_model = byKey(v.usageBy.model);
      if (v.gate) run.gate = v.gate;
    }
    return run;
  }

  async function getRun(runId: string): Promise<Run> {
    return toRun(await api.require(checkRunId(runId)));
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
    return (await stat(nested)
      .then((s) => s.isDirectory())
      .catch(() => false))
      ? nested
      : real;
  }

  return {
    CreateRun: unary<CreateRunRequest, Run>(log, "CreateRun", async (req) => {
      const ref = req.definition;
      if (!ref?.id) throw new GrpcFailure(status.INVALID_ARGUMENT, "definition.id is required");
      if (req.project_id && !isToken(req.project_id)) throw new GrpcFailure(status.INVALID_ARGUMENT, "project_id is malformed");
      const created = await api.create(
        {
          ...(req.project_id ? { projectId: req.project_id } : {}),
          definition: { id: ref.id, ...(ref.version > 0 ? { version: ref.version } : {}) },
          ...(req.title ? { title: req.title } : {}),
          ...(Object.keys(req.labels ?? {}).length ? { labels: req.labels } : {}),
          ...(req.input ? { input: structToJson(req.input) as Record<string, unknown> } : {}),
          ...(req.steps?.length ? { steps: req.steps.map((s) => (structToJson(s) ?? {}) as Record<string, unknown>) } : {}),
          ...(req.facts ? { facts: structToJson(req.facts) as Record<string, unknown> } : {}),
          ...(req.limits ? { limits: structToJson(req.limits) as Record<string, unknown> } : {}),
          ...(req.budgets?.length ? { budgets: req.budgets.map((b) => (structToJson(b) ?? {}) as Record<string, unknown>) } : {}),
          autoStart: req.auto_start ?? true,
          ...(req.idempotency_key ? { idempotencyKey: req.idempotency_key } : {}),
        },
        { actor: "grpc" },
      );
      if ("accepted" in created)
        return { run_id: created.runId, project_id: created.projectId, definition_id: ref.id, status: "pending" satisfies RunStatus } as Run;
      return toRun(created);
    }),

    GetRun: unary<GetRunRequest, Run>(log, "GetRun", (req) => getRun(req.run_id)),

    ListRuns: unary<ListRunsRequest, ListRunsResponse>(log, "ListRuns", async (req) => {
      const r = await api.list({
        ...(req.project_id ? { projectId: req.project_id } : {}),
        ...(req.status?.length ? { status: req.status as RunStatus[] } : {}),
        ...(req.definition_id ? { definitionId: req.definition_id } : {}),
        ...(req.view ? { view: req.view } : {}),
        ...(Object.keys(req.labels ?? {}).length ? { labels: req.labels } : {}),
        limit: req.limit > 0 ? Math.min(req.limit, 500) : 50,
        ...(req.cursor ? { cursor: req.cursor } : {}),
      });
      return {
        runs: r.runs.map(summaryOf),
        next_cursor: r.nextCursor ?? "",
        total: r.total,
      };
    }),

    SignalRun: unary<SignalRunRequest, Run>(log, "SignalRun", async (req) => {
      const runId = checkRunId(req.run_id);
      const v = await api.signal(runId, (structToJson(req.signal) ?? {}) as Record<string, unknown>, {
        actor: req.actor || "grpc",
        ...(req.reason ? { reason: req.reason } : {}),
        ...(req.idempotency_key ? { idempotencyKey: req.idempotency_key } : {}),
      });
      return toRun(v);
    }),

    GetHistory: unary<GetHistoryRequest, GetHistoryResponse>(log, "GetHistory", async (req) => {
      const events = await api.history(checkRunId(req.run_id));
      const records: HistoryRecord[] = events.map(({ id, event }) => {
        const d = event.data ?? {};
        const str = (v: unknown) => (typeof v === "string" ? v : "");
        return {
          seq: String(id),
          run_seq: String(event.seq),
          type: event.type,
          at: iso(event.at)!,
          from: str(d.from),
          // A run's end is `run.finished`: the status it reached is its `status`.
          to: str(d.to) || (event.type === "run.finished" ? str(d.status) : ""),
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
        if (!(await api.summary(runId))) return end(status.NOT_FOUND, `run ${runId} not found`);
        const after = parseFeedPosition(call.request.after_seq ? String(call.request.after_seq) : undefined) ?? undefined;
        // A finished run's stream resumed after its last event has nothing more to say.
        if (after && (await api.finishedBefore(runId, after))) return call.end();
        for await (const { id, event } of api.watch(runId, { ...(after ? { after } : {}), signal: ac.signal })) {
          const msg: RunEventMessage = { run_id: runId, seq: String(id), run_seq: String(event.seq), type: event.type, at: String(event.at) };
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
      const { created, summary: s } = await writer.put(parseDefinitionText(req.text));
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
          const { created, summary: s } = await writer.put(parseDefinitionText(text, file));
          results.push({ file, definition: summary(s, created), error: "" });
        } catch (err) {
          results.push({ file, error: (err as Error).message });
        }
      }
      return { results };
    }),
  };
}
