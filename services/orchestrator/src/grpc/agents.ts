import { status, type ServerWritableStream } from "@grpc/grpc-js";
import { replaySessionEvents, type Bus } from "@orch/bus";
import type { RunsApi } from "@orch/runs";
import { FINAL_SESSION_STATUSES, ProjectRecord, isToken, type SessionRecord } from "@orch/contracts";
import type { Logger } from "@orch/logging";
import {
  jsonToStruct,
  type CancelSessionRequest,
  type GetProjectRequest,
  type GetSessionRequest,
  type ListProjectsRequest,
  type ListProjectsResponse,
  type ListSessionsRequest,
  type ListSessionsResponse,
  type OrchestratorServiceHandlers,
  type Project,
  type PutProjectRequest,
  type Session,
  type SessionEventMessage,
  type WatchSessionRequest,
} from "@orch/proto";
import { ProjectWriteError, type ProjectWriter } from "../writes/projects.js";
import { GrpcFailure, unary } from "./runs.js";

/**
 * Projects (bucket `projects`) and worker sessions (written by the agent hubs; read here from the
 * `sessions` bucket and the sessions stream). Cancelling a session asks the hubs over NATS
 * (`<p>.ctl.session.cancel`); the one that runs it kills its processes and fails its step.
 */

const iso = (ms: number | undefined) => (ms === undefined ? "" : new Date(ms).toISOString());

const toProject = (p: ProjectRecord): Project => ({
  id: p.id,
  name: p.name,
  local_path: p.localPath ?? "",
  git_url: p.gitUrl ?? "",
  base_branch: p.baseBranch ?? "",
  created_at: iso(p.createdAt),
  updated_at: iso(p.updatedAt),
});

export function toSession(r: SessionRecord): Session {
  return {
    session_id: r.sessionId,
    run_id: r.runId,
    project_id: r.projectId,
    step_id: r.stepId,
    attempt_id: r.attemptId,
    attempt: r.attempt,
    kind: r.kind,
    role: r.role,
    type: r.type,
    executor: r.executor,
    model: r.model ?? "",
    hub: r.hub,
    status: r.status,
    worktree_path: r.worktree?.path ?? "",
    branch: r.worktree?.branch ?? "",
    run_branch: r.worktree?.runBranch ?? "",
    created_at: iso(r.createdAt),
    started_at: iso(r.startedAt),
    finished_at: iso(r.finishedAt),
    heartbeat_at: iso(r.heartbeatAt),
    error_code: r.error?.code ?? "",
    error_message: r.error?.message ?? "",
    summary: r.result?.summary ?? "",
    commit: r.result?.commit ?? "",
    ...(r.usage
      ? {
          usage: {
            tokens: String(r.usage.tokensIn + r.usage.tokensOut),
            tokens_in: String(r.usage.tokensIn),
            tokens_out: String(r.usage.tokensOut),
            cost_usd: r.usage.costUsd,
            wall_ms: String(r.usage.wallMs),
          },
        }
      : {}),
    events: String(r.seq),
  };
}

