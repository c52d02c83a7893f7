/** A step's diff: the commits its attempt made, answered over NATS (see @orch/contracts `diffs.ts`). */
export { StepDiffService, type StepDiffDeps } from "./service.js";
export { parsePatch, parseNumstat, boundFiles, cutBytes, type Bounds } from "./patch.js";
