import type { ComponentChildren } from "preact";
import { useState } from "preact/hooks";
import type { ApiError, StreamState } from "./api.js";
import type { Totals } from "./types.js";

/** Small pieces every page uses: status badges, times, money, errors, the stream indicator. */

export function Badge({ status }: { status: string }) {
  return <span class={`badge s-${status}`}>{status.replace(/_/g, " ")}</span>;
}

export function When({ at }: { at: string | undefined }) {
  if (!at) return <span class="muted">—</span>;
  const d = new Date(at);
  return (
    <time dateTime={at} title={d.toLocaleString()}>
      {ago(d)}
    </time>
  );
}

export function ago(d: Date, now = Date.now()): string {
  const s = Math.round((now - d.getTime()) / 1000);
  if (s < 0) return `in ${duration(-s * 1000)}`;
  if (s < 5) return "just now";
  return `${duration(s * 1000)} ago`;
}

export function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

export function span(start: string | undefined, end: string | undefined): string | undefined {
  if (!start) return undefined;
  return duration((end ? new Date(end).getTime() : Date.now()) - new Date(start).getTime());
}

export const usd = (n: number | undefined) => (n === undefined ? "—" : n === 0 ? "$0" : n < 0.01 ? `$${n.toFixed(4)}` : `$${n.toFixed(2)}`);
export const num = (n: number | undefined) => (n === undefined ? "—" : n.toLocaleString("en-US"));

export function UsageLine({ usage }: { usage: Partial<Totals> | undefined }) {
  if (!usage || (!usage.tokens && !usage.costUsd && !usage.calls)) return <span class="muted">no usage</span>;
  return (
    <span class="usage" title={`in ${num(usage.tokensIn)} / out ${num(usage.tokensOut)}, ${num(usage.calls)} calls`}>
      {num(usage.tokens)} tokens · {usd(usage.costUsd)}
    </span>
  );
}

export function ErrorBox({ error, title }: { error: ApiError | undefined; title?: string }) {
  if (!error) return null;
  return (
    <div class="error" role="alert" data-code={error.code}>
      {title ? <strong>{title}: </strong> : null}
      <code>{error.code}</code> {error.message}
    </div>
  );
}

export function Live({ state, detail }: { state: StreamState; detail?: string | undefined }) {
  const label = { connecting: "connecting", open: "live", retrying: "reconnecting", ended: "ended" }[state];
  return (
    <span class={`live live-${state}`} data-stream={state} title={detail ?? label}>
      <i /> {label}
    </span>
  );
}

export function Json({ value }: { value: unknown }) {
  if (value === undefined) return <span class="muted">—</span>;
  return <pre class="json">{typeof value === "string" ? value : JSON.stringify(value, null, 2)}</pre>;
}

export function Section(props: { title: ComponentChildren; actions?: ComponentChildren; children: ComponentChildren; id?: string }) {
  return (
    <section class="card" id={props.id}>
      <header class="card-head">
        <h2>{props.title}</h2>
        {props.actions ? <div class="card-actions">{props.actions}</div> : null}
      </header>
      {props.children}
    </section>
  );
}

export function Empty({ children }: { children: ComponentChildren }) {
  return <p class="empty muted">{children}</p>;
}

/** A button that runs an async action, shows it is busy, and its refusal next to it. */
export function ActionButton(props: {
  label: string;
  run: () => Promise<unknown>;
  kind?: "primary" | "danger" | "plain";
  confirm?: string;
  name?: string;
  onError?: (e: ApiError | undefined) => void;
}) {
  const [busy, setBusy] = useState(false);
  return (
    <button
      type="button"
      class={`btn btn-${props.kind ?? "plain"}`}
      data-action={props.name}
      disabled={busy}
      onClick={async () => {
        if (props.confirm && !window.confirm(props.confirm)) return;
        setBusy(true);
        props.onError?.(undefined);
        try {
          await props.run();
        } catch (err) {
          props.onError?.(err as ApiError);
        } finally {
          setBusy(false);
        }
      }}
    >
      {busy ? "…" : props.label}
    </button>
  );
}
