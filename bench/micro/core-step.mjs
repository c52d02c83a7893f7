// The core's pure step for 5-step jobs, in process: what one command costs the orchestrator
// before any I/O (kernel, record, outbox, encoding). `node bench/micro/core-step.mjs [runs]`.
import { Command, TaskPacket, jobRunSpec } from "@orch/contracts";
import { builtin } from "@orch/engine";
import { step } from "../../services/orchestrator/dist/core/step.js";

const runs = Number(process.argv[2] ?? 2000);
const cd = builtin("job");
const spec = jobRunSpec(
  TaskPacket.parse({ goal: "bench", steps: [1, 2, 3, 4, 5].map(() => ({ type: "dev.log" })), limits: { maxSteps: 5, maxWallMs: 600000 } }),
);
let now = 1_000_000;
const clock = () => ({ now: ++now, rand: 0.5 });
let commands = 0;
let bytes = 0;
const t0 = process.hrtime.bigint();
for (let i = 0; i < runs; i++) {
  const runId = `run-${i}`;
  let out = step(
    null,
    Command.parse({ type: "run.create", commandId: `create:${runId}`, runId, issuedAt: now, projectId: "_default", ...spec, mode: "mock" }),
    cd,
    clock(),
  );
  let rec = out.record;
  bytes += JSON.stringify(rec).length;
  commands++;
  for (let s = 0; s < 5; s++) {
    const work = rec.outbox.find((e) => e.kind === "work").item;
    out = step(
      rec,
      {
        type: "step.result",
        commandId: `result:${work.attemptId}`,
        runId,
        issuedAt: now,
        stepId: work.stepId,
        attemptId: work.attemptId,
        kind: "execute",
        ok: true,
        startedAt: now,
        finishedAt: now,
      },
      cd,
      clock(),
    );
    rec = out.record;
    bytes += JSON.stringify(rec).length;
    commands++;
  }
}
const ns = Number(process.hrtime.bigint() - t0);
console.log(
  `${commands} commands, ${(ns / commands / 1000).toFixed(1)} µs/command, ${(ns / runs / 1e6).toFixed(3)} ms/workflow, record ${(bytes / commands / 1024).toFixed(1)} KiB avg`,
);
