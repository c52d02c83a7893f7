import { describe, expect, it } from "vitest";
import { createLogger } from "@orch/logging";
import type { WorkItem } from "@orch/contracts";
import { Writable } from "node:stream";
import { STEP_TYPES } from "../src/adapters/index.js";
import { execute } from "../src/worker.js";

const lines: string[] = [];
const log = createLogger({ service: "test" }, new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }));

const item = (type: string, payload?: Record<string, unknown>, attempt = 0, mode: "mock" | "live" = "mock", definition = "job"): WorkItem => ({
  runId: "r",
  projectId: "_default",
  definition: { id: definition, version: 1 },
  stepId: "s0",
  attemptId: `r.s0.${attempt + 1}`,
  attempt: attempt + 1,
  kind: "execute",
  index: 0,
  role: "implementer",
  type,
  phase: "s0",
  inputs: {},
  iteration: 0,
  rework: 0,
  ...(payload ? { payload } : {}),
  mode,
  goal: "the goal",
  dispatchedAt: 0,
});

const run = (i: WorkItem, signal = new AbortController().signal) => execute(i, log, signal);

describe("seed 000 adapters", () => {
  it("has the four log-only workers", () => {
    expect(STEP_TYPES.sort()).toEqual(["ci", "dev.log", "docs", "repoops"]);
  });

  it.each(STEP_TYPES)("%s returns { ok, notes } and logs what it would do", async (type) => {
    const r = await run(item(type));
    expect(r.ok).toBe(true);
    expect(r.notes).toHaveLength(1);
    expect(r.notes[0]).toMatch(new RegExp(`^${type.replace(".", "\\.")}: `));
    expect(lines.some((l) => l.includes(`"msg":"${type}: `))).toBe(true);
  });

  it("dev.log logs the payload message, else the goal", async () => {
    expect((await run(item("dev.log", { message: "hi" }))).notes).toEqual(["dev.log: hi"]);
    expect((await run(item("dev.log"))).notes).toEqual(["dev.log: the goal"]);
  });

  it("fails an unknown step type, for good, naming the known ones", async () => {
    const r = await run(item("deploy.prod"));
    expect(r.ok).toBe(false);
    expect(r.error).toMatchObject({ code: "UNKNOWN_STEP_TYPE", retryable: false });
    expect(r.error?.message).toContain("unknown step type 'deploy.prod'");
    expect(r.error?.message).toContain("dev.log");
  });

  it("in mock mode fails the first failTimes attempts, then succeeds", async () => {
    const p = { mock: { failTimes: 2 } };
    expect((await run(item("ci", p, 0))).error).toMatchObject({ code: "MOCK_FAILURE", retryable: true, message: "mock failure 1 of 2" });
    expect((await run(item("ci", p, 1))).ok).toBe(false);
    expect((await run(item("ci", p, 2))).ok).toBe(true);
  });

  it("honours error and retryable in the mock directive", async () => {
    const r = await run(item("ci", { mock: { failTimes: 1, error: "disk full", retryable: false } }));
    expect(r.error).toEqual({ code: "MOCK_FAILURE", message: "disk full", retryable: false });
  });

  it("takes delayMs, and gives up when aborted", async () => {
    const t0 = Date.now();
    expect((await run(item("docs", { mock: { delayMs: 120 } }))).ok).toBe(true);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(110);
    const ac = new AbortController();
    const p = run(item("docs", { mock: { delayMs: 60_000 } }), ac.signal);
    ac.abort();
    await expect(p).rejects.toThrow(/aborted/);
  });

  it("refuses an invalid mock directive", async () => {
    const r = await run(item("ci", { mock: { failTimes: -1, nope: true } }));
    expect(r.error).toMatchObject({ code: "ADAPTER_ERROR", retryable: false });
    expect(r.error?.message).toContain("invalid payload.mock");
  });

  it("ignores mock directives in live mode", async () => {
    expect((await run(item("ci", { mock: { failTimes: 5 } }, 0, "live"))).ok).toBe(true);
  });
});
