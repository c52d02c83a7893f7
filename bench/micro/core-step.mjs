// The core's pure decision for 5-step jobs, in process: what one command costs the orchestrator
// before any I/O (kernel, view, transition, encoding). `node bench/micro/core-step.mjs [runs]`.
import { Command, encodeTransition } from "@orch/contracts";
import { TaskPacket, jobRunSpec } from "@orch/runs";
import { builtin } from "@orch/engine";
import { decide, storedState } from "../../services/orchestrator/dist/core/decide.js";

const runs = Number(process.argv[2] ?? 2000);
const cd = builtin("job");
const spec = jobRunSpec(
  TaskPacket.parse({ goal: "bench", steps: [1, 2, 3, 4, 5].map(() => ({ type: "dev.log" })), limits: { maxSteps: 5, maxWallMs: 600000 } }),
);
let now = 1_000_000;
const clock = () => ({ now: ++now, rand: 0.5 });
let commands = 0;
let bytes = 0;
let decideNs = 0n;
let encodeNs = 0n;
const apply = (prev, cmd) => {
  const a = process.hrtime.bigint();
  const d = decide(prev, cmd, cd, clock());
  const b = process.hrtime.bigint();
  const data = encodeTransition({ ...d.transition, state: storedState(d.transition.state) });
  encodeNs += process.hrtime.bigint() - b;
  decideNs += b - a;
  bytes += data.length;
  commands++;
  const t = d.transition;
  return { head: t.head, run: t.head.run, state: t.state };
};
const t0 = process.hrtime.bigint();
for (let i = 0; i < runs; i++) {
  const runId = `0a9a2f3b-70c9-4ee1-94b8-${String(i).padStart(12, "0")}`;
  let run = apply(
    null,
    Command.parse({ type: "run.create", commandId: `create:${runId}`, runId, issuedAt: now, projectId: "_default", ...spec, mode: "mock" }),
  );
  for (let s = 0; s < 5; s++) {
    const work = run.head.work[0];
    run = apply(run, {
      type: "step.result",
      commandId: `result:${work.attemptId}`,
      runId,
      issuedAt: now,
      actor: "agent-hub",
      stepId: work.stepId,
      attemptId: work.attemptId,
      kind: "execute",
      ok: true,
      notes: [`dev.log: bench`],
      startedAt: now,
      finishedAt: now,
    });
  }
}
const ns = Number(process.hrtime.bigint() - t0);
console.log(
  `${commands} commands, ${(ns / commands / 1000).toFixed(1)} µs/command (decide ${(Number(decideNs) / commands / 1000).toFixed(1)}, encode ${(Number(encodeNs) / commands / 1000).toFixed(1)}), ${(ns / runs / 1e6).toFixed(3)} ms/workflow, transition ${(bytes / commands / 1024).toFixed(2)} KiB avg`,
);
