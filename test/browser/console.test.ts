import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO_ROOT } from "@orch/nats-server";
import { Stack, freePort, http, waitFor, type ServiceProcess } from "@orch/testing";

/**
 * The web console in a real browser (Debian's Chromium, driven by playwright-core) over the real
 * system with an API token set: a SpecKit run created from the console reaches its gates live and
 * is approved there; a dropped event stream (the gateway restarted) resumes without a reload and
 * without duplicates; a refused action shows the server's reason; the run page fits a phone.
 * With ORCH_SCREENSHOT=1 it also writes docs/images/console-run.png (1280x800).
 */

const TOKEN = "console-browser-test-token-0123456789";
const AUTH = { authorization: `Bearer ${TOKEN}` };
const CHROMIUM = process.env.ORCH_CHROMIUM_BIN ?? "/usr/bin/chromium";
const INPUT = { feature_description: "Add user authentication with OAuth2", feature_id: "001-console" };

let stack: Stack;
let browser: Browser;
/** A browser context whose pages have the token already (entered once, in the first test's own context). */
let context: BrowserContext;

beforeAll(async () => {
  stack = await Stack.start({ env: { ORCH_API_TOKEN: TOKEN, ORCH_RATE_LIMIT_MAX: "10000" } });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  // Each launch has a fresh, temporary profile (playwright's own user-data dir).
  context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await context.addInitScript((t) => localStorage.getItem("orch.console.token") ?? localStorage.setItem("orch.console.token", t), TOKEN);
});

afterAll(async () => {
  await context?.close();
  await browser?.close();
  await stack?.stop();
});

const api = (method: string, path: string, json?: unknown) =>
  http(method, `${stack.baseUrl}/api/v1${path}`, { headers: AUTH, ...(json === undefined ? {} : { json }) });

async function createRun(title: string, extra: Record<string, unknown> = {}): Promise<string> {
  const r = await api("POST", "/runs", {
    definition: "speckit.specify",
    title,
    input: { ...INPUT, feature_id: `00${Math.floor(Math.random() * 9)}-${title}` },
    ...extra,
  });
  expect(r.status, r.text).toBe(201);
  return r.json().id;
}

const stepStatus = async (runId: string, stepId: string, base = stack.baseUrl) =>
  (await http("GET", `${base}/api/v1/runs/${runId}`, { headers: AUTH })).json().steps.find((s: { id: string }) => s.id === stepId)?.status;

/** Marks the page's document: the mark survives anything but a reload. */
const mark = (page: Page) => page.evaluate(() => ((window as unknown as { __mark: number }).__mark = 42));
const marked = (page: Page) => page.evaluate(() => (window as unknown as { __mark?: number }).__mark === 42);

async function historyIds(page: Page): Promise<number[]> {
  return page.$$eval(".history li[data-event-id]", (els) => els.map((e) => Number(e.getAttribute("data-event-id"))));
}

