import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectBus, publishToStream, type Bus } from "@orch/bus";
import { TRANSITION_VERSION, encodeTransition } from "@orch/contracts";
import { createLogger } from "@orch/logging";
import { Stack, waitFor } from "@orch/testing";

/**
 * The scheduler reads transitions headers only (`Orch-Timers`). A transition written before that
 * header existed (an upgrade with transitions still unacknowledged) is read from its body instead:
 * its timer is armed and fires.
 */

let stack: Stack;
let bus: Bus;

beforeAll(async () => {
  stack = await Stack.start({});
  bus = await connectBus({ url: stack.nats.url, name: "probe", logger: createLogger({ service: "test", level: "silent" }) });
});

afterAll(async () => {
  await bus?.close();
  await stack?.stop();
});

/** The `timer.fired` commands stored for a run. */
async function firedFor(runId: string): Promise<string[]> {
  const out: string[] = [];
  const info = await bus.jsm.streams.info(bus.names.streams.cmd);
  for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
    const m = await bus.jsm.streams.getMessage(bus.names.streams.cmd, { seq }).catch(() => null);
    if (!m || m.subject !== bus.names.subjects.cmd(runId)) continue;
    const c = JSON.parse(new TextDecoder().decode(m.data)) as { type: string; timerId?: string };
    if (c.type === "timer.fired" && c.timerId) out.push(c.timerId);
  }
  return out;
}

describe("scheduler, headers only", () => {
  it("arms the timer of a transition written without the Orch-Timers header, from its body", async () => {
    const runId = "legacy-timer-run";
    const at = Date.now();
    const data = encodeTransition({
      head: {
        v: TRANSITION_VERSION,
        runId,
        projectId: "_default",
        n: 1,
        seq: 1,
        events: 0,
        at,
        cause: { type: "run.create", commandId: `create:${runId}` },
        timers: [{ op: "set", timerId: `${runId}.wall`, dueAt: at + 300, kind: "wall_clock" }],
      },
      events: [],
    });
    // No headers at all: as the core wrote transitions before the header existed.
    await publishToStream(bus, bus.names.subjects.run("_default", runId), data);
    await waitFor(async () => (await firedFor(runId)).length > 0, { timeoutMs: 20_000, what: "the legacy timer to fire" }).catch((e) => {
      console.log(
        stack
          .service("scheduler")
          .lines.slice(-10)
          .map((l) => JSON.stringify(l))
          .join("\n"),
      );
      throw e;
    });
    expect(await firedFor(runId)).toEqual([`${runId}.wall`]);
  });
});
