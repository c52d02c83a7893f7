import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, GatewayConfig, UiConfig, loadConfig } from "../src/index.js";

/** Seed 003's `[ui]` (the terminal UI's settings) and its ticketing/vcs provider keys. */

const problems = (f: () => unknown): string[] => {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error("expected a ConfigError");
};

describe("[ui]", () => {
  it("has seed 003's defaults", () => {
    expect(loadConfig(UiConfig, { ORCH_CONFIG: "none" })).toEqual({
      ORCH_UI_THEME: "nord",
      ORCH_UI_TICKET_PICKER_PRIORITY_STATES: ["In Progress", "Final Approval", "Todo", "Backlog"],
      ORCH_UI_TRANSCRIPT_LINE_LIMIT: 100,
      ORCH_UI_BACKGROUND_SESSION_REFRESH_SECS: 15,
      ORCH_UI_SESSION_INFO_REFRESH_SECS: 15,
    });
  });

  it("reads the file's [ui] table; the environment wins", () => {
    const d = mkdtempSync(join(tmpdir(), "orch-ui-"));
    const path = join(d, "config.toml");
    writeFileSync(path, '[ui]\ntheme = "light"\nticket_picker_priority_states = ["Todo", "In Progress"]\ntranscript_line_limit = 7\n');
    expect(loadConfig(UiConfig, { ORCH_CONFIG: path, ORCH_UI_SESSION_INFO_REFRESH_SECS: "3" })).toMatchObject({
      ORCH_UI_THEME: "light",
      ORCH_UI_TICKET_PICKER_PRIORITY_STATES: ["Todo", "In Progress"],
      ORCH_UI_TRANSCRIPT_LINE_LIMIT: 7,
      ORCH_UI_SESSION_INFO_REFRESH_SECS: 3,
    });
    expect(loadConfig(UiConfig, { ORCH_CONFIG: path, ORCH_UI_THEME: "dark" }).ORCH_UI_THEME).toBe("dark");
  });

  it("refuses an unknown theme with the list, and bad numbers", () => {
    expect(problems(() => loadConfig(UiConfig, { ORCH_CONFIG: "none", ORCH_UI_THEME: "solarized", ORCH_UI_TRANSCRIPT_LINE_LIMIT: "0" }))).toEqual([
      "ORCH_UI_THEME: must be one of nord, dark, light",
      expect.stringMatching(/^ORCH_UI_TRANSCRIPT_LINE_LIMIT: /),
    ]);
  });
});

describe("ticketing_provider and vcs_provider", () => {
  it("take seed 003's spelling and ours, default linear and git_cli", () => {
    expect(loadConfig(GatewayConfig, { ORCH_CONFIG: "none" })).toMatchObject({ ORCH_TICKETING_PROVIDER: "linear", ORCH_VCS_PROVIDER: "git_cli" });
    expect(loadConfig(GatewayConfig, { ORCH_CONFIG: "none", ORCH_TICKETING_PROVIDER: "ticketing.shortcut", ORCH_VCS_PROVIDER: "vcs.git_cli" })).toMatchObject({
      ORCH_TICKETING_PROVIDER: "shortcut",
      ORCH_VCS_PROVIDER: "git_cli",
    });
  });

  it("refuse anything else, naming the known ones", () => {
    expect(problems(() => loadConfig(GatewayConfig, { ORCH_CONFIG: "none", ORCH_TICKETING_PROVIDER: "jira", ORCH_VCS_PROVIDER: "libgit2" }))).toEqual([
      "ORCH_TICKETING_PROVIDER: must be one of ticketing.linear, ticketing.shortcut, ticketing.github_issues, ticketing.gitlab_issues",
      "ORCH_VCS_PROVIDER: must be one of vcs.git_cli",
    ]);
  });
});
