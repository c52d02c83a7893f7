import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import type { Surface } from "../../context.js";
import { jsonTooDeep, toHttp } from "../../errors.js";
import { route } from "../../routing.js";
import { JobOutSchema } from "../protocols/common.js";
import { applyWebhook } from "./apply.js";
import { checkGitHubAppTarget, normalizeWebhook, verifyWebhook, type WebhookProvider } from "./index.js";

/**
 * Seed 004's webhooks: `POST /webhooks/github` and `POST /webhooks/gitlab`. A delivery is
 * authenticated by its provider's proof (GitHub's `X-Hub-Signature-256` HMAC of the raw body,
 * GitLab's `X-Gitlab-Token`), normalized (webhooks/normalize.ts) and sent to the run it is about as
 * one signal (webhooks/apply.ts): the core decides what it does, by the run's definition. Errors are seed 004's `{"detail": "…"}`.
 *
 * Not behind the API bearer: GitHub and GitLab cannot send one, so the routes are open to it and
 * authenticate deliveries by signature instead. Seed 004 puts them behind the bearer; so that its
 * clients (a CI script posting results with the API token) keep working, a valid
 * `Authorization: Bearer <ORCH_API_TOKEN>` authenticates a delivery too. With no secret configured
 * for a provider, its deliveries are accepted unsigned (seed 004's behaviour, warned about at
 * start), unless the API token is set: then only the bearer opens them (the API is not open, so
 * neither are its webhooks).
 *
 * A delivery id seen before (`X-GitHub-Delivery`; GitLab's `Idempotency-Key`, `X-Gitlab-Webhook-UUID`
 * or `X-Gitlab-Event-UUID`) is answered 200 "Duplicate delivery ignored" and changes nothing: GitHub
 * redelivers with the same id when it timed out waiting for an answer and counts anything but 2xx as
 * a failed delivery. Seen ids are claimed in the deliveries bucket (durable, shared by every gateway, kept for days);
 * a delivery that was not applied (no run for its branch, or an error) gives its id back so a
 * redelivery is applied.
 */

const TAGS = ["webhooks"];
/** GitHub caps payloads at 25 MB; pushes of a few commits are a few KiB. */
const MIN_BODY_LIMIT = 5 * 1024 * 1024;

const Detail = z.object({ detail: z.string() });
const Job = JobOutSchema.describe("The QA job a CI success started (ORCH_AUTO_QA_ON_CI), in seed 004's job shape");
const Answer = z.object({ message: z.string(), job: Job.nullable() });

const REFUSED: Record<WebhookProvider, string> = { github: "Invalid webhook signature", gitlab: "Invalid webhook token" };
const OTHER_APP = "Delivery is for another GitHub App";
const DELIVERY_NS = "delivery";