export function agentHandlers(opts: {
  bus: Bus;
  logger: Logger;
  api: RunsApi;
  /** Writes projects: the code that answers the edges' `projects.*`. */
  projects: ProjectWriter;
  killGraceMs?: number;
}): Pick<OrchestratorServiceHandlers, "PutProject" | "GetProject" | "ListProjects" | "GetSession" | "ListSessions" | "WatchSession" | "CancelSession"> {
  const { bus, logger: log, api, projects } = opts;

  async function session(id: string): Promise<SessionRecord> {
    if (!isToken(id)) throw new GrpcFailure(status.INVALID_ARGUMENT, "session_id is malformed");
    const s = await api.session(id);
    if (!s) throw new GrpcFailure(status.NOT_FOUND, `session ${id} not found`);
    return s;
  }

  return {
    PutProject: unary<PutProjectRequest, Project>(log, "PutProject", async (req) => {
      if (!isToken(req.id)) throw new GrpcFailure(status.INVALID_ARGUMENT, "id must be [A-Za-z0-9_-], 1-128 chars");
      if (req.local_path && !req.local_path.startsWith("/")) throw new GrpcFailure(status.INVALID_ARGUMENT, "local_path must be absolute");
      const prev = await api.getProject(req.id);
      // What gRPC cannot set (a project token, its number, CI, models) is kept; the rest is replaced.
      const change = {
        name: req.name || prev?.name || req.id,
        localPath: req.local_path || null,
        gitUrl: req.git_url || null,
        baseBranch: req.base_branch || null,
      };
      try {
        return toProject((await projects.update({ id: req.id, fields: change, createIfMissing: true, actor: "grpc" })).project);
      } catch (err) {
        if (err instanceof ProjectWriteError && err.code === "INVALID") throw new GrpcFailure(status.INVALID_ARGUMENT, err.message);
        throw err;
      }
    }),

    GetProject: unary<GetProjectRequest, Project>(log, "GetProject", async (req) => {
      if (!isToken(req.id)) throw new GrpcFailure(status.INVALID_ARGUMENT, "id is malformed");
      const p = await api.getProject(req.id);
      if (!p) throw new GrpcFailure(status.NOT_FOUND, `project ${req.id} not found`);
      return toProject(p);
    }),

    ListProjects: unary<ListProjectsRequest, ListProjectsResponse>(log, "ListProjects", async () => ({
      projects: (await api.listProjects()).map(toProject).sort((a, b) => (a.id ?? "").localeCompare(b.id ?? "")),
    })),

    GetSession: unary<GetSessionRequest, Session>(log, "GetSession", async (req) => toSession(await session(req.session_id))),

    ListSessions: unary<ListSessionsRequest, ListSessionsResponse>(log, "ListSessions", async (req) => {
      if (!isToken(req.run_id)) throw new GrpcFailure(status.INVALID_ARGUMENT, "run_id is malformed");
      return { sessions: (await api.sessions(req.run_id)).map(toSession) };
    }),

    WatchSession(call: ServerWritableStream<WatchSessionRequest, SessionEventMessage>) {
      const ac = new AbortController();
      const end = (code: status, details: string) => call.emit("error", { code, details });
      call.on("cancelled", () => ac.abort());
      call.on("close", () => ac.abort());
      void (async () => {
        const { session_id: sessionId, run_id: runId } = call.request;
        let filter: string;
        let finalOf: ((type: string, sid: string) => boolean) | undefined;
        if (sessionId) {
          await session(sessionId);
          filter = bus.names.subjects.sessSession(sessionId);
          // A session's watch ends with its final lifecycle event.
          finalOf = (type, sid) => sid === sessionId && type.startsWith("session.") && FINAL_SESSION_STATUSES.has(type.slice(8) as never);
        } else if (isToken(runId)) {
          filter = bus.names.subjects.sessRun(runId);
        } else {
          throw new GrpcFailure(status.INVALID_ARGUMENT, "session_id or run_id is required");
        }
        const after = Number(call.request.after_seq ?? 0);
        for await (const { streamSeq, event } of replaySessionEvents(bus, filter, { startSeq: after + 1, signal: ac.signal })) {
          const msg: SessionEventMessage = {
            session_id: event.sessionId,
            run_id: event.runId,
            step_id: event.stepId,
            seq: String(streamSeq),
            session_seq: String(event.seq),
            type: event.type,
            at: iso(event.at),
            data: jsonToStruct(event.data),
          };
          if (!call.write(msg)) await new Promise((r) => call.once("drain", r));
          if (finalOf?.(event.type, event.sessionId)) break;
        }
        call.end();
      })().catch((err: unknown) => {
        if (ac.signal.aborted) return;
        if (err instanceof GrpcFailure) return end(err.code, err.message);
        log.error({ err }, "WatchSession failed");
        end(status.UNAVAILABLE, "watch failed; resume with after_seq");
      });
    },

    CancelSession: unary<CancelSessionRequest, Session>(log, "CancelSession", async (req) => {
      await session(req.session_id);
      return toSession(
        await api.cancelSession(req.session_id, {
          ...(req.actor ? { actor: req.actor } : {}),
          ...(req.reason ? { reason: req.reason } : {}),
          ...(opts.killGraceMs !== undefined ? { killGraceMs: opts.killGraceMs } : {}),
        }),
      );
    }),
  };
}
