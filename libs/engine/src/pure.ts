import { createActor, type AnyStateMachine } from "xstate";

/**
 * XState's pure `transition()` / `initialTransition()`, minus a cost: each call builds a throwaway
 * actor (and with it the machine's whole initial snapshot) to get an actor scope. Our machines spawn
 * no actors and run no side effects, so one inert scope per machine serves every call; only the
 * sink that collects the actions changes. Same semantics, measured at a fraction of the cost.
 */

type Action = { type: string; params?: unknown };
interface Scope {
  sink: Action[];
  scope: Record<string, unknown>;
}

const scopes = new WeakMap<AnyStateMachine, Scope>();

function scopeFor(machine: AnyStateMachine): Scope {
  let s = scopes.get(machine);
  if (s) return s;
  const self = createActor(machine);
  const holder: Scope = { sink: [], scope: {} };
  holder.scope = {
    self,
    defer: () => undefined,
    id: "",
    logger: () => undefined,
    sessionId: "",
    stopChild: () => undefined,
    system: self.system,
    emit: () => undefined,
    actionExecutor: (a: Action) => {
      holder.sink.push(a);
    },
  };
  scopes.set(machine, holder);
  s = holder;
  return s;
}

export function pureTransition<S>(machine: AnyStateMachine, snapshot: S, event: unknown): [S, Action[]] {
  const s = scopeFor(machine);
  const actions: Action[] = [];
  s.sink = actions;
  const next = machine.transition(snapshot as never, event as never, s.scope as never) as S;
  s.sink = [];
  return [next, actions];
}

export function pureInitial<S>(machine: AnyStateMachine, input: unknown): [S, Action[]] {
  const s = scopeFor(machine);
  const actions: Action[] = [];
  s.sink = actions;
  const next = machine.getInitialSnapshot(s.scope as never, input as never) as S;
  s.sink = [];
  return [next, actions];
}
