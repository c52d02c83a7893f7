import { afterEach, describe, expect, it, vi } from "vitest";
import { TimerQueue } from "../src/timers.js";

describe("TimerQueue", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("fires timers in due order, each once", () => {
    vi.useFakeTimers({ now: 0 });
    const fired: string[] = [];
    const q = new TimerQueue<string>((id) => fired.push(id));
    q.set("c", 300, "c");
    q.set("a", 100, "a");
    q.set("b", 200, "b");
    expect(q.size).toBe(3);
    vi.advanceTimersByTime(150);
    expect(fired).toEqual(["a"]);
    vi.advanceTimersByTime(1_000);
    expect(fired).toEqual(["a", "b", "c"]);
    expect(q.size).toBe(0);
  });

  it("fires overdue timers at once", () => {
    vi.useFakeTimers({ now: 10_000 });
    const fired: string[] = [];
    const q = new TimerQueue<null>((id) => fired.push(id));
    q.set("late", 5_000, null);
    vi.advanceTimersByTime(0);
    expect(fired).toEqual(["late"]);
  });

  it("forgets a deleted timer and honours a re-set one's new time", () => {
    vi.useFakeTimers({ now: 0 });
    const fired: [string, number][] = [];
    const q = new TimerQueue<number>((id, v) => fired.push([id, v]));
    q.set("x", 100, 1);
    q.set("y", 100, 1);
    q.delete("x");
    q.set("y", 500, 2);
    vi.advanceTimersByTime(200);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(400);
    expect(fired).toEqual([["y", 2]]);
    expect(q.has("x")).toBe(false);
  });

  it("copes with timers beyond Node's 24.8-day limit", () => {
    vi.useFakeTimers({ now: 0 });
    const fired: string[] = [];
    const q = new TimerQueue<null>((id) => fired.push(id));
    const day = 86_400_000;
    q.set("far", 40 * day, null);
    vi.advanceTimersByTime(39 * day);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(2 * day);
    expect(fired).toEqual(["far"]);
  });
});
