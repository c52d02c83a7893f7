import { defineConfig } from "vitest/config";

/**
 * Test tiers (vitest projects), run by `npm test` one after the other:
 * - unit: pure code and single components; libraries resolved from source (`@orch/source`).
 * - integration: the real services as processes on a real nats-server, over real sockets.
 * - browser: the web console in Debian's Chromium, driven by playwright-core, over a real stack.
 * - harness: the real coding-agent CLIs (pinned in scripts/lib/harnesses.mjs, installed on demand)
 *   driven through their providers against fake model servers on 127.0.0.1.
 */
const source = { conditions: ["@orch/source"] };

export default defineConfig({
  resolve: source,
  ssr: { resolve: { conditions: ["@orch/source"], externalConditions: ["@orch/source"] } },
  test: {
    projects: [
      {
        extends: true,
        test: {
          name: "unit",
          include: [
            "test/unit/**/*.test.ts",
            "libs/*/test/**/*.test.ts",
            "services/*/test/**/*.test.ts",
            "proto/test/**/*.test.ts",
            "deploy/*/test/**/*.test.ts",
          ],
          testTimeout: 30_000,
        },
      },
      {
        extends: true,
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          testTimeout: 90_000,
          hookTimeout: 60_000,
          // Each file starts its own nats-server and five service processes: one file at a time
          // keeps a 2-core machine honest.
          fileParallelism: false,
        },
      },
      {
        extends: true,
        test: {
          name: "browser",
          include: ["test/browser/**/*.test.ts"],
          testTimeout: 120_000,
          hookTimeout: 90_000,
          // A stack and a browser per file: one file at a time.
          fileParallelism: false,
        },
      },
      {
        extends: true,
        test: {
          name: "harness",
          include: ["test/harness/**/*.test.ts"],
          testTimeout: 120_000,
          // Installing a CLI (when missing) happens in beforeAll.
          hookTimeout: 600_000,
          // Each CLI takes a core while it runs; one file at a time keeps a 2-core machine honest.
          fileParallelism: false,
        },
      },
    ],
  },
});
