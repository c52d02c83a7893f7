import { describe, expect, it } from "vitest";
import { ProjectForge, forgeFromOrigin } from "../src/forges.js";

describe("forgeFromOrigin", () => {
  it.each([
    ["https://github.com/acme/widgets.git", { provider: "github", repository: "acme/widgets" }],
    ["https://github.com/acme/widgets", { provider: "github", repository: "acme/widgets" }],
    ["git@github.com:acme/widgets.git", { provider: "github", repository: "acme/widgets" }],
    ["ssh://git@github.com/acme/widgets.git", { provider: "github", repository: "acme/widgets" }],
    ["https://gitlab.com/group/sub/widgets.git", { provider: "gitlab", repository: "group/sub/widgets" }],
    ["git@gitlab.com:group/widgets.git", { provider: "gitlab", repository: "group/widgets" }],
  ])("%s", (origin, want) => {
    expect(forgeFromOrigin(origin)).toEqual(want);
  });

  it("knows configured enterprise hosts, with their ports", () => {
    expect(forgeFromOrigin("https://ghe.example.com/acme/widgets.git", { "GHE.example.com": "github" })).toEqual({
      provider: "github",
      repository: "acme/widgets",
    });
    expect(forgeFromOrigin("http://127.0.0.1:8929/g/w.git", { "127.0.0.1:8929": "gitlab" })).toEqual({ provider: "gitlab", repository: "g/w" });
  });

  it.each([
    "/srv/repos/widgets.git",
    "file:///srv/widgets.git",
    "https://example.org/acme/widgets.git",
    "https://github.com/acme",
    "https://github.com/a/b/c",
    "not a url",
  ])("no forge for %s", (origin) => {
    expect(forgeFromOrigin(origin)).toBeUndefined();
  });

  it("validates a project's forge", () => {
    expect(ProjectForge.safeParse({ provider: "gitlab", repository: "g/s/w", apiUrl: "https://gl.example.com/api/v4" }).success).toBe(true);
    expect(ProjectForge.safeParse({ provider: "bitbucket", repository: "a/b" }).success).toBe(false);
    expect(ProjectForge.safeParse({ provider: "github", repository: "no-slash" }).success).toBe(false);
    expect(ProjectForge.safeParse({ provider: "github", repository: "a/b", apiUrl: "ftp://x" }).success).toBe(false);
  });
});
