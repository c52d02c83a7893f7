import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FakeLinear, FakeShortcut } from "@orch/testing";
import { TicketingService } from "../src/ticketing/index.js";

/** The hub's ticket work against local trackers: a sync's answer, an update's keyed writes under redelivery, failures typed. */

describe("ticket work in the agent hub", () => {
  const linear = new FakeLinear("lin_key");
  const sc = new FakeShortcut("sc_key");
  let svc: TicketingService;
  beforeAll(async () => {
    await Promise.all([linear.start(), sc.start()]);
    svc = new TicketingService({
      settings: { "ticketing.linear": { apiUrl: linear.apiUrl, timeoutMs: 5_000 }, "ticketing.shortcut": { apiUrl: sc.apiUrl, timeoutMs: 5_000 } },
      env: { LINEAR_API_KEY: "lin_key", SHORTCUT_API_TOKEN: "sc_key" },
    });
  });
  afterAll(() => Promise.all([linear.stop(), sc.stop()]));

  it("answers a sync with the matching tickets, at most the limit", async () => {
    linear.addIssue({ title: "One" });
    linear.addIssue({ title: "Two", labels: ["ui"] });
    linear.addIssue({ title: "Someone else's", assignedToMe: false });
    const a = await svc.sync({ provider: "ticketing.linear", query: { assignedToMe: true, states: [], limit: 10 } });
    expect(a.ok && a.tickets.map((t) => t.title)).toEqual(["Two", "One"]);
    const one = await svc.sync({ provider: "ticketing.linear", query: { limit: 1 } });
    expect(one.ok && one.tickets).toHaveLength(1);
  });

  it("a failing tracker is a typed, retryable answer; a missing key a refusal; a bad payload too", async () => {
    linear.fail(500, 1);
    const a = await svc.sync({ provider: "ticketing.linear", query: {} });
    expect(a).toMatchObject({ ok: false, error: { code: "TRACKER_ERROR", retryable: true } });
    const nokey = new TicketingService({ settings: {}, env: {} });
    expect(await nokey.sync({ provider: "ticketing.shortcut", query: {} })).toMatchObject({
      ok: false,
      error: { code: "TRACKER_TOKEN_MISSING", retryable: false },
    });
    expect(await svc.sync({ provider: "ticketing.jira", query: {} })).toMatchObject({ ok: false, error: { code: "INVALID_PAYLOAD", retryable: false } });
  });

  it("applies an update's writes once each: a redelivered update writes nothing again", async () => {
    const s = sc.addStory({ name: "Write back" });
    const payload = {
      ticket: { provider: "ticketing.shortcut", id: String(s.id), key: `sc-${s.id}` },
      writes: [
        { kind: "state", key: "tk.state.PRDrafted.1", state: "In Review" },
        { kind: "comment", key: "tk.stage.PRDrafted.1", body: "**PRDrafted** (In Review)" },
        { kind: "link", key: "tk.pr.7", url: "https://github.com/acme/w/pull/7", title: "Pull request #7" },
      ],
    };
    const first = await svc.update(payload);
    expect(first).toEqual({ ok: true, written: payload.writes.map((w) => ({ key: w.key, changed: true })) });
    const again = await svc.update(payload);
    expect(again).toEqual({ ok: true, written: payload.writes.map((w) => ({ key: w.key, changed: false })) });
    const story = sc.stories.get(s.id)!;
    expect(sc.stateOf(s.id)).toBe("In Review");
    expect(story.comments).toHaveLength(1);
    expect(story.external_links).toEqual(["https://github.com/acme/w/pull/7"]);
  });

  it("an update that fails part way says which writes landed; asked again, it finishes without repeating them", async () => {
    const i = linear.addIssue({ title: "Partial" });
    const payload = {
      ticket: { provider: "ticketing.linear", id: i.id, key: i.identifier },
      writes: [
        { kind: "state", key: "r.state.Implementing.1", state: "In Progress" },
        { kind: "comment", key: "r.stage.Implementing.1", body: "Implementing" },
      ],
    };
    // The state move takes two requests (read the team's states, update); the comment's first fails.
    linear.fail(503, 1, { after: 2 });
    const r = await svc.update(payload);
    expect(r).toMatchObject({ ok: false, written: [{ key: "r.state.Implementing.1", changed: true }], error: { retryable: true } });
    expect(linear.stateOf(i.id)).toBe("In Progress");
    expect(linear.issues.get(i.id)!.comments).toHaveLength(0);
    const done = await svc.update(payload);
    expect(done).toEqual({
      ok: true,
      written: [
        { key: "r.state.Implementing.1", changed: false },
        { key: "r.stage.Implementing.1", changed: true },
      ],
    });
    const redo = await svc.update(payload);
    expect(redo.written.every((w) => !w.changed)).toBe(true);
    expect(linear.issues.get(i.id)!.comments).toHaveLength(1);
  });
});
