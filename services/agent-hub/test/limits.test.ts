import { describe, expect, it } from "vitest";
import { Limits, Semaphore } from "../src/sessions/limits.js";

/** Concurrency limits per executor and per provider. */

describe("semaphore", () => {
  it("grants up to its size, then queues in order, and a release lets the next one in", async () => {
    const s = new Semaphore(2);
    const order: string[] = [];
    const r1 = await s.acquire();
    const r2 = await s.acquire();
    const p3 = s.acquire().then((r) => (order.push("3"), r));
    const p4 = s.acquire().then((r) => (order.push("4"), r));
    await new Promise((r) => setTimeout(r, 10));
    expect(order).toEqual([]);
    expect(s.waiting).toBe(2);
    r1();
    r1(); // releasing twice frees one slot only
    const r3 = await p3;
    expect(order).toEqual(["3"]);
    expect(s.available).toBe(0);
    r2();
    await p4;
    expect(order).toEqual(["3", "4"]);
    r3();
    expect(s.available).toBe(1);
  });

  it("gives up waiting when aborted, and the slot goes to the next", async () => {
    const s = new Semaphore(1);
    const held = await s.acquire();
    const ac = new AbortController();
    const gone = s.acquire(ac.signal);
    const next = s.acquire();
    ac.abort(new Error("cancelled"));
    await expect(gone).rejects.toThrow("cancelled");
    held();
    await expect(next).resolves.toBeTypeOf("function");
  });
});

describe("limits", () => {
  it("holds a session until both its executor and its provider have a slot", async () => {
    const l = new Limits({ local: 2 }, { ollama: 1 }, 16);
    const a = await l.acquire("local", "ollama");
    let b: (() => void) | undefined;
    const pb = l.acquire("local", "ollama").then((r) => (b = r));
    await new Promise((r) => setTimeout(r, 10));
    expect(b).toBeUndefined();
    expect(l.snapshot()).toEqual({ executors: { local: { free: 0, waiting: 0 } }, providers: { ollama: { free: 0, waiting: 1 } } });
    a();
    await pb;
    expect(b).toBeTypeOf("function");
    // Names without a limit of their own get the fallback.
    const many = await Promise.all(Array.from({ length: 16 }, () => l.acquire("stub", "stub")));
    expect(l.snapshot().executors.stub).toEqual({ free: 0, waiting: 0 });
    for (const r of many) r();
  });

  it("releases the executor's slot when waiting for the provider is aborted", async () => {
    const l = new Limits({ codex: 1 }, { codex: 1 }, 4);
    const held = await l.acquire("other", "codex");
    const ac = new AbortController();
    const p = l.acquire("codex", "codex", ac.signal);
    ac.abort(new Error("stop"));
    await expect(p).rejects.toThrow("stop");
    expect(l.snapshot().executors.codex).toEqual({ free: 1, waiting: 0 });
    held();
  });
});
