import { GatewayConfig } from "@orch/config";
import { runService } from "@orch/service";
import { buildApp } from "./app.js";

const VERSION = process.env.npm_package_version ?? "0.1.0";

/** The gateway: HTTP, SSE and webhooks in front of the bus. No business logic lives here. */
await runService({
  name: "gateway",
  config: GatewayConfig,
  async start({ cfg, logger, bus, topology }) {
    const app = await buildApp({ cfg, bus, topology, logger, version: VERSION });
    await app.listen({ port: cfg.PORT, host: cfg.HOST });
    const addr = app.server.address();
    const port = typeof addr === "object" && addr ? addr.port : cfg.PORT;
    logger.info({ host: cfg.HOST, port, url: `http://${cfg.HOST}:${port}` }, "gateway listening");
    return { stop: () => app.close() };
  },
});
