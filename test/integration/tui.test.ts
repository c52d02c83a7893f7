import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, request, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Stack, http, waitFor } from "@orch/testing";

/**
 * `orch tui`, the real program in a real terminal: tmux (a private server per test file) runs it at
 * 160×45 over a real stack; keys are sent with `send-keys` and the screen is read back with
 * `capture-pane` (`-e` for its colours). Asserted: the runs list, a run's steps and transcript,
 * approving from the keyboard, a refused action's reason, the ticket picker's order, the theme and
 * transcript limit from the configuration file, and the supervisor's answer streaming into its pane.
 */

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const CLI = join(ROOT, "services", "cli", "dist", "main.js");
const TOKEN = "tui-test-token";
const SOCKET = `orch-tui-${process.pid}`;

let stack: Stack;
let base: string;
const tmp = mkdtempSync(join(tmpdir(), "orch-tui-"));
const repo = join(tmp, "repo");
const runs: Record<string, string> = {};

const api = async (method: string, path: string, json?: unknown) => {
  const r = await http(method, `${base}${path}`, { headers: { authorization: `Bearer ${TOKEN}` }, ...(json !== undefined ? { json } : {}) });
  expect(r.status, r.text).toBeLessThan(300);
  return r.json();
};
const stepOf = (run: any, id: string) => run.steps.find((s: any) => s.id === id);
const until = (id: string, pred: (run: any) => boolean, what: string) =>
  waitFor(
    async () => {
      const run = await api("GET", `/api/v1/runs/${id}`);
      return pred(run) ? run : undefined;
    },
    { timeoutMs: 30_000, what },
  );

const tmux = (...args: string[]) => execFileSync("tmux", ["-L", SOCKET, ...args], { encoding: "utf8" });
const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One `orch tui` in its own tmux session. */
class Tui {
  static #n = 0;
  readonly name = `tui${++Tui.#n}`;
  constructor(env: Record<string, string> = {}) {
    const all = {
      ORCH_URL: base,
      ORCH_API_TOKEN: TOKEN,
      ORCH_CONFIG: "none",
      ORCH_UI_BACKGROUND_SESSION_REFRESH_SECS: "1",
      ORCH_UI_SESSION_INFO_REFRESH_SECS: "1",
      // 256 colours whatever TERM tmux sets, so the theme's colours are what the screen holds.
      FORCE_COLOR: "2",
      // As a CI job's environment has it: a real terminal still gets the live screen.
      CI: "true",
      ...env,
    };
    const cmd = `env ${Object.entries(all)
      .map(([k, v]) => `${k}=${q(v)}`)
      .join(" ")} ${q(process.execPath)} ${q(CLI)} tui; sleep 60`;
    tmux("new-session", "-d", "-s", this.name, "-x", "160", "-y", "45", cmd);
  }
  screen(): string {
    return tmux("capture-pane", "-p", "-t", this.name);
  }
  colours(): string {
    return tmux("capture-pane", "-p", "-e", "-t", this.name);
  }
  async keys(...keys: string[]): Promise<void> {
    for (const k of keys) {
      tmux("send-keys", "-t", this.name, ...(k.length === 1 ? ["-l", k] : [k]));
      await sleep(150);
    }
  }
  async type(text: string): Promise<void> {
    tmux("send-keys", "-t", this.name, "-l", text);
    await sleep(150);
  }
  /** Waits until the screen matches; the last screen in the error otherwise. */
  async until(pred: RegExp | ((screen: string) => boolean), what: string, timeoutMs = 20_000): Promise<string> {
    const test = typeof pred === "function" ? pred : (s: string) => pred.test(s);
    const deadline = Date.now() + timeoutMs;
    let s = "";
    while (Date.now() < deadline) {
      s = this.screen();
      if (test(s)) return s;
      await sleep(200);
    }
    throw new Error(`timed out waiting for ${what}; the screen:\n${s}`);
  }
  /** Moves the runs list's selection to the run whose id starts the row. */
  async select(id: string): Promise<string> {
    const short = id.slice(0, 8);
    for (let i = 0; i < 40; i++) {
      const rows = this.screen().split("\n");
      const at = rows.findIndex((l) => l.includes(`▸ ${short} `));
      if (at !== -1) return this.until(new RegExp(`Run ${id}`), `run ${id} to show`);
      const sel = rows.findIndex((l) => /^│ ▸ [0-9a-f]{8} /.test(l));
      const target = rows.findIndex((l) => l.includes(`  ${short} `));
      await this.keys(sel !== -1 && target !== -1 && target < sel ? "k" : "j");
      await sleep(150);
    }
    throw new Error(`could not select run ${id}:\n${this.screen()}`);
  }
  stop(): void {
    try {
      tmux("kill-session", "-t", this.name);
    } catch {
      // already gone
    }
  }
}

