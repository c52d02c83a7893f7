import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type NormalizedEvent, normalizeGitHub, normalizeGitLab, verifyGitHubSignature, verifyGitLabToken } from "../src/surfaces/webhooks/index.js";
import { githubExample, gitlabFixture } from "./webhooks-support.js";

/**
 * normalize() is total: whatever the headers and the body, it returns an event and never throws.
 * A fixed list of odd values first, then random JSON (fast-check), then real payloads with one field
 * somewhere replaced by something random.
 */

const GITHUB_EVENTS = ["push", "pull_request", "check_run", "check_suite", "status", "workflow_run", "ping", "issues", "", "__proto__", "constructor"];
const GITLAB_EVENTS = ["Push Hook", "Tag Push Hook", "Merge Request Hook", "Pipeline Hook", "Job Hook", "Note Hook", "", "__proto__", "toString"];
const GITLAB_KINDS = ["push", "tag_push", "merge_request", "pipeline", "build", "note", "__proto__", "hasOwnProperty"];
const KINDS = new Set(["push", "pull_request", "ci", "unknown"]);

function wellFormed(e: NormalizedEvent, provider: "github" | "gitlab"): void {
  expect(e.provider).toBe(provider);
  expect(KINDS.has(e.kind)).toBe(true);
  expect(typeof e.event).toBe("string");
  if (e.deliveryId !== undefined) expect(typeof e.deliveryId).toBe("string");
  for (const k of ["branch", "sha", "runId", "tag"] as const) {
    const v = (e as unknown as Record<string, unknown>)[k];
    if (v !== undefined) expect(typeof v, k).toBe("string");
  }
  if (e.runId !== undefined) expect(e.runId).toMatch(/^[A-Za-z0-9_-]{1,128}$/);
  if (e.kind === "ci") expect(["success", "failure", "pending"]).toContain(e.ci.status);
  if (e.kind === "pull_request") {
    expect(typeof e.pr.number).toBe("number");
    expect(typeof e.pr.merged).toBe("boolean");
  }
  expect(() => JSON.stringify(e)).not.toThrow();
}

function both(body: unknown): void {
  for (const event of GITHUB_EVENTS) wellFormed(normalizeGitHub({ "x-github-event": event }, body), "github");
  for (const event of GITLAB_EVENTS) wellFormed(normalizeGitLab({ "x-gitlab-event": event }, body), "gitlab");
}

const ODD: unknown[] = [
  null,
  undefined,
  0,
  -1,
  Number.NaN,
  Infinity,
  true,
  "",
  "push",
  '{"ref":"refs/heads/main"}',
  [],
  [null],
  [{ ref: "refs/heads/main" }],
  {},
  Object.create(null),
  { ref: null, after: null, head_commit: null },
  { ref: 5, after: [], deleted: "yes" },
  { ref: "refs/heads/" },
  { ref: "refs/heads/orch/run/" },
  { pull_request: null, number: "2" },
  { pull_request: [], number: 2, action: "closed" },
  { pull_request: { head: "main", base: 1, merged: "true" }, number: 2, action: "closed" },
  { pull_request: { number: 1.5 }, action: "opened" },
  { check_run: { status: null, conclusion: 7, check_suite: "x", pull_requests: [null, 1, { head: null }] } },
  { check_run: { status: "completed", conclusion: null } },
  { check_suite: { status: "completed", conclusion: "success", pull_requests: {} } },
  { state: ["success"], branches: "main", sha: 1 },
  { state: "success", branches: [null, { name: null }, { name: 3 }] },
  { workflow_run: "run" },
  { object_kind: 1 },
  { object_kind: null, object_attributes: null },
  { object_kind: "pipeline" },
  { object_kind: "pipeline", object_attributes: [] },
  { object_kind: "pipeline", object_attributes: { status: "success", ref: "refs/merge-requests/1/head" }, merge_request: null },
  { object_kind: "merge_request", object_attributes: { iid: "1", state: "merged" } },
  { object_kind: "merge_request", object_attributes: { iid: 1 } },
  { object_kind: "push", ref: "refs/heads/x", commits: [null, "c", { id: null }] },
  { object_kind: "build", build_status: "failed", build_id: "x", project: null },
  { object_kind: "constructor" },
  { object_kind: "__proto__" },
  JSON.parse('{"__proto__": {"ref": "refs/heads/polluted"}, "object_kind": "push"}'),
  { toString: 1, valueOf: null, hasOwnProperty: "x" },
  { ref: "refs/heads/main", head_commit: { message: `${"orch-run: ".repeat(10_000)}x` } },
  deep(5_000),
];

function deep(n: number): unknown {
  let v: unknown = { ref: "refs/heads/main" };
  for (let i = 0; i < n; i++) v = { pull_request: v, check_run: [v], object_attributes: v };
  return v;
}

