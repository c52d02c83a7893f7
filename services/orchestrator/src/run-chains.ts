import { lastTransition, type Bus } from "@orch/bus";
import { FINAL_RUN_STATUSES } from "@orch/contracts";

/**
 * A run the core keeps from its settings (seed 001's periodic runs, a ticket intake) is a chain:
 * `<first>`, then, once one has ended, `<first>-<its last stream sequence>`. Returns the one that is
 * not ended (`live`), or the id the next one takes. An unreadable run is not taken for ended: a
 * second live one would do its work twice.
 */
export async function liveInChain(bus: Bus, first: string): Promise<{ runId: string; live: boolean }> {
  let runId = first;
  for (;;) {
    const t = await lastTransition(bus, runId);
    if (!t) return { runId, live: false };
    const v = t.transition.view();
    if (!v || !FINAL_RUN_STATUSES.has(v.status)) return { runId, live: true };
    runId = `${first}-${t.streamSeq}`;
  }
}
