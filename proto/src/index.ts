import { loadPackageDefinition } from "@grpc/grpc-js";
import { loadSync, type Options } from "@grpc/proto-loader";
import { fileURLToPath } from "node:url";
import type { ProtoGrpcType } from "./generated/orchestrator.js";
import type { Struct, Struct__Output } from "./generated/google/protobuf/Struct.js";
import type { Value, Value__Output } from "./generated/google/protobuf/Value.js";

export type { ProtoGrpcType } from "./generated/orchestrator.js";
export type { OrchestratorServiceClient, OrchestratorServiceHandlers } from "./generated/orchestrator/v1/OrchestratorService.js";
export type { CreateJobRequest__Output as CreateJobRequest } from "./generated/orchestrator/v1/CreateJobRequest.js";
export type { CreateJobResponse } from "./generated/orchestrator/v1/CreateJobResponse.js";
export type { GetJobRequest__Output as GetJobRequest } from "./generated/orchestrator/v1/GetJobRequest.js";
export type { Job } from "./generated/orchestrator/v1/Job.js";
export type { JobEvent } from "./generated/orchestrator/v1/JobEvent.js";
export type { WatchJobRequest__Output as WatchJobRequest } from "./generated/orchestrator/v1/WatchJobRequest.js";
export type { CreateRunRequest__Output as CreateRunRequest } from "./generated/orchestrator/v1/CreateRunRequest.js";
export type { GetRunRequest__Output as GetRunRequest } from "./generated/orchestrator/v1/GetRunRequest.js";
export type { ListRunsRequest__Output as ListRunsRequest } from "./generated/orchestrator/v1/ListRunsRequest.js";
export type { ListRunsResponse } from "./generated/orchestrator/v1/ListRunsResponse.js";
export type { SignalRunRequest__Output as SignalRunRequest } from "./generated/orchestrator/v1/SignalRunRequest.js";
export type { GetHistoryRequest__Output as GetHistoryRequest } from "./generated/orchestrator/v1/GetHistoryRequest.js";
export type { GetHistoryResponse } from "./generated/orchestrator/v1/GetHistoryResponse.js";
export type { HistoryRecord } from "./generated/orchestrator/v1/HistoryRecord.js";
export type { WatchRunRequest__Output as WatchRunRequest } from "./generated/orchestrator/v1/WatchRunRequest.js";
export type { RunEvent as RunEventMessage } from "./generated/orchestrator/v1/RunEvent.js";
export type { Run } from "./generated/orchestrator/v1/Run.js";
export type { RunSummary as RunSummaryMessage } from "./generated/orchestrator/v1/RunSummary.js";
export type { StepRun } from "./generated/orchestrator/v1/StepRun.js";
export type { PutDefinitionRequest__Output as PutDefinitionRequest } from "./generated/orchestrator/v1/PutDefinitionRequest.js";
export type { DefinitionSummary as DefinitionSummaryMessage } from "./generated/orchestrator/v1/DefinitionSummary.js";
export type { ListDefinitionsResponse } from "./generated/orchestrator/v1/ListDefinitionsResponse.js";
export type { ImportDefinitionsRequest__Output as ImportDefinitionsRequest } from "./generated/orchestrator/v1/ImportDefinitionsRequest.js";
export type { ImportDefinitionsResponse } from "./generated/orchestrator/v1/ImportDefinitionsResponse.js";
export type { Project } from "./generated/orchestrator/v1/Project.js";
export type { PutProjectRequest__Output as PutProjectRequest } from "./generated/orchestrator/v1/PutProjectRequest.js";
export type { GetProjectRequest__Output as GetProjectRequest } from "./generated/orchestrator/v1/GetProjectRequest.js";
export type { ListProjectsRequest__Output as ListProjectsRequest } from "./generated/orchestrator/v1/ListProjectsRequest.js";
export type { ListProjectsResponse } from "./generated/orchestrator/v1/ListProjectsResponse.js";
export type { Session } from "./generated/orchestrator/v1/Session.js";
export type { GetSessionRequest__Output as GetSessionRequest } from "./generated/orchestrator/v1/GetSessionRequest.js";
export type { ListSessionsRequest__Output as ListSessionsRequest } from "./generated/orchestrator/v1/ListSessionsRequest.js";
export type { ListSessionsResponse } from "./generated/orchestrator/v1/ListSessionsResponse.js";
export type { WatchSessionRequest__Output as WatchSessionRequest } from "./generated/orchestrator/v1/WatchSessionRequest.js";
export type { SessionEventMessage } from "./generated/orchestrator/v1/SessionEventMessage.js";
export type { CancelSessionRequest__Output as CancelSessionRequest } from "./generated/orchestrator/v1/CancelSessionRequest.js";
export type { SchedulerServiceClient, SchedulerServiceHandlers } from "./generated/orchestrator/v1/SchedulerService.js";
export type { Schedule as ScheduleMessage } from "./generated/orchestrator/v1/Schedule.js";
export type { ScheduleSpec__Output as ScheduleSpecMessage } from "./generated/orchestrator/v1/ScheduleSpec.js";
export type { CreateScheduleRequest__Output as CreateScheduleRequestMessage } from "./generated/orchestrator/v1/CreateScheduleRequest.js";
export type { ListSchedulesRequest__Output as ListSchedulesRequestMessage } from "./generated/orchestrator/v1/ListSchedulesRequest.js";
export type { ListSchedulesResponse as ListSchedulesResponseMessage } from "./generated/orchestrator/v1/ListSchedulesResponse.js";
export type { GetScheduleRequest__Output as GetScheduleRequestMessage } from "./generated/orchestrator/v1/GetScheduleRequest.js";
export type { UpdateScheduleRequest__Output as UpdateScheduleRequestMessage } from "./generated/orchestrator/v1/UpdateScheduleRequest.js";
export type { ScheduleActionRequest__Output as ScheduleActionRequestMessage } from "./generated/orchestrator/v1/ScheduleActionRequest.js";
export type { BackfillScheduleRequest__Output as BackfillScheduleRequestMessage } from "./generated/orchestrator/v1/BackfillScheduleRequest.js";

