import { describe, expect, it } from "vitest";
import { StepErrorCode } from "@orch/contracts";
import {
  ForgeTokenMissingError,
  checksFromRest,
  cleanLogLines,
  forgeRedactor,
  ghHttpStatus,
  gitHostsFor,
  githubGraphqlUrl,
  isForgeStep,
  providerFor,
  pullFromGh,
  secureEnough,
  tokenFor,
  trimLog,
} from "../src/forge/index.js";

/** The pure parts of forge I/O: log tails, provider choice, tokens, redaction, output parsing. */

describe("trimLog", () => {
  it("keeps a short log whole, cleaned of colours, GitLab sections, GitHub timestamps and overwritten progress", () => {
    const raw = "2026-11-30T10:00:00.1234567Z \x1b[31mERROR\x1b[0m boom\nsection_start:1700000000:build_script\r\x1b[0Kbuilding\n10%\r50%\r100%\n";
    expect(trimLog(raw)).toEqual({ text: "ERROR boom\nbuilding\n100%", totalLines: 3, keptLines: 3, truncated: false });
    expect(cleanLogLines("a\r\nb")).toEqual(["a", "b"]);
  });

  it("bounds a long log: its tail, plus the lines around earlier errors, with what was omitted said", () => {
    const lines = Array.from({ length: 20_000 }, (_, i) => `line ${i} ok`);
    lines[5_000] = "test/a.test.ts: AssertionError: expected 1 to be 2";
    lines[12_000] = "npm ERR! code ELIFECYCLE";
    const t = trimLog(lines.join("\n"), { maxBytes: 8_192, context: 2 });
    expect(Buffer.byteLength(t.text)).toBeLessThanOrEqual(8_192);
    expect(t.truncated).toBe(true);
    expect(t.text).toContain("line 19999 ok");
    expect(t.text).toContain("AssertionError");
    expect(t.text).toContain("line 4998 ok");
    expect(t.text).toContain("npm ERR!");
    expect(t.text).toMatch(/… \(\d+ lines omitted\) …/);
    // In log order.
    expect(t.text.indexOf("AssertionError")).toBeLessThan(t.text.indexOf("npm ERR!"));
  });

  it("cuts a single enormous line and never exceeds the budget", () => {
    const t = trimLog(`${"x".repeat(100_000)}\nerror: end`, { maxBytes: 1_024 });
    expect(Buffer.byteLength(t.text)).toBeLessThanOrEqual(1_024);
    expect(t.text).toContain("error: end");
  });
});

describe("providers and tokens", () => {
  it("uses the configured provider for its forge, and the forge's REST provider otherwise", () => {
    expect(providerFor({ provider: "github" }, "vcs_repos.github_gh_cli")).toBe("vcs_repos.github_gh_cli");
    expect(providerFor({ provider: "gitlab" }, "vcs_repos.github_gh_cli")).toBe("vcs_repos.gitlab_rest");
    expect(providerFor({ provider: "github" }, "vcs_repos.gitlab_rest")).toBe("vcs_repos.github_rest");
  });

  it("reads tokens from the environment in order (GITHUB_TOKEN, then GH_TOKEN); none is a non-retryable error naming them", () => {
    expect(tokenFor("github", { GH_TOKEN: "gh-second", GITHUB_TOKEN: "gh-first" })).toEqual({ variable: "GITHUB_TOKEN", value: "gh-first" });
    expect(tokenFor("github", { GH_TOKEN: "gh-second" }).variable).toBe("GH_TOKEN");
    const err = (() => {
      try {
        tokenFor("gitlab", { GITHUB_TOKEN: "x" });
      } catch (e) {
        return e as ForgeTokenMissingError;
      }
    })();
    expect(err).toBeInstanceOf(ForgeTokenMissingError);
    expect(err).toMatchObject({ code: StepErrorCode.ForgeTokenMissing, retryable: false });
    expect(err?.message).toContain("GITLAB_TOKEN");
  });

  it("redacts every forge token from any text or object", () => {
    const redact = forgeRedactor({ GITHUB_TOKEN: "ghp_secretvalue1", GITLAB_TOKEN: "glpat-secretvalue2" });
    expect(redact({ m: "auth ghp_secretvalue1 and glpat-secretvalue2", l: ["ghp_secretvalue1"] })).toEqual({
      m: "auth [redacted] and [redacted]",
      l: ["[redacted]"],
    });
  });

  it("sends a token over git's HTTP only to the forge's own host, over https or to this machine", () => {
    expect(gitHostsFor("https://api.github.com")).toEqual(["api.github.com", "github.com"]);
    expect(gitHostsFor("https://gitlab.example.com/api/v4")).toEqual(["gitlab.example.com"]);
    expect(secureEnough(new URL("https://github.com/a/b.git"))).toBe(true);
    expect(secureEnough(new URL("http://127.0.0.1:8080/a/b.git"))).toBe(true);
    expect(secureEnough(new URL("http://github.com/a/b.git"))).toBe(false);
  });

  it("knows its steps", () => {
    expect(isForgeStep({ type: "pr.open" })).toBe(true);
    expect(isForgeStep({ type: "pr.merge" })).toBe(true);
    expect(isForgeStep({ type: "pr.ready" })).toBe(true);
    expect(isForgeStep({ type: "ci" })).toBe(false);
  });

  it("finds GitHub's GraphQL endpoint from the REST base (GitHub Enterprise: /api/v3 → /api/graphql)", () => {
    expect(githubGraphqlUrl("https://api.github.com")).toBe("https://api.github.com/graphql");
    expect(githubGraphqlUrl("https://api.github.com/")).toBe("https://api.github.com/graphql");
    expect(githubGraphqlUrl("https://ghe.example.com/api/v3")).toBe("https://ghe.example.com/api/graphql");
    expect(githubGraphqlUrl("https://ghe.example.com/api/v3/")).toBe("https://ghe.example.com/api/graphql");
    expect(githubGraphqlUrl("http://127.0.0.1:8123")).toBe("http://127.0.0.1:8123/graphql");
  });
});

describe("output parsing", () => {
  it("reads gh's HTTP statuses from both of its error formats", () => {
    expect(ghHttpStatus("gh: Not Found (HTTP 404)")).toBe(404);
    expect(ghHttpStatus("HTTP 401: Bad credentials (https://api.github.com/graphql)")).toBe(401);
    expect(ghHttpStatus("GraphQL: Could not resolve to a Repository")).toBeUndefined();
  });

  it("maps gh's pull request states", () => {
    const base = { number: 1, url: "u", headRefName: "h", baseRefName: "main" };
    expect(pullFromGh({ ...base, state: "CLOSED" }, { provider: "github", repository: "a/b" })).toMatchObject({
      state: "closed",
      merged: false,
      mergeable: null,
    });
    expect(pullFromGh({ ...base, state: "OPEN", mergeable: "CONFLICTING" }, { provider: "github", repository: "a/b" })).toMatchObject({
      state: "open",
      mergeable: false,
    });
  });

  it("normalizes check conclusions: neutral and skipped pass; cancelled, timed out and action required fail", () => {
    const run = (id: number, name: string, conclusion: string | null, status = "completed") => ({ id, name, status, conclusion });
    expect(
      checksFromRest(
        [run(1, "a", "neutral"), run(2, "b", "timed_out"), run(3, "c", "action_required"), run(4, "d", "skipped"), run(5, "e", null, "queued")],
        [],
      ).map((c) => c.status),
    ).toEqual(["success", "failure", "failure", "success", "pending"]);
  });
});
