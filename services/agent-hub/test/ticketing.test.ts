import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FakeLinear, FakeShortcut } from "@orch/testing";
import {
  createTicketingProvider,
  TrackerApiError,
  TrackerTokenMissingError,
  TrackerUnknownStateError,
  type TicketingProvider,
} from "../src/ticketing/index.js";

/**
 * The trackers' clients against local servers that speak Linear's GraphQL (validated against the
 * part of its published schema in use) and Shortcut's REST v3: listing with the sync's filters,
 * moving, commenting and attaching, each write once however often it is asked, and failures typed.
 */

describe("ticketing.linear (the official SDK's client against a local Linear)", () => {
  const linear = new FakeLinear("lin_api_test");
  let t: TicketingProvider;
  beforeAll(async () => {
    await linear.start();
    t = createTicketingProvider("ticketing.linear", { apiUrl: linear.apiUrl, timeoutMs: 5_000 }, { LINEAR_API_KEY: "lin_api_test" });
  });
  afterAll(() => linear.stop());

  it("lists the tickets assigned to the key's user, in the sync's states, newest first, at most the limit", async () => {
    const a = linear.addIssue({ title: "Add OAuth", description: "Users sign in with GitHub", labels: ["auth", "backend"] });
    linear.addIssue({ title: "Not mine", assignedToMe: false });
    const c = linear.addIssue({ title: "In progress already", state: "In Progress" });
    linear.addIssue({ title: "Backlog item", state: "Backlog" });
    const all = await t.list({ assignedToMe: true, states: [], limit: 10 });
    expect(all.map((x) => x.title)).toEqual(["Backlog item", "In progress already", "Add OAuth"]);
    const first = all.find((x) => x.id === a.id)!;
    expect(first).toMatchObject({
      provider: "ticketing.linear",
      key: a.identifier,
      title: "Add OAuth",
      description: "Users sign in with GitHub",
      labels: ["auth", "backend"],
      state: "Todo",
      stateType: "unstarted",
      url: `https://linear.app/acme/issue/${a.identifier}`,
    });
    const todo = await t.list({ assignedToMe: true, states: ["todo", "In Progress"], limit: 10 });
    expect(todo.map((x) => x.id).sort()).toEqual([a.id, c.id].sort());
    expect(await t.list({ assignedToMe: true, limit: 1 })).toHaveLength(1);
    expect((await t.list({ assignedToMe: false, limit: 50 })).length).toBe(4);
    // The key is sent as Linear's personal keys are, without "Bearer".
    expect(linear.requests.at(-1)!.headers.authorization).toBe("lin_api_test");
  });

  it("moves a ticket to a state of its team once; an unknown state is refused, naming the team's", async () => {
    const i = linear.addIssue({ title: "Move me" });
    const ref = { provider: "ticketing.linear" as const, id: i.id, key: i.identifier };
    expect(await t.moveTo(ref, "In Progress")).toEqual({ changed: true });
    expect(linear.stateOf(i.id)).toBe("In Progress");
    expect(await t.moveTo(ref, "in progress")).toEqual({ changed: false });
    const err = await t.moveTo(ref, "Shipping").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TrackerUnknownStateError);
    expect((err as Error).message).toContain("In Review");
  });

  it("comments once per key and attaches a link once per URL, however often asked", async () => {
    const i = linear.addIssue({ title: "Write back" });
    const ref = { provider: "ticketing.linear" as const, id: i.id, key: i.identifier };
    expect(await t.comment(ref, "run-1.stage.Implementing", "Implementing: the plan is committed")).toEqual({ changed: true });
    expect(await t.comment(ref, "run-1.stage.Implementing", "Implementing: the plan is committed")).toEqual({ changed: false });
    expect(await t.comment(ref, "run-1.stage.PRDrafted", "A draft PR is open")).toEqual({ changed: true });
    expect(linear.issues.get(i.id)!.comments).toHaveLength(2);
    expect(await t.attachLink(ref, "https://github.com/acme/w/pull/7", "PR #7")).toEqual({ changed: true });
    expect(await t.attachLink(ref, "https://github.com/acme/w/pull/7", "PR #7")).toEqual({ changed: false });
    expect(linear.issues.get(i.id)!.attachments).toHaveLength(1);
  });

  it("a comment whose first create landed but whose answer was lost is not written again", async () => {
    const i = linear.addIssue({ title: "Lost answer" });
    const ref = { provider: "ticketing.linear" as const, id: i.id, key: i.identifier };
    // The same id again is refused by Linear; the client then finds its comment and answers unchanged.
    const { linearCommentId } = await import("../src/ticketing/linear.js");
    i.comments.push({ id: linearCommentId(i.id, "k"), body: "earlier", createdAt: new Date().toISOString() });
    expect(await t.comment(ref, "k", "again")).toEqual({ changed: false });
  });

  it("types failures: 5xx and 429 retryable, a bad key not; a missing key before anything is sent", async () => {
    linear.fail(503, 1);
    const e1 = await t.list({ limit: 5 }).catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(TrackerApiError);
    expect((e1 as TrackerApiError).retryable).toBe(true);
    linear.fail(429, 1);
    expect(((await t.list({ limit: 5 }).catch((e: unknown) => e)) as TrackerApiError).retryable).toBe(true);
    const bad = createTicketingProvider("ticketing.linear", { apiUrl: linear.apiUrl }, { LINEAR_API_KEY: "wrong" });
    const e2 = await bad.list({ limit: 5 }).catch((e: unknown) => e);
    expect(e2).toBeInstanceOf(TrackerApiError);
    expect((e2 as TrackerApiError).retryable).toBe(false);
    expect((e2 as Error).message).not.toContain("wrong");
    expect(() => createTicketingProvider("ticketing.linear", {}, {})).toThrow(TrackerTokenMissingError);
    expect(() => createTicketingProvider("ticketing.linear", {}, {})).toThrow(/LINEAR_API_KEY/);
  });

  it("the fake refuses a field Linear's schema does not have (what keeps the client's queries honest)", async () => {
    const res = await fetch(linear.apiUrl, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "lin_api_test" },
      body: JSON.stringify({ query: "{ issues(first: 1) { nodes { id notAField } } }" }),
    });
    expect(res.status).toBe(400);
    expect(JSON.stringify(await res.json())).toContain("notAField");
  });
});