/** `proto/orchestrator.proto`, resolved from this module (works from src/ and dist/). */
export const ORCHESTRATOR_PROTO = fileURLToPath(new URL("../orchestrator.proto", import.meta.url));

/** Must match the generator's flags in scripts/generate.mjs, or the generated types lie. */
export const LOADER_OPTIONS: Options = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };

export function loadOrchestratorProto(): ProtoGrpcType {
  return loadPackageDefinition(loadSync(ORCHESTRATOR_PROTO, LOADER_OPTIONS)) as unknown as ProtoGrpcType;
}

/** google.protobuf.Struct as proto-loader decodes it → plain JSON. */
export function structToJson(s: Struct__Output | null | undefined): Record<string, unknown> | undefined {
  if (!s) return undefined;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s.fields ?? {})) out[k] = valueToJson(v);
  return out;
}

export function valueToJson(v: Value__Output | null | undefined): unknown {
  if (!v) return null;
  // Decoded messages name their oneof in `kind`; hand-built ones only carry the field itself.
  const kind = v.kind ?? (Object.keys(v).find((k) => k.endsWith("Value") && (v as Record<string, unknown>)[k] !== undefined) as Value__Output["kind"]);
  switch (kind) {
    case "nullValue":
      return null;
    case "numberValue":
      return v.numberValue ?? null;
    case "stringValue":
      return v.stringValue;
    case "boolValue":
      return v.boolValue;
    case "structValue":
      return structToJson(v.structValue);
    case "listValue":
      return (v.listValue?.values ?? []).map(valueToJson);
    default:
      return null;
  }
}

/** Plain JSON → google.protobuf.Struct for proto-loader to encode. */
export function jsonToStruct(o: Record<string, unknown>): Struct {
  const fields: Record<string, Value> = {};
  for (const [k, v] of Object.entries(o)) fields[k] = jsonToValue(v);
  return { fields };
}

export function jsonToValue(v: unknown): Value {
  if (v === null || v === undefined) return { nullValue: "NULL_VALUE" };
  if (typeof v === "number") return { numberValue: v };
  if (typeof v === "string") return { stringValue: v };
  if (typeof v === "boolean") return { boolValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(jsonToValue) } };
  if (typeof v === "object") return { structValue: jsonToStruct(v as Record<string, unknown>) };
  return { stringValue: String(v) };
}
