import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ServiceProcess, Stack, freePort, waitFor } from "@orch/testing";

/**
 * A service stopped (SIGTERM) at any point of its start stops cleanly: exit code 0, "stopped", no
 * fatal or error line. The core is the one with the most to start (partition leases and their
 * consumers, gRPC), and the one that used to die of a DrainingConnectionError.
 */

let stack: Stack;

beforeAll(async () => {
  // The event-bus provisions the topology the core waits for.
  stack = await Stack.start({ services: ["event-bus"] });
});

afterAll(async () => {
  await stack?.stop();
});

describe("the core stopped while it starts", () => {
  it("exits 0 with 'stopped' and no fatal line, whenever SIGTERM comes", async () => {
    // SIGTERM 0, 10, … 200 ms after it connected to NATS: before the topology check, while it takes
    // its partition leases, while it starts gRPC, and once it is ready.
    const runs: { delay: number; exit: unknown; bad: unknown[]; last?: string; acquired: boolean; ready: boolean }[] = [];
    for (let delay = 0; delay <= 200; delay += 10) {
      const core = new ServiceProcess("orchestrator", {
        ORCH_NATS_URL: stack.nats.url,
        ORCH_GRPC_PORT: String(await freePort()),
        ORCH_CONFIG: "none",
        ORCH_INSTANCE_ID: `stop-at-${delay}`,
      });
      void core.start().catch(() => undefined);
      await core.waitForLog((l) => l.msg === "connected to NATS", { timeoutMs: 20_000 });
      await new Promise((r) => setTimeout(r, delay));
      await core.kill("SIGTERM");
      // Its exit can be seen before the last of its output is read: wait for the last line.
      await waitFor(() => core.lines.some((l) => l.msg === "stopped" || l.level === "fatal" || l.level === "error"), { timeoutMs: 2_000 }).catch(
        () => undefined,
      );
      runs.push({
        delay,
        exit: core.exit,
        bad: core.lines.filter((l) => l.level === "fatal" || l.level === "error").map((l) => `${l.msg}: ${(l.err as { type?: string })?.type}`),
        last: core.lines.at(-1)?.msg,
        acquired: core.lines.some((l) => l.msg === "partition acquired"),
        ready: core.lines.some((l) => l.msg === "ready"),
      });
    }
    const unclean = runs.filter((r) => r.bad.length > 0 || r.last !== "stopped" || JSON.stringify(r.exit) !== JSON.stringify({ code: 0, signal: null }));
    expect(unclean).toEqual([]);
    // The sweep did stop cores in the middle of their start (leases taken, not ready yet).
    expect(runs.some((r) => r.acquired && !r.ready)).toBe(true);
  }, 120_000);
});
