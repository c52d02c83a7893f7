import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunSignalCommand, WorkItem } from "@orch/contracts";
import { createLogger } from "@orch/logging";
import { FakeLinear } from "@orch/testing";
import { isTicketWork, runTicketWork, TicketingService } from "../src/ticketing/index.js";

/**
 * Ticket work as the hub's consumer runs it, against a local Linear: a sync answered on the command
 * stream (`tickets_synced`, its command id from the attempt), a failure's text without the key, an
 * update tried again through a flaky tracker and written once, and nothing logged carries the key.
 */

const KEY = "lin_api_dispatch_secret_0123456789";
/** Another tracker's key in the hub's environment: the Linear client does not know it, the hub still keeps it out. */
const OTHER = "sc_other_tracker_secret_987654321";
const lines: string[] = [];
const logger = createLogger({ service: "test" }, new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }));

describe("runTicketWork", () => {
  const linear = new FakeLinear(KEY);
  const sent: RunSignalCommand[] = [];
  let opts: Parameters<typeof runTicketWork>[1];
  beforeAll(async () => {
    await linear.start();
    const env = { LINEAR_API_KEY: KEY, SHORTCUT_API_TOKEN: OTHER };
    opts = {
      service: new TicketingService({ settings: { "ticketing.linear": { apiUrl: linear.apiUrl, timeoutMs: 5_000 } }, env }),
      send: async (cmd) => void sent.push(cmd),
      logger,
      signal: new AbortController().signal,
      env,
      updateBackoffMs: 10,
    };
  });
  afterAll(() => linear.stop());

  const item = (type: string, attemptId: string, payload: Record<string, unknown>): WorkItem =>
    ({ runId: "intake-linear", type, attemptId, payload, kind: "sync", stepId: "x" }) as unknown as WorkItem;

  it("tells ticket work from steps", () => {
    expect(isTicketWork({ type: "tickets.sync" })).toBe(true);
    expect(isTicketWork({ type: "ticket.update" })).toBe(true);
    expect(isTicketWork({ type: "ticket.plan" })).toBe(false);
  });

  it("answers a sync with tickets_synced to the intake run, keyed by the attempt", async () => {
    const a = linear.addIssue({ title: "One" });
    await runTicketWork(
      item("tickets.sync", "intake-linear.tickets.sync.7", { provider: "ticketing.linear", query: { assignedToMe: true, states: [], limit: 10 } }),
      opts,
    );
    const cmd = sent.at(-1)!;
    expect(cmd).toMatchObject({ type: "run.signal", runId: "intake-linear", commandId: "tickets-synced:intake-linear.tickets.sync.7" });
    expect(cmd.signal).toMatchObject({ name: "tickets_synced", attemptId: "intake-linear.tickets.sync.7", answer: { ok: true } });
    expect((cmd.signal as any).answer.tickets.map((t: any) => t.id)).toContain(a.id);
  });

  it("a failed sync is answered typed, its text without the key", async () => {
    linear.fail(500, 1, { body: { errors: [{ message: `upstream said: bad keys ${KEY} ${OTHER}` }] } });
    await runTicketWork(
      item("tickets.sync", "intake-linear.tickets.sync.8", { provider: "ticketing.linear", query: { assignedToMe: true, states: [], limit: 10 } }),
      opts,
    );
    const answer = (sent.at(-1)!.signal as any).answer;
    expect(answer).toMatchObject({ ok: false, error: { retryable: true } });
    expect(answer.error.message).toMatch(/bad keys/);
    expect(JSON.stringify(answer)).not.toContain(KEY);
    expect(JSON.stringify(answer)).not.toContain(OTHER);
  });

  it("an update is tried again through a flaky tracker and written once", async () => {
    const a = linear.addIssue({ title: "Two" });
    const ticket = { provider: "ticketing.linear", id: a.id, key: a.identifier };
    const writes = [
      { kind: "state", key: "r.state.Implementing.1", state: "In Progress" },
      { kind: "comment", key: "r.stage.Implementing.1", body: "**Implementing** (In Progress)" },
    ];
    linear.fail(503, 2);
    await runTicketWork(item("ticket.update", "r.ticket.update.Implementing.1", { ticket, writes }), opts);
    expect(linear.stateOf(a.id)).toBe("In Progress");
    expect(linear.issues.get(a.id)!.comments).toHaveLength(1);
    // Redelivered: nothing written twice.
    await runTicketWork(item("ticket.update", "r.ticket.update.Implementing.1", { ticket, writes }), opts);
    expect(linear.issues.get(a.id)!.comments).toHaveLength(1);
    expect(lines.join("")).not.toContain(KEY);
    expect(lines.join("")).not.toContain(OTHER);
  });
});
