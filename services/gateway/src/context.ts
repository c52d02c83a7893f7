import type { Bus, TopologySpec } from "@orch/bus";
import type { GatewayConfig } from "@orch/config";
import type { KeyStore, RunsApi } from "@orch/runs";
import type { Authenticator } from "./auth.js";
import type { SseLimits } from "./sse.js";

/** What every surface (our API and each seed's) is given: the bus, the shared runs API, the settings. */
export interface Surface {
  bus: Bus;
  cfg: Readonly<GatewayConfig>;
  runs: RunsApi;
  /** Webhook delivery ids already applied (the `deliveries` bucket: claimed once, expiring). */
  deliveries: KeyStore;
  auth: Authenticator;
  topology: TopologySpec;
  version: string;
  /** Heartbeat and memory bounds of every event stream. */
  sse: SseLimits;
  /** The rate limit of POSTs (per client and route); false with ORCH_RATE_LIMIT_ENABLED=false, for every route. */
  rateLimit: { max: number; timeWindow: number } | false;
}
