import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectBus, readEvents, type Bus } from "@orch/bus";
import { createLogger } from "@orch/logging";
import { Stack, freePort, http, waitFor, type ServiceProcess } from "@orch/testing";

/**
 * Two orchestrator replicas on one NATS share the command partitions (leases, rendezvous hashing);
 * SIGKILL one in the middle of many runs and the other takes its partitions over: every run
 * finishes, no command is applied twice, no step is reported done twice.
 */

let stack: Stack;
let second: ServiceProcess;
let bus: Bus;

beforeAll(async () => {
  stack = await Stack.start({ serviceEnv: { orchestrator: { ORCH_INSTANCE_ID: "replica-a" } } });
  second = await stack.spawn("orchestrator", { ORCH_INSTANCE_ID: "replica-b", ORCH_GRPC_PORT: String(await freePort()) });
  bus = await connectBus({ url: stack.nats.url, name: "probe", logger: createLogger({ service: "test", level: "silent" }) });
});

afterAll(async () => {
  await bus?.close();
  await stack?.stop();
});

const owned = (p: ServiceProcess) => {
  const held = new Set<number>();
  for (const l of p.lines) {
    if (l.msg === "partition acquired") held.add(l.partition as number);
    if (l.msg === "partition released" || l.msg === "lost a partition lease") held.delete(l.partition as number);
  }
  return held;
};

describe("orchestrator replicas", () => {
  it("split the partitions, survive a SIGKILL of one, and never double-apply", async () => {
    const first = stack.service("orchestrator");
    await waitFor(() => owned(first).size + owned(second).size === 16 && owned(second).size > 0 && owned(first).size > 0, {
      timeoutMs: 20_000,
      what: "both replicas to own partitions",
    });
    const a = owned(first);
    const b = owned(second);
    expect([...a].filter((k) => b.has(k))).toEqual([]);

    const jobs: string[] = [];
    for (let i = 0; i < 24; i++) {
      const r = await http("POST", `${stack.baseUrl}/api/orchestrator/jobs`, {
        json: {
          goal: `replicated ${i}`,
          steps: [1, 2, 3].map(() => ({ type: "ci", payload: { mock: { delayMs: 250 } } })),
          limits: { maxSteps: 3, maxWallMs: 120_000 },
        },
      });
      jobs.push(r.json().job_id);
    }
    // Runs of both replicas' partitions are under way.
    const partitionOf = (id: string) => bus.names.subjects.partitionOf(id);
    expect(jobs.some((j) => b.has(partitionOf(j)))).toBe(true);
    await new Promise((r) => setTimeout(r, 400));
    await second.kill("SIGKILL");

    for (const id of jobs) {
      const job = await waitFor(
        async () => {
          const j = (await http("GET", `${stack.baseUrl}/api/orchestrator/jobs/${id}`)).json();
          return j.status === "succeeded" || j.status === "failed" ? j : undefined;
        },
        { timeoutMs: 40_000, what: `job ${id}` },
      );
      expect(job, id).toMatchObject({ status: "succeeded", stepsRun: 3 });
      const events = (await readEvents(bus, bus.names.subjects.runOf(id))).map((e) => e.event);
      expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
      const ok = events.filter((e) => e.type === "step.succeeded").map((e) => e.data?.stepId);
      expect(ok).toEqual(["s0", "s1", "s2"]);
    }
    // The survivor took the dead replica's partitions.
    await waitFor(() => owned(first).size === 16, { timeoutMs: 10_000, what: "replica a to own every partition" });
  });
});
