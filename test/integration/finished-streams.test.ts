import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { status as grpcStatus, type ServiceError } from "@grpc/grpc-js";
import { Stack, grpcClient, http, sse, waitFor, type GrpcTestClient } from "@orch/testing";

/**
 * A finished run's event stream, resumed after its last event, ends at once: SSE answers 204 No
 * Content (which tells an EventSource to stop reconnecting), gRPC watches end with no message.
 */

let stack: Stack;
let grpc: GrpcTestClient;

beforeAll(async () => {
  stack = await Stack.start();
  grpc = grpcClient(stack.grpcPort);
});

afterAll(async () => {
  grpc?.close();
  await stack?.stop();
});

/** A watch's messages until it ends (rejects on an error status). */
function watch(method: "WatchJob" | "WatchRun", req: Record<string, string>): Promise<any[]> {
  return new Promise((resolve, reject) => {
    const out: any[] = [];
    const s = (grpc.client as any)[method](req);
    s.on("data", (m: any) => out.push(m));
    s.on("end", () => resolve(out));
    s.on("error", (err: ServiceError) => (err.code === grpcStatus.CANCELLED ? resolve(out) : reject(err)));
  });
}

describe("a finished run's streams", () => {
  it("seed 000: resumed after `end`, SSE answers 204 and WatchJob ends at once", async () => {
    const r = await http("POST", `${stack.baseUrl}/api/orchestrator/jobs`, { json: { goal: "done", limits: { maxSteps: 1 } } });
    const id = r.json().job_id as string;
    const s = await sse(`${stack.baseUrl}/api/orchestrator/events?job=${id}`);
    await s.ended;
    const end = s.frames.at(-1)!;
    expect(end.event).toBe("end");
    // A reconnect after everything: nothing to send, and the client is told to stop.
    const again = await sse(`${stack.baseUrl}/api/orchestrator/events?job=${id}`, { "last-event-id": end.id! });
    expect(again.status).toBe(204);
    await again.ended;
    expect(again.frames).toEqual([]);
    // One event earlier, it still gets the end.
    const before = s.frames.at(-2)!;
    const tail = await sse(`${stack.baseUrl}/api/orchestrator/events?job=${id}`, { "last-event-id": before.id! });
    expect(tail.status).toBe(200);
    await tail.ended;
    expect(tail.frames.map((f) => f.event)).toEqual(["ready", "end"]);

    const all = await watch("WatchJob", { job_id: id });
    expect(all.at(-1).type).toBe("end");
    expect(await watch("WatchJob", { job_id: id, after_seq: all.at(-1).seq })).toEqual([]);
  });

  it("/api/v1: a run's and a session's streams resumed after their end answer 204; WatchRun ends at once", async () => {
    const created = await http("POST", `${stack.baseUrl}/api/v1/runs`, {
      json: { definition: "speckit.specify", input: { feature_description: "a feature to specify" }, labels: { feature: "finished" } },
    });
    expect(created.status, created.text).toBe(201);
    const id = created.json().id as string;
    const run = async () => (await http("GET", `${stack.baseUrl}/api/v1/runs/${id}`)).json();
    await waitFor(async () => (await run()).status === "running" && (await run()).steps.some((x: any) => x.status === "waiting_approval"), {
      what: "phase 1 to wait for approval",
    });
    expect((await http("POST", `${stack.baseUrl}/api/v1/runs/${id}/actions/cancel`, { json: {} })).status).toBe(200);
    await waitFor(async () => (await run()).status === "cancelled", { what: "the run to be cancelled" });

    const history = (await http("GET", `${stack.baseUrl}/api/v1/runs/${id}/history`)).json().items;
    const last = history.at(-1);
    expect(last.type).toBe("run.finished");
    const resumed = await sse(`${stack.baseUrl}/api/v1/runs/${id}/events`, { "last-event-id": String(last.id) });
    expect(resumed.status).toBe(204);
    const viaQuery = await sse(`${stack.baseUrl}/api/v1/runs/${id}/events?last_event_id=${last.id}`);
    expect(viaQuery.status).toBe(204);
    const earlier = await sse(`${stack.baseUrl}/api/v1/runs/${id}/events`, { "last-event-id": String(history.at(-2).id) });
    expect(earlier.status).toBe(200);
    await earlier.ended;
    expect(earlier.frames.map((f) => f.event)).toEqual(["run.finished"]);

    expect(await watch("WatchRun", { run_id: id, after_seq: String(last.id) })).toEqual([]);
    const whole = await watch("WatchRun", { run_id: id });
    expect(whole.map((m) => m.type)).toEqual(history.map((e: any) => e.type));

    const session = (await http("GET", `${stack.baseUrl}/api/v1/runs/${id}/sessions`)).json().items[0];
    const se = await sse(`${stack.baseUrl}/api/v1/sessions/${session.id}/events`);
    await se.ended;
    const again = await sse(`${stack.baseUrl}/api/v1/sessions/${session.id}/events`, { "last-event-id": se.frames.at(-1)!.id! });
    expect(again.status).toBe(204);
  });
});
