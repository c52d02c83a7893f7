import { createHash } from "node:crypto";
import { ISSUE_STATE_LABEL_PREFIX, issueClosingState, type TicketQuery, type TicketRef, type TrackerStateType } from "@orch/contracts";
import { TrackerRequestError } from "./errors.js";

/**
 * What GitHub's and GitLab's issues share as trackers: a ticket's id is `<repository>#<number>`
 * (numbers repeat across repositories; the id names the same run whatever the sync's settings),
 * its state is one `state:<name>` label, and a keyed write is a comment carrying a hidden marker.
 */

/** `<repository>#<number>`: a ticket id and the issue it names. */
export function issueId(repository: string, number: number): string {
  return `${repository}#${number}`;
}

export function issueOf(ticket: TicketRef): { repository: string; number: number } {
  const m = /^(.+)#(\d+)$/.exec(ticket.id);
  if (m) return { repository: m[1]!, number: Number(m[2]) };
  if (/^\d+$/.test(ticket.id) && ticket.repository) return { repository: ticket.repository, number: Number(ticket.id) };
  throw new TrackerRequestError(`ticket id "${ticket.id}" names no issue: expected <repository>#<number>`);
}

export function repositoryOf(query: TicketQuery, provider: string): string {
  const r = query.repository?.trim();
  if (!r) throw new TrackerRequestError(`${provider} needs the repository whose issues it syncs`);
  return r;
}

/** The label that shows tracker state `name`. */
export const stateLabel = (name: string) => `${ISSUE_STATE_LABEL_PREFIX}${name.trim()}`;

const isStateLabel = (label: string) => label.toLowerCase().startsWith(ISSUE_STATE_LABEL_PREFIX);
const same = (a: string, b: string) => a.trim().toLowerCase() === b.trim().toLowerCase();

/** The issue's tracker state: its state label's name, else `open` or `closed`. */
export function issueState(labels: readonly string[], closed: boolean): string {
  const l = labels.find(isStateLabel);
  return l ? l.slice(ISSUE_STATE_LABEL_PREFIX.length).trim() : closed ? "closed" : "open";
}

/**
 * Its kind: closed as not planned (GitHub) is cancelled, whatever its label; else a closing state
 * label's kind; else closed is done and open is unknown.
 */
export function issueStateType(state: string, closed: boolean, notPlanned = false): TrackerStateType | undefined {
  if (closed && notPlanned) return "canceled";
  const byLabel = state === "open" || state === "closed" ? undefined : issueClosingState(state);
  return byLabel ?? (closed ? "completed" : undefined);
}

/** Whether the sync's `states` take an issue in this state (by name, or by `open` / `closed`). */
export function stateWanted(wanted: ReadonlySet<string>, state: string, closed: boolean): boolean {
  return wanted.size === 0 || wanted.has(state.toLowerCase()) || wanted.has(closed ? "closed" : "open");
}

/** Whether the sync must list closed issues too: it asks for `closed` or a state that closes an issue. */
export function wantsClosed(wanted: ReadonlySet<string>): boolean {
  return [...wanted].some((s) => s === "closed" || issueClosingState(s) !== undefined);
}

/**
 * The labels an issue moved to `state` carries: its own without any state label, and the state's.
 * Null when it already shows that state (and no other).
 */
export function labelsFor(labels: readonly string[], state: string): string[] | null {
  const target = stateLabel(state);
  const states = labels.filter(isStateLabel);
  if (states.length === 1 && same(states[0]!, target)) return null;
  return [...labels.filter((l) => !isStateLabel(l)), target];
}

/** The selection of issues: a label and/or an assignee; the key's own user when neither and `assignedToMe`. */
export function selection(query: TicketQuery, provider: string): { label?: string; assignee?: string; me: boolean } {
  const label = query.label?.trim() || undefined;
  const assignee = query.assignee?.trim() || undefined;
  const me = !label && !assignee && (query.assignedToMe ?? true);
  if (!label && !assignee && !me) throw new TrackerRequestError(`${provider} syncs the issues a label or an assignee selects: set one of them`);
  return { ...(label ? { label } : {}), ...(assignee ? { assignee } : {}), me };
}

/** The comment key of a link (a marker holds no URL: `--` and `>` would end the HTML comment). */
export const linkKey = (url: string) => `link-${createHash("sha256").update(url).digest("hex").slice(0, 24)}`;

export const linkComment = (url: string, title: string) => (title.trim() ? `Pull request: [${title.trim()}](${url})` : `Pull request: ${url}`);
