import type { FastifyInstance } from "fastify";
import { stringify } from "yaml";
import type { Surface } from "../../context.js";
import { PROMETHEUS_CONTENT_TYPE, createGatewayMetrics, readOpsSnapshot } from "../../metrics.js";
import { route } from "../../routing.js";
import { openApiDocument } from "./docs.js";

/**
 * Operational routes at the root, open like /health and /docs: `GET /metrics` (Prometheus text;
 * seed 001 and seed 004 both serve it, seed 001 with `orchestrator_queue_size`) and seed 001's
 * `GET /openapi.yaml`. The plugin is not encapsulated (`skip-override`, what `fastify-plugin`
 * does): its `onResponse` hook must see every route of the gateway, so it is registered first.
 */
export async function metricsRoutes(app: FastifyInstance, opts: Surface): Promise<void> {
  const metrics = createGatewayMetrics(() => readOpsSnapshot(opts));

  app.addHook("onResponse", async (req, reply) => {
    // The route pattern (`/api/orchestrator/jobs/:id`), never the raw URL: bounded cardinality.
    const pattern = req.routeOptions.url ?? "unmatched";
    metrics.observeRequest(req.method, pattern, reply.statusCode, reply.elapsedTime / 1000);
  });

  route(
    app,
    {
      method: "GET",
      url: "/metrics",
      operationId: "metrics",
      tags: ["ops"],
      summary: "Prometheus metrics",
      description: [
        "Prometheus text format 0.0.4, open (no token). Process metrics (`orch_gateway_` prefix); HTTP requests",
        "by method, route pattern and status (`orch_gateway_http_requests_total`,",
        "`orch_gateway_http_request_duration_seconds`); read from JetStream and the run index at scrape time:",
        "`orchestrator_queue_size` (seed 001's queued tasks), `orch_gateway_work_queue_messages{queue}`,",
        "`orch_gateway_consumer_pending|ack_pending|redelivered{stream,consumer}`, `orch_gateway_dead_letters`,",
        "`orch_gateway_stream_messages|bytes{stream}`, `orch_gateway_runs{status}` and `orch_gateway_nats_up`.",
        "When NATS does not answer, the scrape still answers, with `orch_gateway_nats_up 0`.",
      ].join("\n"),
      auth: "none",
      responses: { 200: { description: "Prometheus text exposition", contentType: "text/plain" } },
    },
    async (_req, reply) => {
      const body = await metrics.registry.metrics();
      return reply.type(PROMETHEUS_CONTENT_TYPE).header("cache-control", "no-store").send(body);
    },
  );

  let yaml: string | undefined;
  route(
    app,
    {
      method: "GET",
      url: "/openapi.yaml",
      operationId: "openapiYamlRoot",
      tags: ["ops"],
      summary: "The OpenAPI 3.1 document (YAML), at seed 001's path",
      description: "The same document as `/docs/openapi.yaml`, written without YAML anchors and aliases (any YAML parser reads it with its default limits).",
      auth: "none",
      responses: { 200: { description: "OpenAPI 3.1", contentType: "application/yaml" } },
    },
    async (_req, reply) => {
      yaml ??= stringify(openApiDocument(app, opts.version), { lineWidth: 0, aliasDuplicateObjects: false });
      return reply.type("application/yaml; charset=utf-8").send(yaml);
    },
  );
}

// Not encapsulated: the hook above applies to every route registered after this plugin.
(metricsRoutes as unknown as Record<symbol, unknown>)[Symbol.for("skip-override")] = true;
(metricsRoutes as unknown as Record<symbol, unknown>)[Symbol.for("fastify.display-name")] = "metrics";
