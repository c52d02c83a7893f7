#!/usr/bin/env node
import { readFileSync } from "node:fs";
import { Command, CommanderError, Option } from "commander";
import { act, ask, diff, logs, runs, schedules, show, stdio, submit, timers, watch, type ActionName } from "./commands.js";
import { CliError, EXIT_CODE_HELP, ExitCode } from "./errors.js";
import { clientOf, DEFAULT_URL, type GlobalOptions } from "./settings.js";
import { start, START_OVERRIDES } from "./start.js";

/**
 * `orch`: Orchestrator's command line and terminal UI. Every command but `start` talks to the
 * gateway over HTTP and SSE (`ORCH_URL`, `ORCH_API_TOKEN`); docs/cli.md describes them all.
 */

const collect = (v: string, prev: string[] = []) => [...prev, v];

const program = new Command("orch")
  .description("Orchestrator's command line: submit, list, watch and act on runs; the terminal UI; the whole system (start)")
  .version((JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }).version)
  .addOption(new Option("--url <url>", `the gateway (default: $ORCH_URL, else ${DEFAULT_URL})`))
  .addOption(new Option("--token <token>", "API token (default: $ORCH_API_TOKEN)"))
  .addOption(new Option("--actor <name>", "who acts, recorded in the run's events (default: $ORCH_ACTOR, else your user name)"))
  .addOption(new Option("--json", "machine output: one JSON document, or NDJSON for streams"))
  .showHelpAfterError("(orch --help lists the commands and options)")
  .addHelpText(
    "after",
    `\nEnvironment: ORCH_URL, ORCH_API_TOKEN, ORCH_ACTOR; the terminal UI reads [ui] of the configuration file\n(ORCH_CONFIG, ORCHESTRATOR_CONFIG, ~/.config/orchestrator/config.toml) and ORCH_UI_*.\n\n${EXIT_CODE_HELP}\n\nSee docs/cli.md.`,
  )
  .exitOverride();

/** Runs a command's body: its exit code, or a CliError's, printed on stderr. */
function action<A extends unknown[]>(fn: (g: GlobalOptions & Record<string, any>, ...args: A) => Promise<number | void>) {
  return async (...args: unknown[]) => {
    const cmd = args.at(-1) as Command;
    const opts = cmd.optsWithGlobals() as GlobalOptions & Record<string, any>;
    const positional = args.slice(0, -2) as A;
    const code = await fn(opts, ...positional);
    process.exitCode = typeof code === "number" ? code : ExitCode.Ok;
  };
}

program
  .command("submit")
  .description("submit a seed-000 job packet (a file, or - for stdin) or a workflow run (a file with `definition`, or --definition and flags)")
  .argument("[file]", "JSON or YAML: a job packet {goal, steps, limits}, or a run {definition, projectId, input, labels, …}")
  .option("-d, --definition <id>", "workflow definition: id or id@version")
  .option("-p, --project <id>", "project id (default _default)")
  .option("--title <title>", "the run's title")
  .option("-i, --input <key=value>", "an input field (repeatable)", collect)
  .option("--input-file <file>", "input fields from a JSON or YAML object")
  .option("-l, --label <key=value>", "a label (repeatable)", collect)
  .option("--idempotency-key <key>", "the same key always names the same run (created once)")
  .option("-w, --watch", "then watch it to its end (exit 1 if it fails)")
  .action(
    action(async (g, file?: string) => {
      const api = clientOf(g);
      const { id } = await submit(api, file, g, stdio);
      if (g.watch) return watch(api, id, { json: g.json }, stdio);
    }),
  );

program
  .command("runs")
  .description("list runs, newest first")
  .option("-p, --project <id>", "only this project's")
  .option("-s, --status <status>", "only runs in this status (repeatable, or a,b)", collect)
  .option("-d, --definition <id>", "only runs of this definition")
  .option("--view <view>", "only runs of this view (job, speckit, protocol, task, ticket, …)")
  .option("-l, --label <key=value>", "only runs with this label (repeatable)", collect)
  .option("-n, --limit <n>", "at most n (1-500, default 50)")
  .action(action(async (g) => runs(clientOf(g), g, stdio)));

program
  .command("show")
  .description("a run with its steps")
  .argument("<run>", "run id")
  .action(action(async (g, id: string) => show(clientOf(g), id, g, stdio)));