const open: Tui[] = [];
const tui = async (env: Record<string, string> = {}) => {
  const t = new Tui(env);
  open.push(t);
  await t.until(/Runs/, "the TUI to start");
  return t;
};

function configFile(name: string, toml: string): string {
  const p = join(tmp, name);
  writeFileSync(p, toml);
  return p;
}

beforeAll(async () => {
  mkdirSync(repo);
  const git = (...a: string[]) => execFileSync("git", ["-c", "user.name=T", "-c", "user.email=t@localhost", ...a], { cwd: repo, encoding: "utf8" });
  git("init", "-q", "-b", "main");
  writeFileSync(join(repo, "README.md"), "# tui\n");
  git("add", "-A");
  git("commit", "-q", "-m", "initial");
  stack = await Stack.start({ env: { ORCH_RATE_LIMIT_MAX: "10000" }, serviceEnv: { gateway: { ORCH_API_TOKEN: TOKEN } } });
  base = stack.baseUrl;
  await api("PUT", "/api/v1/projects/acme", { name: "Acme", localPath: repo, baseBranch: "main" });
  // Tickets carrying their tracker's state (a label ticket intake records); they wait at New.
  for (const [key, state] of [
    ["ENG-1", "Todo"],
    ["ENG-2", "In Progress"],
    ["ENG-3", "Backlog"],
    ["ENG-4", "Icebox"],
  ] as const) {
    const r = await api("POST", "/api/v1/runs", {
      definition: "ticket",
      projectId: "acme",
      title: `${key} ticket`,
      labels: { ticket: key, tracker_state: state },
      input: { key, title: `${key} ticket`, branch: key.toLowerCase() },
    });
    runs[key] = r.id;
  }
  runs.job = (await api("POST", "/api/orchestrator/jobs", { goal: "a finished job", steps: [], limits: { maxSteps: 3 } })).job_id;
  const spec = await api("POST", "/api/v1/runs", {
    definition: "speckit.specify",
    projectId: "acme",
    title: "Terminal UI feature",
    input: { feature_description: "A terminal UI for the orchestrator", feature_id: "001-tui" },
  });
  runs.spec = spec.id;
  await until(spec.id, (r) => stepOf(r, "phase_1").status === "waiting_approval", "phase 1 to wait");
});

afterEach(() => {
  for (const t of open.splice(0)) t.stop();
});

