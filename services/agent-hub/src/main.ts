import { hostname } from "node:os";
import { ACK_WAIT_MS, decode, encode, getRunView, runConsumer, transitionDecoder } from "@orch/bus";
import { AgentHubConfig } from "@orch/config";
import {
  AgentReadiness,
  FINAL_SESSION_STATUSES,
  ForgeStepType,
  REPO_QUERY,
  SessionCancelRequest,
  WorkHead,
  type RunView,
  type WorkItem,
} from "@orch/contracts";
import { runService } from "@orch/service";
import { StepDiffService } from "./diffs/index.js";
import { ExecutorRouter } from "./executors/registry.js";
import { ForgeService, isForgeStep, originCredentials, runForgeStep } from "./forge/index.js";
import { GitCli, WorkspaceManager } from "./git/index.js";
import { Limits } from "./sessions/limits.js";
import { SessionRunner } from "./sessions/runner.js";
import { redactor, secretsOf, SessionStore } from "./sessions/store.js";
import { RunWatch } from "./sessions/watch.js";
import { REPO_GIT_TIMEOUT_MS, RepoService, projectReader } from "./repos.js";
import { stillWanted } from "./still-wanted.js";
import { secretRedactor, Supervisor } from "./supervisor/index.js";
import { isTicketWork, runTicketWork, TicketingService } from "./ticketing/index.js";
import { sendThrough } from "./forge/update.js";
import { isAdapterStep, runStep } from "./worker.js";

/**
 * The agent hub: takes the work run transitions dispatch (its durable consumer on the runs stream;
 * at most ORCH_AGENT_CONCURRENCY transitions at once, the rest wait in the stream; a transition that
 * dispatches nothing is acknowledged at once). Seed 000's step types run in their log-only adapters;
 * forge steps (`pr.open`, `pr.merge`) push the run's branch and call the project's forge, and `pr.sync`
 * (the polling fallback) reports what the forge says of a run's PR as signals (forge/);
 * ticket intake's work (`tickets.sync`, `ticket.update`) talks to the tracker (ticketing/), keys from
 * the environment only; every role's step runs in a worker session through the executor its role is routed to (stub, local
 * LLM, or a coding-agent harness), in a git worktree of its own. It answers session cancellations
 * (`<p>.ctl.session.cancel`), stops sessions whose attempt the run withdrew, and on start fails the
 * sessions a previous incarnation left running (their steps are retried by the core).
 */

/** Work seen again (redelivered, or dispatched this long ago) is checked against the run first. */
const STALE_WORK_MS = 60_000;

