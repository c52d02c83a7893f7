import { describe, expect, it } from "vitest";
import { derivedForge, projectForge } from "../src/forges.js";
import { withForge } from "../src/writes/projects.js";

/** A project's forge as the core decides it: set, else derived from its git URL (and its CI provider). */

const HOSTS = { "ghe.example.com": "github", "gl.example.com": "gitlab" } as const;

describe("derivedForge", () => {
  it("knows github.com, gitlab.com and the configured hosts", () => {
    expect(derivedForge("git@github.com:acme/app.git", undefined)).toEqual({ provider: "github", repository: "acme/app" });
    expect(derivedForge("https://gitlab.com/group/sub/app", undefined)).toEqual({ provider: "gitlab", repository: "group/sub/app" });
    expect(derivedForge("https://ghe.example.com/acme/app.git", undefined, HOSTS)).toEqual({ provider: "github", repository: "acme/app" });
    expect(derivedForge("https://ghe.example.com/acme/app.git", undefined)).toBeUndefined();
  });

  it("seed 004's ci_provider names the provider on a host it does not know, with the host's API", () => {
    expect(derivedForge("https://git.corp.example/acme/app.git", "github")).toEqual({
      provider: "github",
      repository: "acme/app",
      apiUrl: "https://git.corp.example/api/v3",
    });
    expect(derivedForge("git@git.corp.example:team/app.git", "gitlab")).toEqual({
      provider: "gitlab",
      repository: "team/app",
      apiUrl: "https://git.corp.example/api/v4",
    });
    expect(derivedForge("https://git.corp.example/acme/app.git", "jenkins")).toBeUndefined();
    expect(derivedForge("/srv/repos/app", "github")).toBeUndefined();
  });

  it("a record's forge wins; a record without one (written before forges) is derived at a run's creation", () => {
    expect(projectForge({ forge: { provider: "gitlab", repository: "a/b" }, gitUrl: "https://github.com/x/y" })).toEqual({
      provider: "gitlab",
      repository: "a/b",
    });
    expect(projectForge({ gitUrl: "https://github.com/x/y" })).toEqual({ provider: "github", repository: "x/y" });
  });
});

describe("withForge: a project's fields with its forge decided", () => {
  const set = { provider: "gitlab" as const, repository: "team/app" };

  it("set on the project: kept while the URL changes, until removed with null (then derived again)", () => {
    const created = withForge({ name: "p", gitUrl: "https://github.com/acme/app" }, { forge: set }, undefined);
    expect(created).toMatchObject({ forge: set, forgeSource: "set" });
    const moved = withForge({ ...created, gitUrl: "https://github.com/acme/other" }, { gitUrl: "https://github.com/acme/other" }, created);
    expect(moved).toMatchObject({ forge: set, forgeSource: "set" });
    const cleared = withForge({ ...moved }, { forge: null }, moved);
    expect(cleared).toMatchObject({ forge: { provider: "github", repository: "acme/other" }, forgeSource: "derived" });
  });

  it("derived: follows the URL; none when nothing is known", () => {
    const a = withForge({ name: "p", gitUrl: "https://github.com/acme/app" }, {}, undefined);
    expect(a).toMatchObject({ forge: { provider: "github", repository: "acme/app" }, forgeSource: "derived" });
    const b = withForge({ ...a, gitUrl: "/srv/app" }, { gitUrl: "/srv/app" }, a);
    expect(b.forge).toBeUndefined();
    expect(b.forgeSource).toBeUndefined();
  });
});
