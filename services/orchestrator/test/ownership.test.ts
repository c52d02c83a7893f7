import { describe, expect, it } from "vitest";
import { ownerOf } from "../src/core/ownership.js";

describe("partition owners (rendezvous hashing)", () => {
  const count = (members: string[]) => {
    const n = new Map<string, number>();
    for (let k = 0; k < 16; k++) n.set(ownerOf(k, members)!, (n.get(ownerOf(k, members)!) ?? 0) + 1);
    return n;
  };

  it("spreads 16 partitions over similar replica names", () => {
    for (const members of [
      ["replica-a", "replica-b"],
      ["orch-0", "orch-1", "orch-2"],
      ["host1", "host2"],
    ]) {
      const n = count(members);
      expect(n.size, members.join(",")).toBe(members.length);
      for (const v of n.values()) expect(v).toBeGreaterThanOrEqual(2);
    }
  });

  it("moves only the leaving member's partitions", () => {
    const three = ["a", "b", "c"];
    const two = ["a", "c"];
    for (let k = 0; k < 16; k++) {
      if (ownerOf(k, three) !== "b") expect(ownerOf(k, two)).toBe(ownerOf(k, three));
    }
  });

  it("is deterministic and order-independent", () => {
    for (let k = 0; k < 16; k++) expect(ownerOf(k, ["x", "y", "z"])).toBe(ownerOf(k, ["z", "x", "y"]));
    expect(ownerOf(0, [])).toBeUndefined();
  });
});
