import type { UiTheme } from "@orch/config";

/**
 * The terminal UI's themes (`[ui] theme`, `ORCH_UI_THEME`): `nord` (seed 003's default, the Nord
 * palette), `dark` (the terminal's own bright colours) and `light` (dark colours for a light
 * background). Colours are what Ink (chalk) takes: hex or a named ANSI colour.
 */
export interface Theme {
  name: UiTheme;
  title: string;
  border: string;
  focus: string;
  text: string;
  dim: string;
  ok: string;
  warn: string;
  bad: string;
  active: string;
  selectedBg: string;
  selectedFg: string;
}

export const THEMES: Readonly<Record<UiTheme, Theme>> = Object.freeze({
  nord: {
    name: "nord",
    title: "#88C0D0",
    border: "#4C566A",
    focus: "#81A1C1",
    text: "#D8DEE9",
    dim: "#616E88",
    ok: "#A3BE8C",
    warn: "#EBCB8B",
    bad: "#BF616A",
    active: "#B48EAD",
    selectedBg: "#434C5E",
    selectedFg: "#ECEFF4",
  },
  dark: {
    name: "dark",
    title: "cyanBright",
    border: "gray",
    focus: "blueBright",
    text: "white",
    dim: "gray",
    ok: "greenBright",
    warn: "yellowBright",
    bad: "redBright",
    active: "magentaBright",
    selectedBg: "blue",
    selectedFg: "whiteBright",
  },
  light: {
    name: "light",
    title: "#005F87",
    border: "#8A8A8A",
    focus: "#0000AF",
    text: "#1C1C1C",
    dim: "#6C6C6C",
    ok: "#005F00",
    warn: "#875F00",
    bad: "#AF0000",
    active: "#5F00AF",
    selectedBg: "#D0D0D0",
    selectedFg: "#000000",
  },
});

/** A run's or step's status in the theme's colours. */
export function statusColor(t: Theme, status: string): string {
  if (["completed", "succeeded", "approved"].includes(status)) return t.ok;
  if (["failed", "cancelled", "timed_out", "blocked", "rejected"].includes(status)) return t.bad;
  if (["waiting_approval", "waiting", "paused", "awaiting_approval", "needs_qa", "retry_wait", "retrying"].includes(status)) return t.warn;
  if (["running", "qa", "planning", "starting"].includes(status)) return t.active;
  return t.dim;
}
