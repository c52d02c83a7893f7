import { afterEach, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { connectBus } from "@orch/bus";
import { createLogger } from "@orch/logging";
import { REPO_ROOT } from "@orch/nats-server";
import { Stack, http, sse, waitFor } from "@orch/testing";

/** ORCH_BACKEND: file (durable), memory (nothing kept across a nats-server restart), redis (refused). */

let stack: Stack | undefined;
afterEach(async () => {
  await stack?.stop();
  stack = undefined;
});

const silent = createLogger({ service: "test", level: "silent" });

async function runJob(base: string, packet: unknown): Promise<string> {
  const r = await http("POST", `${base}/api/orchestrator/jobs`, { json: packet });
  expect(r.status, r.text).toBe(200);
  return r.json().job_id;
}

describe("ORCH_BACKEND", () => {
  it("file: a job survives a SIGKILL of nats-server itself, mid-job", async () => {
    stack = await Stack.start();
    const s = stack;
    const id = await runJob(s.baseUrl, {
      goal: "survive nats",
      steps: [{ type: "ci", payload: { mock: { delayMs: 800 } } }, { type: "docs" }],
      limits: { maxSteps: 2, maxWallMs: 60_000 },
    });
    await waitFor(async () => (await http("GET", `${s.baseUrl}/api/orchestrator/jobs/${id}`)).json().status === "running");
    await s.nats.kill();
    const down = await http("GET", `${s.baseUrl}/api/orchestrator/jobs/${id}`);
    expect(down.status).toBe(503);
    expect(down.json().error.code).toBe("UNAVAILABLE");
    await s.nats.restart();
    const job = await waitFor(
      async () => {
        const r = await http("GET", `${s.baseUrl}/api/orchestrator/jobs/${id}`);
        return r.status === 200 && r.json().status === "succeeded" ? r.json() : undefined;
      },
      { timeoutMs: 45_000, what: "job to finish after the nats-server restart" },
    );
    expect(job.stepsRun).toBe(2);
    const stream = await sse(`${s.baseUrl}/api/orchestrator/events?job=${id}`);
    await stream.ended;
    expect(stream.frames.filter((f) => f.event === "step.ok").map((f) => f.json.data.i)).toEqual([0, 1]);
  });

  it("memory: streams live in memory and nothing is kept across a nats-server restart", async () => {
    stack = await Stack.start({ env: { ORCH_BACKEND: "memory" } });
    const s = stack;
    const bus = await connectBus({ url: s.nats.url, name: "probe", logger: silent });
    try {
      for (const name of Object.values(bus.names.streams)) expect((await bus.jsm.streams.info(name)).config.storage).toBe("memory");
      expect((await bus.jsm.streams.info(`KV_${bus.names.buckets.timers}`)).config.storage).toBe("memory");
    } finally {
      await bus.close();
    }
    const id = await runJob(s.baseUrl, { goal: "ephemeral", limits: { maxSteps: 1 } });
    await waitFor(async () => (await http("GET", `${s.baseUrl}/api/orchestrator/jobs/${id}`)).json().status === "succeeded");
    await s.nats.restart();
    // The event-bus puts the (empty) topology back; the job is gone with the old server's memory.
    await waitFor(async () => (await http("GET", `${s.baseUrl}/ready`)).status === 200, { timeoutMs: 30_000, what: "topology re-provisioned" });
    expect((await http("GET", `${s.baseUrl}/api/orchestrator/jobs/${id}`)).status).toBe(404);
    const again = await runJob(s.baseUrl, { goal: "after restart", limits: { maxSteps: 1 } });
    await waitFor(async () => (await http("GET", `${s.baseUrl}/api/orchestrator/jobs/${again}`)).json().status === "succeeded", { timeoutMs: 30_000 });
  });

  it("redis: every service refuses to start, saying why", async () => {
    for (const svc of ["gateway", "orchestrator", "agent-hub", "scheduler", "event-bus"]) {
      const child = spawn(process.execPath, [join(REPO_ROOT, "services", svc, "dist", "main.js")], {
        env: { ...process.env, ORCH_BACKEND: "redis", ORCH_NATS_URL: "nats://127.0.0.1:1" },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let err = "";
      child.stderr.on("data", (c: Buffer) => (err += c.toString()));
      const code = await new Promise<number | null>((r) => child.once("exit", r));
      expect(code, svc).toBe(2);
      expect(err).toContain(`orch-${svc}: invalid configuration`);
      expect(err).toContain("ORCH_BACKEND: redis is not supported");
      expect(err.trim().split("\n")).toHaveLength(2);
    }
  });
});
