import { GatewayConfig } from "@orch/config";
import { runService } from "@orch/service";
import { buildApp } from "./app.js";

const VERSION = process.env.npm_package_version ?? "0.1.0";

const LOOPBACK = new Set(["127.0.0.1", "::1", "localhost"]);

/** The gateway: HTTP, SSE and webhooks in front of the bus. No business logic lives here. */
await runService({
  name: "gateway",
  config: GatewayConfig,
  async start({ cfg, logger, bus, topology }) {
    const app = await buildApp({ cfg, bus, topology, logger, version: VERSION });
    let host = cfg.HOST;
    if (!cfg.ORCH_API_TOKEN) {
      if (!LOOPBACK.has(host)) {
        logger.warn(
          { requested: host },
          `AUTH IS OFF (no ORCH_API_TOKEN): refusing to listen on ${host}; listening on 127.0.0.1 only. Set ORCH_API_TOKEN to serve other hosts.`,
        );
        host = "127.0.0.1";
      } else {
        logger.warn("AUTH IS OFF (no ORCH_API_TOKEN): the API is open to anyone who can reach 127.0.0.1. Set ORCH_API_TOKEN to require a bearer token.");
      }
    }
    await app.listen({ port: cfg.PORT, host });
    const addr = app.server.address();
    const port = typeof addr === "object" && addr ? addr.port : cfg.PORT;
    logger.info({ host, port, url: `http://${host}:${port}`, auth: cfg.ORCH_API_TOKEN ? "bearer" : "off" }, "gateway listening");
    return { stop: () => app.close() };
  },
});