/** Only transitions that dispatch work are read; the others are acknowledged unread. */
const decodeWork = transitionDecoder(WorkHead, { only: "work" });
await runService({
  name: "agent-hub",
  config: AgentHubConfig,
  async start({ cfg, logger, bus, signal }) {
    const hubId = cfg.ORCH_INSTANCE_ID ?? hostname();
    const secrets = secretsOf(process.env, [cfg.ORCH_CODEX_API_KEY_ENV, cfg.ORCH_CLAUDE_API_KEY_ENV, cfg.ORCH_OPENCODE_API_KEY_ENV, "LOCAL_LLM_API_KEY"]);
    const store = new SessionStore(bus, logger, redactor(secrets));
    const router = new ExecutorRouter(cfg, logger);
    // Every executor the routing names is built now, so a bad setting stops the hub at once.
    for (const name of router.routed()) {
      try {
        router.get(name);
      } catch (err) {
        process.stderr.write(`orch-agent-hub: executor ${name}: ${(err as Error).message}\n`);
        process.exit(2);
      }
    }
    // A private https origin is cloned and fetched with the forge's token, through askpass, as pushes are.
    const workspaces = new WorkspaceManager(cfg, GitCli.fromConfig(cfg), logger, {
      credentials: originCredentials({ cfg, logger: logger.child({ component: "workspace" }) }),
    });
    // Forge I/O (pushes, pull requests, CI logs); tokens are read from the environment when used.
    const forge = new ForgeService({ cfg, git: GitCli.fromConfig(cfg), workspaces, project: projectReader(bus), logger: logger.child({ component: "forge" }) });
    // Worktree entries of sessions a crash interrupted (their directories gone) are pruned.
    await workspaces.recover().catch((err: unknown) => logger.warn({ err }, "could not tidy the workspace"));
    const runner = new SessionRunner({
      bus,
      logger,
      cfg,
      hubId,
      store,
      limits: new Limits(cfg.ORCH_EXECUTOR_CONCURRENCY, cfg.ORCH_PROVIDER_CONCURRENCY, cfg.ORCH_AGENT_CONCURRENCY),
      router,
      workspaces,
      watch: new RunWatch(bus, logger),
      signal,
      forge,
    });

    // Sessions a previous process of this hub left unfinished: their processes died with it (or are
    // killed now), and their steps are reported failed, to be retried.
    let recovered = 0;
    for (const s of await store.all()) {
      if (FINAL_SESSION_STATUSES.has(s.record.status) || s.record.hub !== hubId) continue;
      const log = logger.child({ runId: s.record.runId, sessionId: s.record.sessionId });
      await runner.recoverLost(s, log, "the agent hub restarted").catch((err: unknown) => log.error({ err }, "could not recover a session"));
      recovered++;
    }
    if (recovered > 0) logger.warn({ recovered }, "failed the sessions the previous agent hub left running; their steps will be retried");

    const s = bus.names.subjects;
    // Cancel a session by id (the API's CancelSession): the hub that runs it answers.
    const ctl = bus.nc.subscribe(s.ctl("session.cancel"), {
      callback: (_err, msg) => {
        const d = decode(SessionCancelRequest, msg.data);
        if (!d.ok) return;
        const ok = runner.cancel(d.value.sessionId, d.value.reason ?? "cancelled", d.value.actor);
        if (ok) msg.respond(encode(SessionCancelRequest, d.value));
      },
    });
    // Readiness of the executors this hub routes roles to (the gateway's /ready with ORCH_CHECK_LLM).
    const readiness = bus.nc.subscribe(s.query("agents.ready"), {
      queue: "agent-hub",
      callback: (_err, msg) => {
        void (async () => {
          const executors = await Promise.all(
            router.routed().map(async (name) => {
              const e = router.get(name);
              if (!e) return { name, ok: false, detail: "not available on this agent hub" };
              if (!e.check) return { name, ok: true, detail: "no backend to check" };
              const c = await e.check(AbortSignal.timeout(4_000)).catch((err: unknown) => ({ ok: false, detail: (err as Error).message }));
              return { name, ...c };
            }),
          );
          msg.respond(encode(AgentReadiness, { ok: executors.every((e) => e.ok), hub: hubId, executors }));
        })().catch((err: unknown) => logger.warn({ err }, "readiness check failed"));
      },
    });

    // Repository operations of the surfaces (seed 004's branches, CodeMachine import): they run
    // here, where the repositories are; any hub answers (the gateway never touches a repository).
    const repos = new RepoService({
      git: GitCli.fromConfig(cfg, { timeoutMs: REPO_GIT_TIMEOUT_MS, networkTimeoutMs: REPO_GIT_TIMEOUT_MS }),
      workspaces,
      project: projectReader(bus),
      logger: logger.child({ component: "repos" }),
    });
    const repoQueries = bus.nc.subscribe(s.query(REPO_QUERY), {
      queue: "agent-hub",
      callback: (_err, msg) => {
        repos
          .answer(msg.data, bus.nc.info?.max_payload)
          .then((out) => msg.respond(out))
          .catch((err: unknown) => logger.warn({ err }, "could not answer a repository request"));
      },
    });

    // The supervisor: questions about a run, answered by a model from what the run recorded.
    const supervisorKeys = [cfg.ORCH_SUPERVISOR_API_KEY, cfg.OPENROUTER_API_KEY].filter((k): k is string => k !== undefined);
    const redactKnown = secretRedactor([...secrets, ...supervisorKeys]);
    const supervisor = new Supervisor({
      bus,
      cfg,
      logger: logger.child({ component: "supervisor" }),
      redact: redactKnown,
    }).start();

    // A step's diff (what a gate asks a person to approve), from the commits its sessions made.
    const diffs = new StepDiffService({
      bus,
      git: GitCli.fromConfig(cfg, { timeoutMs: 15_000, maxOutputBytes: 8 * 1024 * 1024 }),
      repository: (projectId) => repos.repository(projectId),
      redact: redactKnown,
      logger: logger.child({ component: "diffs" }),
    }).start();

    // Ticket intake's tracker I/O: keys only from the environment (LINEAR_API_KEY, SHORTCUT_API_TOKEN, …).
    const ticketing = new TicketingService({
      settings: {
        "ticketing.linear": { apiUrl: cfg.ORCH_LINEAR_API_URL, timeoutMs: cfg.ORCH_TRACKER_TIMEOUT_MS },
        "ticketing.shortcut": { apiUrl: cfg.ORCH_SHORTCUT_API_URL, timeoutMs: cfg.ORCH_TRACKER_TIMEOUT_MS },
        // Issues are the forges': their API (GitHub Enterprise, self-managed GitLab) and tokens.
        "ticketing.github_issues": { apiUrl: cfg.ORCH_GITHUB_API_URL, timeoutMs: cfg.ORCH_TRACKER_TIMEOUT_MS },
        "ticketing.gitlab_issues": { apiUrl: cfg.ORCH_GITLAB_API_URL, timeoutMs: cfg.ORCH_TRACKER_TIMEOUT_MS },
      },
    });
    const ticketWork = {
      service: ticketing,
      send: sendThrough(bus),
      logger: logger.child({ component: "ticketing" }),
      signal,
      updateTries: cfg.ORCH_TICKET_UPDATE_TRIES,
      updateBackoffMs: cfg.ORCH_TICKET_UPDATE_BACKOFF_MS,
    };

    const run = (item: WorkItem, correlationId?: string) =>
      isTicketWork(item)
        ? runTicketWork(item, ticketWork, correlationId)
        : isForgeStep(item)
          ? runForgeStep(item, forge, { bus, logger, signal }, correlationId)
          : isAdapterStep(item)
            ? runStep(item, { bus, logger, signal }, correlationId)
            : runner.run(item, correlationId);
    const consumer = await runConsumer(bus, {
      stream: bus.names.streams.runs,
      consumer: bus.names.consumers.agentHub,
      decode: decodeWork,
      origin: "agent-hub",
      concurrency: cfg.ORCH_AGENT_CONCURRENCY,
      heartbeatMs: Math.floor(ACK_WAIT_MS.agentHub / 3),
      async handler({ head }, ctx) {
        let work = head?.work;
        if (!work?.length) return;
        // Seen before (this hub or another died holding it) or long ago: run only what the run
        // still waits for, so a replay of old transitions never runs a finished attempt again.
        if (ctx.deliveries > 1 || Date.now() - head!.at > STALE_WORK_MS) {
          const view = await getRunView(bus, head!.runId);
          work = work.filter((w) => view !== null && view !== undefined && stillWanted(view, w));
        }
        await Promise.all(work.map((w) => run(w, ctx.correlationId)));
      },
    });
    logger.info({ hub: hubId, concurrency: cfg.ORCH_AGENT_CONCURRENCY, executor: cfg.ORCH_AGENT_EXECUTOR, routed: router.routed() }, "taking work");
    if (cfg.ORCH_AGENT_EXECUTOR === "stub") logger.info("role steps run in the stub executor: offline and deterministic, no model (ORCH_AGENT_EXECUTOR=stub)");
    return {
      async stop() {
        ctl.unsubscribe();
        readiness.unsubscribe();
        repoQueries.unsubscribe();
        supervisor.stop();
        diffs.stop();
        await consumer.stop();
      },
    };
  },
});
