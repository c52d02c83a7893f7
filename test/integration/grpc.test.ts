import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { credentials, Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { loadOrchestratorProto, structToJson, type OrchestratorServiceClient } from "@orch/proto";
import { Stack } from "@orch/testing";

/** An external gRPC client (grpc-js + the .proto, nothing of ours in between) against the orchestrator. */

let stack: Stack;
let client: OrchestratorServiceClient;

beforeAll(async () => {
  stack = await Stack.start();
  const proto = loadOrchestratorProto();
  client = new proto.orchestrator.v1.OrchestratorService(`127.0.0.1:${stack.grpcPort}`, credentials.createInsecure());
});

afterAll(async () => {
  client?.close();
  await stack?.stop();
});

const call = <Req, Res>(fn: (req: Req, md: Metadata, cb: (err: ServiceError | null, res?: Res) => void) => unknown, req: Req) =>
  new Promise<Res>((resolve, reject) => fn.call(client, req, new Metadata(), (err, res) => (err ? reject(err) : resolve(res!))));

function watch(jobId: string, afterSeq = 0): Promise<{ type: string; seq: string; data?: unknown }[]> {
  return new Promise((resolve, reject) => {
    const out: { type: string; seq: string; data?: unknown }[] = [];
    const stream = client.WatchJob({ job_id: jobId, after_seq: String(afterSeq) });
    stream.on("data", (e: { type: string; seq: string; data?: never }) => out.push({ type: e.type, seq: e.seq, data: structToJson(e.data) }));
    stream.on("end", () => resolve(out));
    stream.on("error", reject);
  });
}

describe("gRPC OrchestratorService", () => {
  it("creates a job and watches it to the end", async () => {
    const { job_id } = await call<any, { job_id: string }>(client.CreateJob, {
      goal: "from grpc",
      steps: [{ type: "ci", payload: { fields: { mock: { structValue: { fields: { failTimes: { numberValue: 1 } } } } } } }, { type: "docs" }],
      limits: { max_steps: 3, max_wall_ms: 10_000 },
    });
    expect(job_id).toMatch(/^[0-9a-f-]{36}$/);
    const events = await watch(job_id);
    expect(events.map((e) => e.type)).toEqual(["start", "step.start", "step.retry", "step.ok", "step.start", "step.ok", "end"]);
    expect(events.at(-1)!.data).toEqual({ status: "succeeded" });
    expect(events[2]!.data).toMatchObject({ i: 0, attempt: 1 });

    const job = await call<any, any>(client.GetJob, { job_id });
    expect(job).toMatchObject({ job_id, status: "succeeded", steps_run: 2 });
    expect(job.started_at).toMatch(/^\d{4}-\d\d-\d\dT/);

    // Resuming after a sequence delivers only what came after it.
    const tail = await watch(job_id, Number(events[3]!.seq));
    expect(tail.map((e) => e.type)).toEqual(["step.start", "step.ok", "end"]);
  });

  it("is the same job the HTTP API sees, and idempotent by key", async () => {
    const req = { goal: "idem", limits: { max_steps: 1 }, idempotency_key: "grpc-key-1" };
    const a = await call<any, { job_id: string }>(client.CreateJob, req);
    const b = await call<any, { job_id: string }>(client.CreateJob, req);
    expect(a.job_id).toBe(b.job_id);
    await watch(a.job_id);
    const res = await fetch(`${stack.baseUrl}/api/orchestrator/jobs/${a.job_id}`);
    expect(await res.json()).toMatchObject({ job_id: a.job_id, status: "succeeded" });
  });

  it("refuses an invalid packet and reports unknown or malformed jobs", async () => {
    await expect(call(client.CreateJob, { goal: "", limits: { max_steps: 0 } })).rejects.toMatchObject({ code: status.INVALID_ARGUMENT });
    await expect(call(client.CreateJob, { goal: "no limits" })).rejects.toMatchObject({ code: status.INVALID_ARGUMENT });
    await expect(call(client.GetJob, { job_id: "0b7c3a1e-0000-4000-8000-000000000000" })).rejects.toMatchObject({ code: status.NOT_FOUND });
    await expect(call(client.GetJob, { job_id: "a.b" })).rejects.toMatchObject({ code: status.INVALID_ARGUMENT });
    await expect(watch("0b7c3a1e-0000-4000-8000-000000000000")).rejects.toMatchObject({ code: status.NOT_FOUND });
  });
});
