import { describe, expect, it } from "vitest";
import { checkGitHubAppTarget } from "../src/surfaces/webhooks/index.js";

/** GITHUB_APP_ID (seed 001): which GitHub deliveries are for this app. */
describe("checkGitHubAppTarget", () => {
  const app = (id: string) => ({ "X-GitHub-Hook-Installation-Target-Type": "integration", "X-GitHub-Hook-Installation-Target-ID": id });

  it("without GITHUB_APP_ID, every delivery passes", () => {
    expect(checkGitHubAppTarget(undefined, app("999"))).toEqual({ ok: true });
    expect(checkGitHubAppTarget(undefined, {})).toEqual({ ok: true });
  });

  it("an app's delivery must be for this app", () => {
    expect(checkGitHubAppTarget("123456", app("123456"))).toEqual({ ok: true });
    expect(
      checkGitHubAppTarget("123456", { "x-github-hook-installation-target-type": "Integration", "x-github-hook-installation-target-id": " 123456 " }),
    ).toEqual({ ok: true });
    expect(checkGitHubAppTarget("123456", app("654321"))).toEqual({ ok: false, reason: "other_app" });
    expect(checkGitHubAppTarget("123456", app("1234567"))).toEqual({ ok: false, reason: "other_app" });
    // An app's delivery that does not say which app, or says two.
    expect(checkGitHubAppTarget("123456", { "x-github-hook-installation-target-type": "integration" })).toEqual({ ok: false, reason: "other_app" });
    expect(
      checkGitHubAppTarget("123456", { "x-github-hook-installation-target-type": "integration", "x-github-hook-installation-target-id": ["123456", "7"] }),
    ).toEqual({ ok: false, reason: "other_app" });
  });

  it("repository and organization webhooks, and deliveries that do not say, are unaffected", () => {
    for (const type of ["repository", "organization", "business", "marketplace"]) {
      expect(checkGitHubAppTarget("123456", { "x-github-hook-installation-target-type": type, "x-github-hook-installation-target-id": "42" })).toEqual({
        ok: true,
      });
    }
    expect(checkGitHubAppTarget("123456", {})).toEqual({ ok: true });
  });
});
