import { z } from "zod";

/**
 * Seed 003's `[ui]` settings, read by the terminal UI (`orch tui`) and nothing else: the services
 * never validate them, and the CLI validates only these (not any service's whole schema).
 *
 *   file key (`[ui]`)                        variable                                  default
 *   theme                                    ORCH_UI_THEME                             nord
 *   ticket_picker_priority_states            ORCH_UI_TICKET_PICKER_PRIORITY_STATES     In Progress,Final Approval,Todo,Backlog
 *   transcript_line_limit                    ORCH_UI_TRANSCRIPT_LINE_LIMIT             100
 *   background_session_refresh_secs          ORCH_UI_BACKGROUND_SESSION_REFRESH_SECS   15
 *   session_info_background_refresh_secs     ORCH_UI_SESSION_INFO_REFRESH_SECS         15
 */

export const UI_THEMES = ["nord", "dark", "light"] as const;
export type UiTheme = (typeof UI_THEMES)[number];

export const DEFAULT_TICKET_PICKER_PRIORITY_STATES = ["In Progress", "Final Approval", "Todo", "Backlog"] as const;

const secs = (def: number) => z.coerce.number().int({ message: "must be a whole number of seconds" }).min(1).max(86_400).default(def);

export const UiConfig = z.object({
  ORCH_UI_THEME: z.enum(UI_THEMES, { message: `must be one of ${UI_THEMES.join(", ")}` }).default("nord"),
  /** Comma-separated (the file's list is joined with commas). */
  ORCH_UI_TICKET_PICKER_PRIORITY_STATES: z
    .string()
    .default(DEFAULT_TICKET_PICKER_PRIORITY_STATES.join(","))
    .transform((s) =>
      s
        .split(",")
        .map((x) => x.trim())
        .filter((x) => x !== ""),
    ),
  ORCH_UI_TRANSCRIPT_LINE_LIMIT: z.coerce.number().int({ message: "must be a whole number" }).min(1).max(100_000).default(100),
  ORCH_UI_BACKGROUND_SESSION_REFRESH_SECS: secs(15),
  ORCH_UI_SESSION_INFO_REFRESH_SECS: secs(15),
});
export type UiConfig = z.output<typeof UiConfig>;
