import { Server, ServerCredentials, status, type ServerWritableStream, type sendUnaryData, type ServerUnaryCall } from "@grpc/grpc-js";
import { finishedBefore, parseFeedPosition, replayEvents, type Bus } from "@orch/bus";
import { isToken, type RunMode } from "@orch/contracts";
import type { Logger } from "@orch/logging";
import { getJobView, RunsApi, Seed000Event, submitJob, TaskPacket, toSeed000Frame, type DefinitionStore } from "@orch/runs";
import type { Writers } from "../writes/server.js";
import { agentHandlers } from "./agents.js";
import { runHandlers } from "./runs.js";
import { scheduleHandlers } from "./schedules.js";
import {
  jsonToStruct,
  loadOrchestratorProto,
  structToJson,
  type CreateJobRequest,
  type CreateJobResponse,
  type GetJobRequest,
  type Job,
  type JobEvent,
  type OrchestratorServiceHandlers,
  type WatchJobRequest,
} from "@orch/proto";

export interface GrpcServerOptions {
  bus: Bus;
  logger: Logger;
  definitions: DefinitionStore;
  /** What only the core writes: the RPCs the edges send and these calls go through the same writers. */
  writers: Writers;
  host: string;
  port: number;
  mode: RunMode;
  importRoots: string[];
}

export interface GrpcServer {
  readonly port: number;
  stop(): Promise<void>;
}

type GrpcError = { code: status; message: string };
const fail = (code: status, message: string): GrpcError => ({ code, message });

/** CreateJobRequest (proto) → the JSON a Task Packet is validated from. */
function packetJson(req: CreateJobRequest): unknown {
  const limits: Record<string, unknown> = { maxSteps: req.limits?.max_steps };
  if (req.limits?.max_wall_ms !== undefined) limits.maxWallMs = req.limits.max_wall_ms;
  if (req.limits?.max_tokens !== undefined) limits.maxTokens = req.limits.max_tokens;
  return {
    goal: req.goal,
    ...(req.scope === undefined ? {} : { scope: req.scope }),
    ...(req.plan_ref === undefined ? {} : { planRef: req.plan_ref }),
    steps: req.steps.map((s) => ({
      ...(s.id ? { id: s.id } : {}),
      type: s.type,
      ...(s.payload ? { payload: structToJson(s.payload) } : {}),
    })),
    limits: req.limits ? limits : undefined,
    ...(req.flags ? { flags: structToJson(req.flags) } : {}),
  };
}

const toJob = (v: { job_id: string; status: string; started_at?: string; finished_at?: string; error?: string; stepsRun: number }): Job => ({
  job_id: v.job_id,
  status: v.status,
  steps_run: v.stepsRun,
  ...(v.started_at === undefined ? {} : { started_at: v.started_at }),
  ...(v.finished_at === undefined ? {} : { finished_at: v.finished_at }),
  ...(v.error === undefined ? {} : { error: v.error }),
});

/** The gRPC API: seed 000's jobs (same commands and queries as the HTTP routes), runs, definitions and schedules. */
export async function startGrpcServer(opts: GrpcServerOptions): Promise<GrpcServer> {
  const { bus, logger } = opts;
  const proto = loadOrchestratorProto();
  const server = new Server();

  const api = new RunsApi(bus, { definitions: opts.definitions, mode: opts.mode });
  const handlers: OrchestratorServiceHandlers = {
    ...runHandlers({ bus, logger, definitions: opts.definitions, writer: opts.writers.definitions, mode: opts.mode, importRoots: opts.importRoots, api }),
    ...agentHandlers({ bus, logger, api, projects: opts.writers.projects }),
    CreateJob(call: ServerUnaryCall<CreateJobRequest, CreateJobResponse>, cb: sendUnaryData<CreateJobResponse>) {
      const parsed = TaskPacket.safeParse(packetJson(call.request));
      if (!parsed.success) {
        const issues = parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ");
        cb(fail(status.INVALID_ARGUMENT, `Invalid Task Packet: ${issues}`));
        return;
      }
      submitJob(bus, {
        packet: parsed.data,
        mode: opts.mode,
        actor: "grpc",
        ...(call.request.idempotency_key ? { idempotencyKey: call.request.idempotency_key } : {}),
      }).then(
        (job_id) => cb(null, { job_id }),
        (err: unknown) => {
          logger.error({ err }, "CreateJob failed");
          cb(fail(status.UNAVAILABLE, "could not store the job; try again"));
        },
      );
    },

    GetJob(call: ServerUnaryCall<GetJobRequest, Job>, cb: sendUnaryData<Job>) {
      const id = call.request.job_id;
      if (!isToken(id)) {
        cb(fail(status.INVALID_ARGUMENT, "job_id is malformed"));
        return;
      }
      getJobView(bus, id).then(
        (v) => (v ? cb(null, toJob(v)) : cb(fail(status.NOT_FOUND, `job ${id} not found`))),
        (err: unknown) => {
          logger.error({ err, jobId: id }, "GetJob failed");
          cb(fail(status.UNAVAILABLE, "could not read the job; try again"));
        },
      );
    },

    WatchJob(call: ServerWritableStream<WatchJobRequest, JobEvent>) {
      const id = call.request.job_id;
      const ac = new AbortController();
      // grpc-js turns an emitted error into the call's status (destroy() would send none).
      const end = (code: status, details: string) => call.emit("error", { code, details });
      call.on("cancelled", () => ac.abort());
      call.on("close", () => ac.abort());
      void (async () => {
        if (!isToken(id)) {
          end(status.INVALID_ARGUMENT, "job_id is malformed");
          return;
        }
        if (!(await getJobView(bus, id))) {
          end(status.NOT_FOUND, `job ${id} not found`);
          return;
        }
        const after = parseFeedPosition(call.request.after_seq ? String(call.request.after_seq) : undefined) ?? undefined;
        // A finished job's stream resumed after its last event has nothing more to say.
        if (after && (await finishedBefore(bus, id, after))) {
          call.end();
          return;
        }
        for await (const { id: seq, event, work } of replayEvents(bus, bus.names.subjects.runOf(id), { ...(after ? { after } : {}), signal: ac.signal })) {
          const frame = toSeed000Frame(event, work);
          if (!frame) continue;
          const msg: JobEvent = { job_id: id, seq: String(seq), type: frame.type, t: String(frame.t) };
          if (frame.data) msg.data = jsonToStruct(frame.data);
          if (!call.write(msg)) await new Promise((r) => call.once("drain", r));
          if (frame.type === Seed000Event.End) break;
        }
        call.end();
      })().catch((err: unknown) => {
        if (ac.signal.aborted) return;
        logger.error({ err, jobId: id }, "WatchJob failed");
        end(status.UNAVAILABLE, "watch failed; resume with after_seq");
      });
    },
  };

  server.addService(proto.orchestrator.v1.OrchestratorService.service, handlers);
  server.addService(proto.orchestrator.v1.SchedulerService.service, scheduleHandlers({ logger, api }));
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${opts.host}:${opts.port}`, ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  logger.info({ host: opts.host, port }, "gRPC listening");
  return {
    port,
    stop: () =>
      new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 3_000);
        server.tryShutdown(() => {
          clearTimeout(t);
          resolve();
        });
      }),
  };
}