program
  .command("watch")
  .description("follow a run live: one line per step change, then a summary; exit 1 if it fails or is cancelled")
  .argument("<run>", "run id")
  .action(action(async (g, id: string) => watch(clientOf(g), id, g, stdio)));

const actionCommand = (name: ActionName, description: string, configure: (c: Command) => Command = (c) => c) =>
  configure(program.command(name).description(description).argument("<run>", "run id")).action(
    action(async (g, id: string) => {
      await act(clientOf(g), name, id, g, stdio);
    }),
  );

actionCommand("approve", "approve the step waiting for approval (or --step), with the revision just read", (c) =>
  c.option("--step <id>", "the step (default: the one waiting)").option("-m, --comment <text>", "recorded with the approval"),
);
actionCommand("reject", "reject the step waiting for approval (or --step): it is reworked, told why", (c) =>
  c.option("--step <id>", "the step (default: the one waiting)").option("-r, --reason <text>", "why: recorded, and told to the agent"),
);
actionCommand("cancel", "cancel a run", (c) => c.option("-r, --reason <text>", "recorded with it"));
actionCommand("retry", "run the latest failed step again (or --step)", (c) =>
  c.option("--step <id>", "this step").option("-r, --reason <text>", "feedback for the agent: what went wrong"),
);
actionCommand("resume", "resume a paused run", (c) => c.option("-r, --reason <text>", "recorded with it"));

program
  .command("logs")
  .description("a step's agent session transcript (every session of the run without --step)")
  .argument("<run>", "run id")
  .option("--step <id>", "only this step's sessions")
  .option("-f, --follow", "follow running sessions, and the run's next ones, until it finishes")
  .action(action(async (g, id: string) => logs(clientOf(g), id, g, stdio)));

program
  .command("diff")
  .description("what a step's attempt committed, as a patch (the step waiting for approval by default)")
  .argument("<run>", "run id")
  .option("--step <id>", "this step (default: the one waiting for approval, else the latest that started)")
  .option("--attempt <n>", "this attempt (default: the step's current one)")
  .action(action(async (g, id: string) => diff(clientOf(g), id, g, stdio)));

program
  .command("schedules")
  .description("schedules: when each is due, what it creates, its next due time")
  .option("-p, --project <id>", "only this project's")
  .action(action(async (g) => schedules(clientOf(g), g, stdio)));

program
  .command("timers")
  .description("the scheduler's armed timers, soonest first")
  .option("--run <id>", "only this run's")
  .action(action(async (g) => timers(clientOf(g), g, stdio)));

program
  .command("ask")
  .description("ask the supervisor about a run; the answer streams as it is written")
  .argument("<run>", "run id")
  .argument("<question...>", "the question")
  .option("--step <id>", "about this step of the run")
  .action(action(async (g, id: string, question: string[]) => ask(clientOf(g), id, question.join(" "), g, stdio)));

program
  .command("tui")
  .description("the terminal UI: runs, steps, live transcript, approvals, tickets, the supervisor")
  .action(
    action(async (g) => {
      // Ink reads CI / CONTINUOUS_INTEGRATION when it loads and then draws nothing until the program
      // exits; on a real terminal (a CI job's tmux pane, an ssh session with CI=true) that is a blank
      // screen, so the terminal wins.
      if (process.stdin.isTTY && process.stdout.isTTY) {
        delete process.env.CI;
        delete process.env.CONTINUOUS_INTEGRATION;
      }
      const { runTui } = await import("./tui/main.js");
      return runTui(clientOf(g));
    }),
  );

const startCmd = program
  .command("start")
  .description("run the whole system as npm start does (nats-server and the five services), with seed 003's provider overrides")
  .option("--print-env", "print the environment the overrides set, and exit");
for (const o of START_OVERRIDES) startCmd.addOption(new Option(`${o.flag} <provider>`, `sets ${o.env}`).choices(Object.keys(o.values)));
startCmd.action(action(async (g) => start(g, g)));

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // --help and --version end here too, with code 0.
    process.exitCode = err.exitCode === 0 ? ExitCode.Ok : ExitCode.Usage;
  } else if (err instanceof CliError) {
    process.stderr.write(`orch: ${err.message}\n`);
    process.exitCode = err.exitCode;
  } else {
    process.stderr.write(`orch: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = ExitCode.Server;
  }
}
// Kept-alive sockets and stream readers must not hold the process open once the command is done.
process.stdout.write("", () => process.exit(process.exitCode ?? ExitCode.Ok));