afterAll(async () => {
  spawnSync("tmux", ["-L", SOCKET, "kill-server"]);
  await stack?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

describe("orch tui", () => {
  it("lists the runs, shows the selected run's steps and transcript, and approves its gate from the keyboard", async () => {
    const t = await tui();
    const first = await t.until((s) => Object.values(runs).every((id) => s.includes(id.slice(0, 8))), "every run to be listed");
    expect(first.split("\n")[0]).toMatch(/^Orchestrator · http:\/\/127\.0\.0\.1:\d+ · \d+ runs · theme nord · (live|idle)/);
    expect(first).toMatch(new RegExp(`${runs.spec!.slice(0, 8)} running +speckit\\.specify +Terminal UI feature`));
    expect(first).toMatch(new RegExp(`${runs.job!.slice(0, 8)} completed +job +a finished job`));
    expect(first).toMatch(/a approve · r reject · c cancel · t retry · p tickets · \? ask supervisor/);

    // A run created now appears with the background refresh.
    const late = (await api("POST", "/api/orchestrator/jobs", { goal: "created later", steps: [], limits: { maxSteps: 3 } })).job_id;
    await t.until(new RegExp(`${late.slice(0, 8)} \\w+ +job +created later`), "the new run to be listed");

    let s = await t.select(runs.spec!);
    s = await t.until(/✎ add specs\/001-tui\/spec\.md/, "phase 1's transcript");
    expect(s).toMatch(/phase_1 +waiting_approval +architect/);
    expect(s).toMatch(/phase_2 +pending +reviewer/);
    expect(s).toMatch(/Transcript · phase_1 session \S+ · stub · completed/);
    expect(s).toMatch(/^│.*│ -- session starting -- +│$/m);
    expect(s).toMatch(/assistant: architect wrote specs\/001-tui\/spec\.md/);
    expect(s).toMatch(/● commit [0-9a-f]{10} architect: spec\.md/);
    expect(s).toMatch(/-- session completed --/);

    await t.keys("a");
    await t.until(new RegExp(`Approve step phase_1 of run ${runs.spec}\\? \\(y/n\\)`), "the confirmation");
    await t.keys("y");
    s = await t.until(new RegExp(`✓ run ${runs.spec}: approved step phase_1`), "the approval");
    await until(runs.spec!, (r) => stepOf(r, "phase_1").status === "completed", "phase 1 approved");
    s = await t.until(/phase_1 +completed/, "phase 1 completed on the screen");
    // The next gate comes live: phase 2 waits, and its transcript follows.
    s = await t.until(/phase_2 +waiting_approval/, "phase 2 to wait");
    await t.until(/Transcript · phase_2 /, "phase 2's transcript");

    // Rejecting asks why; the agent is told, and the step is reworked.
    await t.keys("r");
    await t.until(new RegExp(`Reject step phase_2 of run ${runs.spec}: why\\? \\(enter rejects, esc keeps it\\)`), "the reason prompt");
    await t.type("name the scopes");
    await t.keys("Enter");
    await t.until(new RegExp(`✓ run ${runs.spec}: rejected step phase_2`), "the rejection");
    const rejected = (await api("GET", `/api/v1/runs/${runs.spec}/history`)).items.find((e: any) => e.type === "step.rejected");
    expect(rejected.data).toMatchObject({ stepId: "phase_2", reason: "name the scopes" });
    await until(runs.spec!, (r) => stepOf(r, "phase_2").status === "waiting_approval" && stepOf(r, "phase_2").attempt === 2, "the rework to wait");
    await t.until(/phase_2 +waiting_approval +reviewer .* attempt 2/, "the rework on the screen");

    // A declined confirmation does nothing.
    await t.keys("c");
    await t.until(/Cancel run \S+\? \(y\/n\)/, "the cancel confirmation");
    await t.keys("n");
    await t.until(/not done/, "the cancel declined");
    expect((await api("GET", `/api/v1/runs/${runs.spec}`)).status).toBe("running");
  });

  it("shows the server's reason when it refuses an action", async () => {
    const t = await tui();
    await t.select(runs.job!);
    await t.keys("t");
    await t.until(/Retry run \S+\? \(y\/n\)/, "the confirmation");
    await t.keys("y");
    const s = await t.until(/✗ refused:/, "the refusal");
    expect(s).toMatch(new RegExp(`✗ refused: POST /api/v1/runs/${runs.job}/actions/retry_latest: 404 NOT_FOUND: No failed or blocked steps to retry`));
    // Approving where nothing waits says so.
    await t.keys("a");
    await t.until(new RegExp(`✗ no step of run ${runs.job} waits for approval \\(run completed\\)`), "nothing to approve");
  });

  it("orders the ticket picker by ticket_picker_priority_states, unknown states last; enter opens the ticket", async () => {
    const order = (s: string) =>
      s
        .split("\n")
        .map((l) => /(ENG-\d) +(\S.*?) {2,}/.exec(l.split("││")[1] ?? "")?.[1])
        .filter(Boolean);
    let t = await tui();
    await t.until((s) => s.includes(runs["ENG-4"]!.slice(0, 8)), "the tickets to be listed");
    await t.keys("p");
    let s = await t.until(/Tickets by state: In Progress › Final Approval › Todo › Backlog › others/, "the picker");
    expect(order(s)).toEqual(["ENG-2", "ENG-1", "ENG-3", "ENG-4"]);
    expect(s).toMatch(/▸ ENG-2 +In Progress +running/);
    expect(s).toMatch(/ {2}ENG-4 +Icebox/);
    await t.keys("j", "j", "Enter");
    s = await t.until(new RegExp(`Run ${runs["ENG-3"]}`), "ENG-3 to open");
    expect(s).toMatch(/ticket ENG-3 \(Backlog\)/);
    expect(s).toMatch(/plan +pending +architect/);
    t.stop();

    t = await tui({ ORCH_CONFIG: configFile("priority.toml", '[ui]\nticket_picker_priority_states = ["Backlog", "Todo", "In Progress"]\n') });
    await t.until((x) => x.includes(runs["ENG-4"]!.slice(0, 8)), "the tickets to be listed");
    await t.keys("p");
    s = await t.until(/Tickets by state: Backlog › Todo › In Progress › others/, "the picker");
    expect(order(s)).toEqual(["ENG-3", "ENG-1", "ENG-2", "ENG-4"]);
  });

  it("takes its theme and transcript limit from the configuration file; an unknown theme is refused with the list", async () => {
    const nord = await tui();
    const nordTop = nord.colours().split("\n")[0]!;
    expect(nordTop).toContain("\x1b[38;5;152mOrchestrator");
    nord.stop();

    const path = configFile("light.toml", '[ui]\ntheme = "light"\ntranscript_line_limit = 3\n');
    const light = await tui({ ORCH_CONFIG: path });
    await light.until(/theme light/, "the light theme");
    expect(light.colours().split("\n")[0]).toContain("\x1b[38;5;31mOrchestrator");
    const done = await api("POST", "/api/v1/runs", {
      definition: "speckit.specify",
      projectId: "acme",
      title: "Short transcript",
      input: { feature_description: "Keep only the last lines", feature_id: "002-limit" },
    });
    await until(done.id, (r) => stepOf(r, "phase_1").status === "waiting_approval", "phase 1 to wait");
    await light.select(done.id);
    const s = await light.until(/-- session completed --/, "the transcript");
    const transcript = s.split("\n").filter((l) => /^ (-- session|✎|assistant:|● commit|usage:)/.test(l.split("││")[1] ?? ""));
    expect(transcript).toHaveLength(3);
    expect(s).not.toMatch(/-- session starting --/);

    const bad = spawnSync(process.execPath, [CLI, "tui"], {
      env: { ...process.env, ORCH_URL: base, ORCH_CONFIG: configFile("bad.toml", '[ui]\ntheme = "solarized"\n') },
      encoding: "utf8",
    });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toBe("orch: invalid configuration:\n  - ORCH_UI_THEME: must be one of nord, dark, light\n");
  });

  it("asks the supervisor about the selected run: the answer streams into its pane", async () => {
    // The gateway, with the supervisor's route (its contract) in front of it.
    const asked: unknown[] = [];
    const proxy: Server = createServer((req, res) => {
      const m = /^\/api\/v1\/runs\/([^/]+)\/ask$/.exec(req.url ?? "");
      if (req.method === "POST" && m) {
        let body = "";
        req.on("data", (d) => (body += d));
        req.on("end", async () => {
          asked.push({ run: m[1], auth: req.headers.authorization, ...JSON.parse(body) });
          res.writeHead(200, { "content-type": "text/event-stream" });
          for (const text of ["Phase 2 ", "waits for ", "your approval."]) {
            res.write(`event: delta\ndata: ${JSON.stringify({ text })}\n\n`);
            await sleep(100);
          }
          res.end(`event: done\ndata: {"model":"test-model"}\n\n`);
        });
        return;
      }
      const up = request(`${base}${req.url}`, { method: req.method, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
      up.on("error", () => res.destroy());
      req.pipe(up);
    });
    await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
    try {
      const t = await tui({ ORCH_URL: `http://127.0.0.1:${(proxy.address() as { port: number }).port}` });
      await t.select(runs.spec!);
      await t.keys("?");
      await t.until(new RegExp(`Ask the supervisor about run ${runs.spec}:`), "the question prompt");
      await t.type("why is it waiting?");
      await t.keys("Enter");
      const s = await t.until(/Phase 2 waits for your approval\./, "the answer");
      expect(s).toMatch(/Supervisor · why is it waiting\?/);
      await t.until(/answered by test-model/, "the answer to end");
      expect(asked).toEqual([{ run: runs.spec, auth: `Bearer ${TOKEN}`, question: "why is it waiting?" }]);
      await t.keys("Escape");
      await t.until(/Transcript · /, "the transcript back");
    } finally {
      for (const t of open.splice(0)) t.stop();
      proxy.closeAllConnections();
      await new Promise<void>((r) => proxy.close(() => r()));
    }
  });
});