describe("ticketing.shortcut (REST v3 against a local Shortcut)", () => {
  const sc = new FakeShortcut("sc-token");
  let t: TicketingProvider;
  beforeAll(async () => {
    await sc.start();
    t = createTicketingProvider("ticketing.shortcut", { apiUrl: sc.apiUrl, timeoutMs: 5_000 }, { SHORTCUT_API_TOKEN: "sc-token" });
  });
  afterAll(() => sc.stop());

  it("lists the stories owned by the token's member, not archived, in the sync's states, across pages, at most the limit", async () => {
    for (let k = 0; k < 30; k++) sc.addStory({ name: `Story ${k}`, description: `Do ${k}` });
    sc.addStory({ name: "Not mine", assignedToMe: false });
    sc.addStory({ name: "Archived", archived: true });
    const ip = sc.addStory({ name: "Started", state: "In Progress", labels: ["api"] });
    const all = await t.list({ assignedToMe: true, limit: 100 });
    expect(all).toHaveLength(31);
    expect(all[0]).toMatchObject({
      provider: "ticketing.shortcut",
      id: String(ip.id),
      key: `sc-${ip.id}`,
      title: "Started",
      labels: ["api"],
      state: "In Progress",
      stateType: "started",
    });
    expect(all.find((x) => x.title === "Story 3")!.description).toBe("Do 3");
    expect(await t.list({ assignedToMe: true, limit: 27 })).toHaveLength(27);
    expect((await t.list({ assignedToMe: true, states: ["in progress"], limit: 10 })).map((x) => x.id)).toEqual([String(ip.id)]);
    expect((await t.list({ assignedToMe: false, limit: 100 })).some((x) => x.title === "Not mine")).toBe(true);
    expect(sc.requests.every((r) => r.headers["shortcut-token"] === "sc-token")).toBe(true);
  });

  it("moves, comments and links once each", async () => {
    const s = sc.addStory({ name: "Write back" });
    const ref = { provider: "ticketing.shortcut" as const, id: String(s.id), key: `sc-${s.id}` };
    expect(await t.moveTo(ref, "In Review")).toEqual({ changed: true });
    expect(sc.stateOf(s.id)).toBe("In Review");
    expect(await t.moveTo(ref, "In Review")).toEqual({ changed: false });
    await expect(t.moveTo(ref, "Nowhere")).rejects.toBeInstanceOf(TrackerUnknownStateError);
    expect(await t.comment(ref, "r.stage.InReview", "In review")).toEqual({ changed: true });
    expect(await t.comment(ref, "r.stage.InReview", "In review")).toEqual({ changed: false });
    expect(sc.stories.get(s.id)!.comments).toHaveLength(1);
    expect(await t.attachLink(ref, "https://github.com/acme/w/pull/9", "PR #9")).toEqual({ changed: true });
    expect(await t.attachLink(ref, "https://github.com/acme/w/pull/9", "PR #9")).toEqual({ changed: false });
    expect(sc.stories.get(s.id)!.external_links).toEqual(["https://github.com/acme/w/pull/9"]);
  });

  it("a story with a deleted comment (listed without its text, as Shortcut's schema allows) is commented on once", async () => {
    const s = sc.addStory({ name: "Deleted comment" });
    const ref = { provider: "ticketing.shortcut" as const, id: String(s.id), key: `sc-${s.id}` };
    expect(await t.comment(ref, "r.stage.Implementing", "Implementing")).toEqual({ changed: true });
    sc.deleteComment(s.id, sc.stories.get(s.id)!.comments[0]!.id);
    expect(await t.comment(ref, "r.stage.PRDrafted", "Drafted")).toEqual({ changed: true });
    expect(await t.comment(ref, "r.stage.PRDrafted", "Drafted")).toEqual({ changed: false });
    // Search pages follow Shortcut's opaque `next` token, never a page size above its 25.
    const searches = sc.requests.map((r) => new URL(r.path, "http://x")).filter((u) => u.pathname === "/api/v3/search/stories");
    expect(searches.some((u) => u.searchParams.has("next"))).toBe(true);
    expect(searches.every((u) => Number(u.searchParams.get("page_size")) <= 25)).toBe(true);
  });

  it("types failures: 5xx retryable, 401 not, never echoing the token", async () => {
    sc.fail(502, 1);
    const e = await t.list({ limit: 5 }).catch((x: unknown) => x);
    expect((e as TrackerApiError).retryable).toBe(true);
    const bad = createTicketingProvider("ticketing.shortcut", { apiUrl: sc.apiUrl }, { SHORTCUT_API_TOKEN: "nope" });
    const e2 = (await bad.list({ limit: 5 }).catch((x: unknown) => x)) as TrackerApiError;
    expect(e2.retryable).toBe(false);
    expect(e2.status).toBe(401);
    expect(() => createTicketingProvider("ticketing.shortcut", {}, {})).toThrow(/SHORTCUT_API_TOKEN/);
  });
});