describe("normalize never throws", () => {
  it("on odd values", () => {
    for (const body of ODD) both(body);
  });

  it("on objects whose getters throw", () => {
    const trap = new Proxy(
      {},
      {
        get() {
          throw new Error("boom");
        },
        has() {
          throw new Error("boom");
        },
        ownKeys() {
          throw new Error("boom");
        },
        getOwnPropertyDescriptor() {
          throw new Error("boom");
        },
      },
    );
    both(trap);
    both({ ref: "refs/heads/main", head_commit: trap, pull_request: trap, check_run: trap, object_attributes: trap });
    wellFormed(normalizeGitHub(trap, {}), "github");
    wellFormed(normalizeGitLab(trap, { object_kind: "push" }), "gitlab");
  });

  it("on odd headers", () => {
    const body = githubExample("push", 4);
    const headers: Record<string, string | string[] | undefined>[] = [
      {},
      { "x-github-event": undefined },
      { "x-github-event": [] },
      { "x-github-event": ["", "push"] },
      { "X-GITHUB-EVENT": " push ", "x-github-delivery": ["a", "b"] },
    ];
    for (const h of headers) wellFormed(normalizeGitHub(h, body), "github");
    expect(normalizeGitHub({ "x-github-event": ["", "push"] }, body).kind).toBe("push");
  });

  it("on random JSON (fast-check)", () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.constantFrom(...GITHUB_EVENTS), fc.constantFrom(...GITLAB_EVENTS), (body, gh, gl) => {
        wellFormed(normalizeGitHub({ "x-github-event": gh }, body), "github");
        wellFormed(normalizeGitLab({ "x-gitlab-event": gl }, body), "gitlab");
      }),
      { numRuns: 500 },
    );
  });

  it("on random objects shaped like payloads (fast-check)", () => {
    const value = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.string(), fc.constant(null));
    const payload = fc.record(
      {
        object_kind: fc.oneof(fc.constantFrom(...GITLAB_KINDS), value),
        ref: fc.oneof(fc.constantFrom("refs/heads/main", "refs/heads/orch/run/r1", "refs/tags/v1", "main"), value),
        action: fc.oneof(fc.constantFrom("opened", "closed", "completed", "rerequested", "merge"), value),
        number: value,
        state: fc.oneof(fc.constantFrom("success", "failure", "merged"), value),
        pull_request: fc.oneof(fc.record({ number: value, merged: value, head: fc.oneof(fc.record({ ref: value, sha: value }), value), body: value }), value),
        check_run: fc.oneof(fc.record({ status: value, conclusion: value, check_suite: value }), value),
        object_attributes: fc.oneof(fc.record({ iid: value, status: value, ref: value, tag: value, state: value }), value),
        commits: fc.oneof(fc.array(value), value),
        branches: fc.oneof(fc.array(fc.oneof(fc.record({ name: value }), value)), value),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(payload, fc.constantFrom(...GITHUB_EVENTS), fc.constantFrom(...GITLAB_EVENTS), (body, gh, gl) => {
        wellFormed(normalizeGitHub({ "x-github-event": gh }, body), "github");
        wellFormed(normalizeGitLab({ "x-gitlab-event": gl }, body), "gitlab");
      }),
      { numRuns: 1000 },
    );
  });

  it("on real payloads with one field replaced by anything (fast-check)", () => {
    const real: { provider: "github" | "gitlab"; event: string; body: Record<string, unknown> }[] = [
      ...(["push:4", "pull_request:0", "check_run:1", "check_suite:0", "status:2", "workflow_run:1", "ping:0"] as const).map((s) => {
        const [event, i] = s.split(":") as [string, string];
        return { provider: "github" as const, event, body: githubExample(event, Number(i)) };
      }),
      { provider: "gitlab", event: "Push Hook", body: gitlabFixture("push") },
      { provider: "gitlab", event: "Merge Request Hook", body: gitlabFixture("merge_request") },
      { provider: "gitlab", event: "Pipeline Hook", body: gitlabFixture("pipeline") },
      { provider: "gitlab", event: "Job Hook", body: gitlabFixture("job") },
    ];
    const withPaths = real.map((r) => ({ ...r, paths: paths(r.body) }));
    fc.assert(
      fc.property(fc.nat(), fc.nat(), fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constant(undefined)), (which, where, replacement) => {
        const r = withPaths[which % withPaths.length]!;
        const body = structuredClone(r.body);
        set(body, r.paths[where % r.paths.length]!, replacement);
        const e = r.provider === "github" ? normalizeGitHub({ "x-github-event": r.event }, body) : normalizeGitLab({ "x-gitlab-event": r.event }, body);
        wellFormed(e, r.provider);
      }),
      { numRuns: 2000 },
    );
  });
});

describe("verification never throws on odd input either", () => {
  it("odd signatures and tokens are refused, not thrown", async () => {
    const odd = ["sha256=", "sha256=" + "g".repeat(64), "\u0000", "é".repeat(100), "sha256=" + "0".repeat(64), " ", "x".repeat(100_000)];
    for (const s of odd) {
      const v = await verifyGitHubSignature("secret", Buffer.from("{}"), s);
      expect(v.ok).toBe(false);
      expect(verifyGitLabToken("secret", s).ok).toBe(false);
    }
    await fc.assert(
      fc.asyncProperty(fc.string(), fc.uint8Array({ maxLength: 200 }), async (sig, body) => {
        expect((await verifyGitHubSignature("secret", body, sig)).ok).toBe(false);
        expect(verifyGitLabToken("secret", sig).ok).toBe(sig.trim() === "secret");
      }),
      { numRuns: 300 },
    );
  });
});

/** Every path to a value in a JSON tree (objects and arrays), the root excluded. */
function paths(v: unknown, prefix: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  if (Array.isArray(v)) v.forEach((x, i) => (out.push([...prefix, i]), paths(x, [...prefix, i], out)));
  else if (v !== null && typeof v === "object") for (const [k, x] of Object.entries(v)) (out.push([...prefix, k]), paths(x, [...prefix, k], out));
  return out;
}

function set(root: Record<string, unknown>, path: (string | number)[], value: unknown): void {
  let o = root as Record<string | number, unknown>;
  for (const k of path.slice(0, -1)) o = o[k] as Record<string | number, unknown>;
  o[path.at(-1)!] = value;
}