export async function webhookRoutes(app: FastifyInstance, opts: Surface): Promise<void> {
  const { cfg } = opts;
  const secrets: Record<WebhookProvider, string | undefined> = {
    github: cfg.GITHUB_WEBHOOK_SECRET ?? cfg.TASKSGODZILLA_WEBHOOK_TOKEN,
    gitlab: cfg.GITLAB_WEBHOOK_TOKEN ?? cfg.TASKSGODZILLA_WEBHOOK_TOKEN,
  };

  // Said once, at start: which deliveries are taken without proof.
  for (const p of ["github", "gitlab"] as const) {
    if (secrets[p]) continue;
    const name = p === "github" ? "GITHUB_WEBHOOK_SECRET" : "GITLAB_WEBHOOK_TOKEN";
    if (opts.auth.enabled)
      app.log.warn(
        `/webhooks/${p}: neither ${name} nor TASKSGODZILLA_WEBHOOK_TOKEN is set and ORCH_API_TOKEN is: deliveries are refused (401) unless they carry the API bearer token`,
      );
    else app.log.warn(`/webhooks/${p}: neither ${name} nor TASKSGODZILLA_WEBHOOK_TOKEN is set: unsigned deliveries are accepted (set a secret in production)`);
  }

  app.setErrorHandler((err, req, reply) => {
    const { status, body } = toHttp(err);
    if (status >= 500) req.log.error({ err }, "webhook failed");
    return reply.status(status).send({ detail: body.error.message });
  });

  // The raw bytes are what the signature covers: kept as they came, parsed after verification.
  app.removeAllContentTypeParsers();
  for (const type of ["application/json", "application/x-www-form-urlencoded"]) {
    app.addContentTypeParser(type, { parseAs: "buffer" }, (_req, body, done) => done(null, body));
  }

  const bodyLimit = Math.max(cfg.ORCH_MAX_REQUEST_BYTES, MIN_BODY_LIMIT);

  /** Whether the request carries the API bearer token (only asked when it sends one). */
  async function hasApiBearer(req: FastifyRequest): Promise<boolean> {
    const h = req.headers.authorization;
    if (!opts.auth.enabled || typeof h !== "string" || !/^bearer\s+/i.test(h)) return false;
    try {
      return (await opts.auth.authenticate(req)).kind === "admin";
    } catch {
      return false;
    }
  }

  function parseBody(raw: Buffer, contentType: string | undefined): unknown {
    const text = raw.toString("utf8");
    if (/^application\/x-www-form-urlencoded/i.test(contentType ?? "")) {
      // GitHub's "application/x-www-form-urlencoded" content type: the JSON is the `payload` field.
      const payload = new URLSearchParams(text).get("payload");
      if (payload === null) throw new SyntaxError("no payload field");
      return JSON.parse(payload);
    }
    return JSON.parse(text);
  }

  async function handle(provider: WebhookProvider, req: FastifyRequest, reply: FastifyReply): Promise<unknown> {
    const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const secret = secrets[provider];
    let authenticated = false;
    if (secret !== undefined) {
      const verdict = await verifyWebhook(provider, secret, req.headers, raw);
      authenticated = verdict.ok || (await hasApiBearer(req));
      if (!authenticated) {
        req.log.warn({ provider, reason: verdict.ok ? undefined : verdict.reason }, "webhook refused");
        return reply.status(401).send({ detail: REFUSED[provider] });
      }
    } else if (opts.auth.enabled) {
      authenticated = await hasApiBearer(req);
      if (!authenticated) {
        req.log.warn({ provider, reason: "no_secret_configured" }, "webhook refused");
        return reply.status(401).send({ detail: REFUSED[provider] });
      }
    }

    // GITHUB_APP_ID: an app's delivery must be for this app (checked once the sender is known).
    if (provider === "github" && !checkGitHubAppTarget(cfg.GITHUB_APP_ID, req.headers).ok) {
      req.log.warn({ provider, reason: "other_app", target: req.headers["x-github-hook-installation-target-id"] }, "webhook refused");
      return reply.status(401).send({ detail: OTHER_APP });
    }

    let body: unknown;
    try {
      body = parseBody(raw, req.headers["content-type"]);
    } catch {
      return reply.status(400).send({ detail: "Invalid JSON body" });
    }
    // The bound every other route's body has (app.ts): this one is parsed here, after verification.
    if (jsonTooDeep(body)) return reply.status(400).send({ detail: "Invalid JSON body" });

    const e = normalizeWebhook(provider, req.headers, body);
    const log = { provider, event: e.event, kind: e.kind, delivery: e.deliveryId, branch: e.branch };
    if (e.kind === "unknown") {
      req.log.info(log, "webhook ignored");
      return reply.status(202).send({ message: "Event ignored", job: null });
    }

    let claimed: string | undefined;
    if (e.deliveryId !== undefined) {
      const key = `${provider}:${e.deliveryId}`;
      const c = await opts.deliveries.claim(DELIVERY_NS, key, { at: Date.now(), event: e.event });
      if (!c.created) {
        req.log.info(log, "webhook delivery seen before: ignored");
        return reply.status(200).send({ message: "Duplicate delivery ignored", job: null });
      }
      claimed = key;
    }
    const giveBack = async () => {
      if (claimed) await opts.deliveries.delete(DELIVERY_NS, claimed).catch((err: unknown) => req.log.warn({ err }, "could not release a webhook delivery id"));
    };

    try {
      const r = await applyWebhook({ runs: opts.runs, correlationId: req.id }, e, authenticated);
      switch (r.status) {
        case "ignored":
          req.log.info({ ...log, runId: r.runId, reason: r.reason }, "webhook ignored");
          return reply.status(202).send({ message: "Event ignored", job: null });
        case "no_run":
          await giveBack();
          req.log.info(log, "webhook: no run for its branch");
          return reply.status(404).send({ detail: `No protocol run for branch ${r.branch}` });
        case "recorded":
          req.log.info({ ...log, runId: r.runId, effects: r.effects }, "webhook recorded");
          return reply.status(200).send({ message: "Webhook recorded", job: r.job });
      }
    } catch (err) {
      await giveBack();
      throw err;
    }
  }

  const headers = {
    github: {
      "X-GitHub-Event": "The event (`push`, `pull_request`, `check_run`, `check_suite`, `status`, `workflow_run`; `ping` and others are ignored).",
      "X-GitHub-Delivery": "The delivery id: a delivery seen before is ignored.",
      "X-Hub-Signature-256": "`sha256=<hex HMAC-SHA256 of the raw body>` with GITHUB_WEBHOOK_SECRET (or TASKSGODZILLA_WEBHOOK_TOKEN).",
      "X-GitHub-Hook-Installation-Target-Type": "`integration` for a GitHub App's delivery (`repository`, `organization`, … otherwise).",
      "X-GitHub-Hook-Installation-Target-ID": "The app's id on an app's delivery: with GITHUB_APP_ID set it must be that id.",
    },
    gitlab: {
      "X-Gitlab-Event": "The event (`Push Hook`, `Merge Request Hook`, `Pipeline Hook`, `Job Hook`; others are ignored).",
      "X-Gitlab-Token": "GITLAB_WEBHOOK_TOKEN (or TASKSGODZILLA_WEBHOOK_TOKEN).",
      "Idempotency-Key": "The delivery id (else `X-Gitlab-Webhook-UUID`, else `X-Gitlab-Event-UUID`): a delivery seen before is ignored.",
    },
  };

  for (const provider of ["github", "gitlab"] as const) {
    const name = provider === "github" ? "GitHub" : "GitLab";
    route(
      app,
      {
        method: "POST",
        url: `/webhooks/${provider}`,
        operationId: `${provider}Webhook`,
        tags: TAGS,
        summary: `A ${name} webhook delivery`,
        description: [
          provider === "github"
            ? "Verified with `X-Hub-Signature-256` over the raw body (JSON, or GitHub's form encoding with a `payload` field)."
            : "Verified with `X-Gitlab-Token`.",
          "Open to the API bearer (GitHub and GitLab cannot send one): authenticated by the provider's proof, or by the",
          "API bearer token. With no secret configured, unsigned deliveries are accepted unless ORCH_API_TOKEN is set.",
          "The run is the one its branch names (`orch/run/<runId>`, a protocol's name, a feature id, a ticket's branch).",
          "The delivery is sent to the run as one signal (`ci_report`, `pr_opened`, `pr_closed`, `pr_merged`, or `set_facts`),",
          "and the run's definition decides what it does: on a protocol, CI success completes the latest step (or starts",
          "its QA: ORCH_AUTO_QA_ON_CI), a failure fails it and blocks the protocol (and, with ORCH_CI_FIX_MAX_ATTEMPTS, runs",
          "it again, bounded), a merged pull request completes the protocol. See docs/http-api.md.",
        ].join("\n"),
        auth: "none",
        bodyLimit,
        body: z.unknown().describe(`The ${name} event payload, as ${name} sends it`),
        headers: headers[provider],
        responses: {
          200: { description: "Recorded on the run (`job`: the QA job a CI success started), or a delivery seen before", schema: Answer },
          202: { description: "An event that is not acted on (`ping`, a tag push, an unknown event, a finished run): `Event ignored`", schema: Answer },
          400: { description: "Not JSON", schema: Detail },
          401: { description: provider === "github" ? `${REFUSED[provider]}; or, with GITHUB_APP_ID, "${OTHER_APP}"` : REFUSED[provider], schema: Detail },
          404: { description: "No protocol run for branch <branch>", schema: Detail },
          413: { description: "Body too large", schema: Detail },
          415: { description: "Not JSON (or GitHub's form encoding)", schema: Detail },
          429: { description: "Rate limited (ten times ORCH_RATE_LIMIT_MAX per window: a busy repository sends bursts)", schema: Detail },
          503: { description: "The job store is unavailable", schema: Detail },
        },
      },
      async (req, reply) => handle(provider, req, reply),
      { rateLimit: opts.rateLimit && { max: opts.rateLimit.max * 10, timeWindow: opts.rateLimit.timeWindow } },
    );
  }
}
