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

function valueToJson(v: Value__Output | undefined): unknown {
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

function jsonToValue(v: unknown): Value {
  if (v === null || v === undefined) return { nullValue: "NULL_VALUE" };
  if (typeof v === "number") return { numberValue: v };
  if (typeof v === "string") return { stringValue: v };
  if (typeof v === "boolean") return { boolValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(jsonToValue) } };
  if (typeof v === "object") return { structValue: jsonToStruct(v as Record<string, unknown>) };
  return { stringValue: String(v) };
}
