import { render } from "ink";
import type { Client } from "../client.js";
import { usage } from "../errors.js";
import { uiConfig } from "../settings.js";
import { App } from "./app.js";
import { THEMES } from "./theme.js";

/** `orch tui`: the dashboard on the terminal's alternate screen, until `q` or Ctrl-C. */
export async function runTui(api: Client): Promise<number> {
  const cfg = uiConfig();
  const out = process.stdout;
  if (!process.stdin.isTTY || !out.isTTY) throw usage("orch tui needs a terminal (its input and output a TTY); the other commands work without one");
  // The terminal went away (its window closed, the tmux session killed): nothing is left to draw on.
  out.on("error", () => process.exit(0));
  process.on("SIGHUP", () => process.exit(0));
  out.write("\x1b[?1049h\x1b[H");
  const app = render(<App api={api} cfg={cfg} theme={THEMES[cfg.ORCH_UI_THEME]} />, { exitOnCtrlC: true, patchConsole: true });
  try {
    await app.waitUntilExit();
  } finally {
    out.write("\x1b[?1049l");
  }
  return 0;
}
