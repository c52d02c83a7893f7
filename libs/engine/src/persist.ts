import type { AnyMachineSnapshot } from "xstate";
import { StepDef } from "./definition.js";
import type { RunState, Snap } from "./kernel.js";
import { emptyTotals, type Ledger } from "./ledger.js";
import { pureInitial } from "./pure.js";
import { stepMachine, type StepContext } from "./step-machine.js";

/**
 * A run's state as it is stored with each transition, without what it can be rebuilt from: a step's
 * context does not repeat its run and its own id, counters at zero and empty usage are left out, the
 * steps a run brought keep only what differs from a step definition's defaults, an empty ledger is
 * left out. `unpackState(packState(s))` is `s` again (tested over every built-in's runs). What is
 * left out is what is the same for every step and every run, so a stored run costs its own facts.
 */

type Json = Record<string, unknown>;

/** What a step's context is at first, whatever the step (the step machine's initial context, but for its ids). */
let stepDefaults: Json | undefined;
function stepContextDefaults(): Json {
  if (stepDefaults) return stepDefaults;
  const [s] = pureInitial<AnyMachineSnapshot>(stepMachine as never, { runId: "", stepId: "", index: 0, now: 0 });
  const { runId: _r, stepId: _s, index: _i, now: _n, ...rest } = s.context as StepContext;
  stepDefaults = rest as Json;
  return stepDefaults;
}

/** A step definition's defaults (what zod fills in). */
let defDefaults: Json | undefined;
function stepDefDefaults(): Json {
  if (defDefaults) return defDefaults;
  const { id: _id, ...rest } = StepDef.parse({ id: "x" }) as Json;
  defDefaults = rest;
  return defDefaults;
}

/** Whether `v` is the default `d` (defaults are primitives, empty arrays and objects, or objects of zeros). */
function same(v: unknown, d: unknown): boolean {
  if (v === d) return true;
  if (typeof v !== "object" || v === null || typeof d !== "object" || d === null) return false;
  if (Array.isArray(v)) return Array.isArray(d) && v.length === 0 && d.length === 0;
  const dk = Object.keys(d);
  const vk = Object.keys(v);
  return dk.length === vk.length && dk.every((k) => (v as Json)[k] === (d as Json)[k]);
}

function withoutDefaults(o: Json, defaults: Json, drop: readonly string[] = []): Json {
  const out: Json = {};
  for (const [k, v] of Object.entries(o)) {
    if (drop.includes(k) || (k in defaults && same(v, defaults[k]))) continue;
    out[k] = v;
  }
  return out;
}

/** Packed steps by their snapshot: a step that did not move is packed once, not with every transition. */
const PACKED = new WeakMap<object, Json>();

function packStep(snap: Snap<StepContext>, keepStepId: boolean): Json {
  const hit = PACKED.get(snap);
  if (hit) return hit;
  const context = withoutDefaults(snap.context as unknown as Json, stepContextDefaults(), keepStepId ? ["runId"] : ["runId", "stepId"]);
  const packed = { value: snap.value, context };
  PACKED.set(snap, packed);
  return packed;
}

/** Packed step definitions by the list they are in (a run's brought steps rarely change). */
const PACKED_DEFS = new WeakMap<object, Json[]>();

/** A fresh copy of defaults (what is restored must not be shared between runs). */
const copy = (o: Json): Json => JSON.parse(JSON.stringify(o)) as Json;

function unpackStep(p: Json, runId: string, stepId: string | undefined): Snap<StepContext> {
  const c = p.context as Json;
  return { value: p.value, context: { ...copy(stepContextDefaults()), runId, ...(stepId !== undefined ? { stepId } : {}), ...c } as unknown as StepContext };
}

const isEmptyLedger = (l: Ledger) =>
  l.total.calls === 0 &&
  l.total.tokens === 0 &&
  l.total.costUsd === 0 &&
  l.total.wallMs === 0 &&
  Object.keys(l.byStep).length === 0 &&
  Object.keys(l.byPhase).length === 0 &&
  Object.keys(l.byRole).length === 0 &&
  Object.keys(l.byModel).length === 0;

/** The state to store (JSON-able). */
export function packState(st: RunState): Json {
  const { steps, planning, extraSteps, ledger, run, ...rest } = st;
  const out: Json = { ...rest };
  const { runId: _r, projectId: _p, createdAt: _c, ...runContext } = run.context;
  out.run = { value: run.value, context: runContext };
  const packed: Json = {};
  for (const [id, snap] of Object.entries(steps)) packed[id] = packStep(snap, false);
  out.steps = packed;
  if (planning) out.planning = packStep(planning, true);
  if (extraSteps.length) {
    let defs = PACKED_DEFS.get(extraSteps);
    if (!defs) {
      defs = extraSteps.map((d) => ({ id: d.id, ...withoutDefaults(d as unknown as Json, stepDefDefaults(), ["id"]) }));
      PACKED_DEFS.set(extraSteps, defs);
    }
    out.extraSteps = defs;
  }
  if (!isEmptyLedger(ledger)) out.ledger = ledger;
  return out;
}

/** The state as the kernel uses it, from what `packState` stored. */
export function unpackState(p: Json): RunState {
  const { steps, planning, extraSteps, ledger, run, ...rest } = p as Json & { run: Json; steps?: Json; planning?: Json; extraSteps?: Json[]; ledger?: Ledger };
  const runId = rest.runId as string;
  const st = rest as unknown as RunState;
  st.run = { value: run.value, context: { runId, projectId: rest.projectId, createdAt: rest.createdAt, ...(run.context as Json) } as never };
  st.steps = {};
  for (const [id, s] of Object.entries(steps ?? {})) st.steps[id] = unpackStep(s as Json, runId, id);
  if (planning) st.planning = unpackStep(planning, runId, undefined);
  st.extraSteps = (extraSteps ?? []).map((d) => ({ ...copy(stepDefDefaults()), ...d }) as unknown as StepDef);
  st.ledger = ledger ?? { total: emptyTotals(), byStep: {}, byPhase: {}, byRole: {}, byModel: {} };
  return st;
}
