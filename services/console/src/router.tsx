import type { ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";

/**
 * Client-side routes under `/console/` (the gateway answers index.html for any of them): the path
 * after the base and the query, `navigate()` to change them without a reload.
 */

export const BASE = "/console";

const listeners = new Set<() => void>();
window.addEventListener("popstate", () => listeners.forEach((l) => l()));

export function navigate(to: string, replace = false): void {
  const url = to.startsWith(BASE) ? to : `${BASE}${to}`;
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  listeners.forEach((l) => l());
  if (!replace) window.scrollTo(0, 0);
}

export interface Location {
  /** The path below `/console` (`/runs/abc`), `/` for the base itself. */
  path: string;
  query: URLSearchParams;
}

function current(): Location {
  const p = location.pathname.startsWith(BASE) ? location.pathname.slice(BASE.length) : location.pathname;
  return { path: p === "" ? "/" : p, query: new URLSearchParams(location.search) };
}

export function useLocation(): Location {
  const [loc, setLoc] = useState(current);
  useEffect(() => {
    const l = () => setLoc(current());
    listeners.add(l);
    return () => void listeners.delete(l);
  }, []);
  return loc;
}

export function Link(props: { href: string; class?: string; children: ComponentChildren; title?: string }) {
  const href = `${BASE}${props.href}`;
  return (
    <a
      href={href}
      class={props.class}
      title={props.title}
      onClick={(e) => {
        if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
        e.preventDefault();
        navigate(props.href);
      }}
    >
      {props.children}
    </a>
  );
}
