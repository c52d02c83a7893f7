import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { ApiError, EventStream, type StreamFrame, type StreamState } from "./api.js";

/** Loads `fn` now and whenever `deps` change; `reload` loads again (keeping what is shown meanwhile). */
export function useLoad<T>(fn: () => Promise<T>, deps: unknown[]): { data: T | undefined; error: ApiError | undefined; loading: boolean; reload: () => void } {
  const [state, setState] = useState<{ data: T | undefined; error: ApiError | undefined; loading: boolean }>({
    data: undefined,
    error: undefined,
    loading: true,
  });
  const gen = useRef(0);
  const load = useCallback(() => {
    const mine = ++gen.current;
    setState((s) => ({ ...s, loading: true }));
    fn().then(
      (data) => mine === gen.current && setState({ data, error: undefined, loading: false }),
      (err: unknown) =>
        mine === gen.current && setState((s) => ({ ...s, error: err instanceof ApiError ? err : new ApiError(0, "ERROR", String(err)), loading: false })),
    );
  }, deps);
  useEffect(load, [load]);
  return { ...state, reload: load };
}

/** Calls `fn` at most once per `ms`, trailing (several events in a burst cause one reload). */
export function useDebounced(fn: () => void, ms: number): () => void {
  const t = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  const f = useRef(fn);
  f.current = fn;
  useEffect(() => () => clearTimeout(t.current), []);
  return useCallback(() => {
    if (t.current !== undefined) return;
    t.current = setTimeout(() => {
      t.current = undefined;
      f.current();
    }, ms);
  }, [ms]);
}

/** An event stream open while the component is (and `path` is set); its connection state. */
export function useStream(
  path: string | undefined,
  types: readonly string[],
  onFrame: (f: StreamFrame) => void,
  isLast?: (f: StreamFrame) => boolean,
): { state: StreamState; detail: string | undefined } {
  const [st, setSt] = useState<{ state: StreamState; detail: string | undefined }>({ state: "connecting", detail: undefined });
  const cb = useRef(onFrame);
  cb.current = onFrame;
  useEffect(() => {
    if (!path) return;
    const s = new EventStream(path, {
      types,
      onFrame: (f) => cb.current(f),
      onState: (state, detail) => setSt({ state, detail }),
      ...(isLast ? { isLast } : {}),
    });
    return () => s.close();
  }, [path]);
  return st;
}