describe("the web console", () => {
  it("takes the token once, starts a SpecKit run, shows its gates live and approves them until it finishes", async () => {
    const fresh = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await fresh.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`${stack.baseUrl}/console/`);
    // A wrong token is refused with the server's reason and not kept.
    await page.fill("input[name=token]", "wrong-token");
    await page.click("button[type=submit]");
    await page.waitForSelector(".error[data-code=UNAUTHORIZED]");
    expect(await page.evaluate(() => localStorage.getItem("orch.console.token"))).toBeNull();
    await page.fill("input[name=token]", TOKEN);
    await page.click("button[type=submit]");
    await page.waitForSelector("h2:has-text('Runs')");
    expect(await page.evaluate(() => localStorage.getItem("orch.console.token"))).toBe(TOKEN);

    await page.click("text=New run");
    await page.waitForFunction(() =>
      [...document.querySelectorAll("select[name=definition] option")].some((o) => (o as HTMLOptionElement).value === "speckit.specify"),
    );
    await page.selectOption("select[name=definition]", "speckit.specify");
    await page.fill("input[name=title]", "OAuth2 from the console");
    await page.fill("input[name=labels]", "feature:001");
    await page.fill("textarea[name=input]", JSON.stringify(INPUT));
    await page.click("button:has-text('Start run')");
    await page.waitForURL((u) => /^\/console\/runs\/[A-Za-z0-9_-]+$/.test(u.pathname) && u.pathname !== "/console/runs/new");
    const runId = page.url().split("/").pop()!;
    await mark(page);

    // Phase 1 reaches its gate while we watch: no reload.
    const gate1 = page.locator("[data-gate=phase_1]");
    await gate1.waitFor({ timeout: 60_000 });
    const revision = await gate1.locator("[data-revision]").getAttribute("data-revision");
    expect(revision).toMatch(/^1-[0-9a-f]{12}$/);
    expect(await gate1.textContent()).toContain("SHA-256");
    // What you approve: the spec file phase 1 committed, as a diff, its added lines coloured.
    const specDiff = gate1.locator(".changes .diff-file[data-file$='/spec.md']");
    await specDiff.waitFor({ timeout: 30_000 });
    expect(await specDiff.locator("summary").textContent()).toMatch(/spec\.md\s*add\s*\+\d+\s*-0/);
    expect(await specDiff.locator("pre.diff").textContent()).toContain("+## Functional requirements\n");
    expect(await specDiff.locator("pre.diff .dl-add", { hasText: "FR-001" }).count()).toBe(1);
    await gate1.locator("textarea[name=comment]").fill("Looks right");
    await gate1.locator("button[data-action=approve]").click();

    const gate2 = page.locator("[data-gate=phase_2]");
    await gate2.waitFor({ timeout: 60_000 });
    if (process.env.ORCH_SCREENSHOT === "1") {
      mkdirSync(join(REPO_ROOT, "docs", "images"), { recursive: true });
      await page.locator("[data-step=phase_2] [data-transcript] [data-stream=ended]").waitFor();
      await page.evaluate(() => window.scrollTo(0, 0));
      await page.screenshot({ path: join(REPO_ROOT, "docs", "images", "console-run.png"), fullPage: false });
    }
    await gate2.locator("button[data-action=approve]").click();
    await page.waitForSelector(".run-page[data-status=completed]", { timeout: 60_000 });
    expect(await marked(page)).toBe(true);

    // What the page shows is what the server has: the approval with its comment and revision.
    const h = await api("GET", `/runs/${runId}/history`);
    expect(h.status, h.text).toBe(200);
    const history = h.json();
    const approved = history.items.find((e: { type: string; data?: { stepId?: string } }) => e.type === "step.approved" && e.data?.stepId === "phase_1");
    expect(approved?.data).toMatchObject({ actor: "console", reason: "Looks right", revision });
    await page.waitForFunction((n) => document.querySelectorAll(".history li[data-event-id]").length === n, history.items.length);
    // The token is never rendered.
    expect(await page.content()).not.toContain(TOKEN);
    expect(errors).toEqual([]);
    await fresh.close();
  });

  it("resumes a dropped event stream without a reload: events from meanwhile appear, none twice", async () => {
    const runId = await createRun("resume");
    const page = await context.newPage();
    await page.goto(`${stack.baseUrl}/console/runs/${runId}`);
    await page.locator("[data-gate=phase_1]").waitFor({ timeout: 60_000 });
    await page.waitForSelector(".run-page [data-stream=open]");
    await mark(page);
    const before = await historyIds(page);

    // The page's gateway goes away; meanwhile another gateway approves phase 1 and phase 2 runs.
    await stack.kill("gateway");
    await page.waitForSelector(".run-page .card-head [data-stream=retrying]");
    const port = await freePort();
    const other: ServiceProcess = await stack.spawn("gateway", { PORT: String(port), ORCH_API_TOKEN: TOKEN, ORCH_GRPC_PORT: String(await freePort()) });
    const otherBase = `http://127.0.0.1:${port}`;
    const step = (await http("GET", `${otherBase}/api/v1/runs/${runId}/steps/phase_1`, { headers: AUTH })).json();
    const ok = await http("POST", `${otherBase}/api/v1/runs/${runId}/steps/phase_1/approve`, { headers: AUTH, json: { revision: step.revision } });
    expect(ok.status, ok.text).toBe(200);
    await waitFor(async () => (await stepStatus(runId, "phase_2", otherBase)) === "waiting_approval" || undefined, {
      timeoutMs: 60_000,
      what: "phase 2 to wait",
    });
    await other.stop();
    await stack.restart("gateway");

    // The page reconnects by itself and shows what happened while it was away.
    await page.locator("[data-gate=phase_2]").waitFor({ timeout: 60_000 });
    await page.waitForSelector(".run-page .card-head [data-stream=open]", { timeout: 30_000 });
    const history = (await api("GET", `/runs/${runId}/history`)).json();
    await page.waitForFunction((n) => document.querySelectorAll(".history li[data-event-id]").length === n, history.items.length, { timeout: 30_000 });
    const after = await historyIds(page);
    expect(new Set(after).size).toBe(after.length);
    expect([...after].sort((a, b) => a - b)).toEqual(history.items.map((e: { id: number }) => e.id).sort((a: number, b: number) => a - b));
    expect(after.length).toBeGreaterThan(before.length);
    expect(await marked(page)).toBe(true);
    await page.close();
  });

  it("shows the server's reason when it refuses an action", async () => {
    const runId = await createRun("refused");
    const page = await context.newPage();
    await page.goto(`${stack.baseUrl}/console/runs/${runId}`);
    const gate = page.locator("[data-gate=phase_1]");
    await gate.waitFor({ timeout: 60_000 });
    // The page stops hearing about the run (its stream is cut), and someone else approves phase 1.
    await page.route("**/api/v1/runs/*/events**", (route) => route.abort());
    await page.evaluate(() => window.__orchConsole?.dropStreams());
    const step = (await api("GET", `/runs/${runId}/steps/phase_1`)).json();
    expect((await api("POST", `/runs/${runId}/steps/phase_1/approve`, { revision: step.revision })).status).toBe(200);
    await waitFor(async () => (await stepStatus(runId, "phase_1")) === "completed" || undefined, { timeoutMs: 30_000, what: "phase 1 approved" });

    // The stale page still offers approve: the server refuses it, and the page says why.
    await gate.locator("button[data-action=approve]").click();
    const error = gate.locator(".error");
    await error.waitFor();
    const text = (await error.textContent()) ?? "";
    expect(["ILLEGAL_TRANSITION", "CONFLICT"]).toContain(await error.getAttribute("data-code"));
    expect(text.length).toBeGreaterThan(30);
    await page.close();
  });

  it("every page answers: runs filtered, approvals, projects, queues and sessions, schedules, the live event feed, dead letters", async () => {
    const page = await context.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`${stack.baseUrl}/console/events`);
    await page.waitForSelector("main [data-stream=open]");
    // The feed is live: a run started now shows up without a reload.
    const runId = await createRun("feed");
    await page.waitForSelector(`.history li >> text=${runId}`, { timeout: 30_000 });

    await page.goto(`${stack.baseUrl}/console/runs?status=completed&view=speckit`);
    await page.waitForSelector("tr[data-run]");
    const statuses = await page.$$eval("tr[data-run]", (rows) => rows.map((r) => r.getAttribute("data-status")));
    expect(statuses.length).toBeGreaterThan(0);
    expect(new Set(statuses)).toEqual(new Set(["completed"]));
    await page.goto(`${stack.baseUrl}/console/runs?label=feature:001`);
    await page.waitForSelector("tr[data-run]");

    for (const [path, ready] of [
      ["/approvals", "[data-approval], .empty"],
      ["/projects", "[data-project], .empty"],
      ["/queues", "table, .empty"],
      ["/schedules", "table, .empty"],
      ["/dead-letters", "[data-letter], .empty"],
    ] as const) {
      await page.goto(`${stack.baseUrl}/console${path}`);
      await page.waitForSelector(ready);
      expect(await page.locator(".error").count(), path).toBe(0);
    }
    await page.goto(`${stack.baseUrl}/console/queues`);
    await page.waitForSelector("h2:has-text('Worker sessions') >> xpath=../.. >> table");
    await page.goto(`${stack.baseUrl}/console/no-such-page`);
    await page.waitForSelector("h1:has-text('Not found')");
    expect(errors).toEqual([]);
    await page.close();
  });

  it("acts on a schedule from the Schedules page: trigger now, pause, resume, backfill (a refusal shown with its reason), delete after a confirm", async () => {
    const id = "console-hourly";
    const HOUR = 3_600_000;
    const created = await api("POST", "/schedules", {
      id,
      title: "Hourly from the console",
      everyMs: HOUR,
      creates: { definition: "job", input: { goal: "hourly" } },
    });
    expect([201, 202], created.text).toContain(created.status);
    const status = async () => (await api("GET", `/schedules/${id}`)).json().status as string;
    await waitFor(async () => ((await status()) === "waiting" ? true : undefined), { what: "the schedule armed" });
    const runIds = async () => ((await api("GET", `/runs?label=schedule:${id}&limit=100`)).json().items as { id: string }[]).map((r) => r.id);

    const page = await context.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`${stack.baseUrl}/console/schedules`);
    const row = page.locator(`tr[data-schedule=${id}]`);
    await row.waitFor();
    expect(await row.getAttribute("data-status")).toBe("waiting");

    // Trigger now: a run of its own, labelled with the schedule.
    await row.locator("button[data-action=trigger]").click();
    await waitFor(async () => (await runIds()).find((r) => r.startsWith(`${id}-now-`)), { timeoutMs: 30_000, what: "the triggered run" });

    // Pause, then resume: the row follows, the API agrees.
    await row.locator("button[data-action=pause]").click();
    await page.waitForSelector(`tr[data-schedule=${id}][data-status=paused] button[data-action=resume]`);
    expect(await status()).toBe("paused");
    await row.locator("button[data-action=resume]").click();
    await page.waitForSelector(`tr[data-schedule=${id}][data-status=waiting] button[data-action=pause]`);
    expect(await status()).toBe("waiting");

    // Backfill three past hours (the form takes the browser's local time).
    const from = Math.floor(Date.now() / HOUR) * HOUR - 3 * HOUR;
    const local = (ms: number) =>
      page.evaluate((t) => {
        const d = new Date(t);
        const p = (n: number) => String(n).padStart(2, "0");
        return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
      }, ms);
    await row.locator("button[data-action=backfill]").click();
    const form = row.locator("form[data-form=backfill]");
    // From after to: the server refuses, and the page says why.
    await form.locator("input[name=from]").fill(await local(from + 2 * HOUR));
    await form.locator("input[name=to]").fill(await local(from));
    await form.locator("button[type=submit]").click();
    const refusal = row.locator(".error");
    await refusal.waitFor();
    expect(await refusal.getAttribute("data-code")).toBe("BAD_REQUEST");
    expect(await refusal.textContent()).toContain("from is after to");
    await form.locator("input[name=from]").fill(await local(from));
    await form.locator("input[name=to]").fill(await local(from + 2 * HOUR));
    await form.locator("button[type=submit]").click();
    await form.waitFor({ state: "detached" });
    expect(await row.locator(".error").count()).toBe(0);
    const want = [0, 1, 2].map((i) => `${id}-${from + i * HOUR}`);
    await waitFor(async () => ((ids) => want.every((w) => ids.includes(w)))(await runIds()) || undefined, { timeoutMs: 30_000, what: "the backfilled runs" });

    // Delete asks first: dismissed, nothing happens; accepted, the schedule is cancelled and has no actions left.
    const deletes: string[] = [];
    page.on("request", (r) => (r.method() === "DELETE" ? deletes.push(r.url()) : undefined));
    page.once("dialog", (d) => void d.dismiss());
    await row.locator("button[data-action=delete]").click();
    await page.locator(`tr[data-schedule=${id}] button[data-action=delete]:not([disabled])`).waitFor();
    expect(deletes).toEqual([]);
    expect(await status()).toBe("waiting");
    page.once("dialog", (d) => void d.accept());
    await row.locator("button[data-action=delete]").click();
    await page.waitForSelector(`tr[data-schedule=${id}][data-status=cancelled]`);
    expect(await status()).toBe("cancelled");
    expect(deletes).toEqual([`${stack.baseUrl}/api/v1/schedules/${id}`]);
    expect(await row.locator("button").count()).toBe(0);
    expect(errors).toEqual([]);
    await page.close();
  });

  it("fits a phone: the run page has no horizontal overflow and its actions are reachable", async () => {
    const runId = await createRun("phone");
    await waitFor(async () => (await stepStatus(runId, "phase_1")) === "waiting_approval" || undefined, { timeoutMs: 60_000, what: "phase 1 to wait" });
    const phone = await browser.newContext({ viewport: { width: 375, height: 740 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
    await phone.addInitScript((t) => localStorage.setItem("orch.console.token", t), TOKEN);
    const page = await phone.newPage();
    await page.goto(`${stack.baseUrl}/console/runs/${runId}`);
    const gate = page.locator("[data-gate=phase_1]");
    await gate.waitFor({ timeout: 60_000 });
    await page.locator("[data-step=phase_1] [data-session] button:has-text('transcript')").first().click();
    await page.locator("[data-transcript] .tp").first().waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    for (const sel of ["[data-gate=phase_1] button[data-action=approve]", "button[data-action=cancel]"]) {
      const box = await page.locator(sel).boundingBox();
      expect(box, sel).not.toBeNull();
      expect(box!.x).toBeGreaterThanOrEqual(0);
      expect(box!.x + box!.width).toBeLessThanOrEqual(375);
    }
    // The menu folds away on a phone and opens on demand.
    expect(await page.locator(".top nav").isVisible()).toBe(false);
    await page.click(".menu-toggle");
    await page.click(".top nav >> text=Approvals");
    await page.waitForSelector(`[data-approval="${runId}/phase_1"]`);
    await phone.close();
  });
});
