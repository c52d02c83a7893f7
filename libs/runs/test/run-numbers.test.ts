import { describe, expect, it } from "vitest";
import { MAX_RUN_STEPS } from "@orch/contracts";
import { splitStepNumber, stepNumber } from "../src/run-numbers.js";

/** Step numbers: a run's number × MAX_RUN_STEPS + the step's index, and back (the stream part: test/integration/run-numbers.test.ts). */
describe("step numbers", () => {
  it("put a run's steps after its number, and give both back", () => {
    expect(MAX_RUN_STEPS).toBe(10_000);
    expect(stepNumber(1, 0)).toBe(10_000);
    expect(stepNumber(1, 9_999)).toBe(19_999);
    expect(stepNumber(2, 0)).toBe(20_000);
    expect(stepNumber(123_456, 42)).toBe(1_234_560_042);
    for (const [run, index] of [
      [1, 0],
      [7, 3],
      [99_999_999, 9_999],
      [2 ** 36, 17],
    ] as const) {
      expect(splitStepNumber(stepNumber(run, index))).toEqual({ runNumber: run, index });
    }
  });

  it("never gives two steps of any runs one number", () => {
    const seen = new Set<number>();
    for (let run = 1; run <= 30; run++) for (let index = 0; index < MAX_RUN_STEPS; index += 1_111) seen.add(stepNumber(run, index));
    expect(seen.size).toBe(30 * Math.ceil(MAX_RUN_STEPS / 1_111));
  });

  it("refuses what no step can be", () => {
    expect(() => stepNumber(0, 0)).toThrow(RangeError);
    expect(() => stepNumber(1, -1)).toThrow(RangeError);
    expect(() => stepNumber(1, MAX_RUN_STEPS)).toThrow(RangeError);
    expect(() => stepNumber(1.5, 0)).toThrow(RangeError);
    expect(() => stepNumber(2 ** 53, 0)).toThrow(RangeError);
    expect(() => stepNumber(2 ** 40, 0)).toThrow(RangeError);
    for (const n of [0, 1, 9_999, -10_000, 1.5, Number.NaN, 2 ** 60]) expect(splitStepNumber(n)).toBeNull();
  });
});
