#!/usr/bin/env node
// `npm test`: installs what is missing (dependencies, nats-server), builds, then runs every test
// tier against real parts (a real nats-server, the services as processes, real sockets) and ends
// with one line, `N passed, N failed`, summed over all tiers.
//
//   npm test                      every tier
//   npm test -- --tier unit       one tier (repeatable)
//   npm test -- <vitest args>     passed through, e.g. a file filter or -t "name"
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { bootstrap } from "./lib/bootstrap.mjs";
import { ensureHarnesses, HarnessInstallError } from "./lib/harnesses.mjs";
import { fetchDebianNats, ROOT, versionOf } from "./lib/nats.mjs";
import { ensureSystemTools, SystemToolError } from "./lib/system-tools.mjs";

/**
 * The tiers, in order. `nats-2.9` runs the integration tests that exercise NATS again on Debian
 * bookworm's nats-server 2.9.10, the oldest server we support (fetched with `apt-get download`,
 * nothing installed); where no such package can be had it says so and is skipped.
 */
const NATS_29_BIN = join(process.env.ORCH_TOOLS_DIR ?? join(ROOT, ".tools"), "nats-server-2.9", "bin", "nats-server");
const TIERS = {
  // The formatter's check (Prettier, .prettierrc.json): one test, failed when any file differs.
  format: {
    run() {
      const r = spawnSync(process.execPath, [join(ROOT, "node_modules", "prettier", "bin", "prettier.cjs"), "--check", "--log-level", "warn", "."], {
        cwd: ROOT,
        stdio: "inherit",
      });
      if (r.status !== 0) process.stderr.write("format: run `npm run format` to fix the files above\n");
      return r.status === 0;
    },
  },
  unit: { project: "unit" },
  // The terminal UI's tests drive the real program in tmux (installed with apt-get when missing).
  integration: { project: "integration", prepare: () => systemTools(["tmux"]) },
  // The web console in Debian's Chromium, driven by playwright-core (installed when missing).
  browser: { project: "browser", prepare: () => systemTools(["chromium"]) },
  "nats-2.9": {
    project: "integration",
    files: [
      "test/integration/jobs.test.ts",
      "test/integration/restart.test.ts",
      "test/integration/backend.test.ts",
      "test/integration/bus.test.ts",
      "test/integration/dead-letters.test.ts",
      "test/integration/grpc.test.ts",
      "test/integration/sse.test.ts",
      "test/integration/api-v1.test.ts",
    ],
    prepare() {
      const have = existsSync(NATS_29_BIN) && versionOf(NATS_29_BIN);
      const bin = have ? NATS_29_BIN : fetchDebianNats({ dest: NATS_29_BIN, quiet: true });
      const v = bin && versionOf(bin);
      if (!v || v.major !== 2 || v.minor !== 9) return { skip: "Debian bookworm's nats-server 2.9 package is not available here" };
      return { env: { ORCH_NATS_SERVER_BIN: bin } };
    },
  },
  // The real coding-agent CLIs, pinned in scripts/lib/harnesses.mjs: installed (or reused) before
  // the tier starts, so its tests never wait on npm. One that cannot be installed fails the tier.
  harness: {
    project: "harness",
    prepare() {
      try {
        ensureHarnesses();
        return {};
      } catch (err) {
        if (err instanceof HarnessInstallError) return { error: err.message };
        throw err;
      }
    },
  },
};

/** A tier's preparation that needs programs from the system's packages: their paths, or why not. */
function systemTools(names) {
  try {
    const found = ensureSystemTools(names);
    return { env: Object.fromEntries(Object.entries(found).map(([n, p]) => [`ORCH_${n.toUpperCase()}_BIN`, p])) };
  } catch (err) {
    if (err instanceof SystemToolError) return { error: err.message };
    throw err;
  }
}

const args = process.argv.slice(2);
const tiers = [];
const passThrough = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--tier") tiers.push(args[++i]);
  else passThrough.push(args[i]);
}
for (const t of tiers) {
  if (!(t in TIERS)) {
    process.stderr.write(`unknown tier '${t}': one of ${Object.keys(TIERS).join(", ")}\n`);
    process.exit(2);
  }
}

bootstrap();

const outDir = join(ROOT, ".test-results");
rmSync(outDir, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });
const vitest = join(ROOT, "node_modules", "vitest", "vitest.mjs");
let passed = 0;
let failed = 0;
let crashed = false;
const skipped = [];
for (const tier of tiers.length ? tiers : Object.keys(TIERS)) {
  const def = TIERS[tier];
  // A file filter given on the command line narrows every tier; a tier's own list applies otherwise.
  const files = passThrough.some((a) => !a.startsWith("-")) ? [] : (def.files ?? []);
  const prep = def.prepare?.() ?? {};
  if (prep.error) {
    process.stderr.write(`\n── ${tier} tests: cannot run: ${prep.error} ──\n`);
    failed++;
    continue;
  }
  if (prep.skip) {
    process.stdout.write(`\n── ${tier} tests: skipped (${prep.skip}) ──\n`);
    skipped.push(tier);
    continue;
  }
  process.stdout.write(`\n── ${tier} tests ──\n`);
  if (def.run) {
    // A file filter narrows the run to vitest files: whole-tree checks are for full runs.
    if (passThrough.some((a) => !a.startsWith("-"))) continue;
    if (def.run()) passed++;
    else failed++;
    continue;
  }
  const report = join(outDir, `${tier}.json`);
  const r = spawnSync(
    process.execPath,
    [
      vitest,
      "run",
      "--project",
      def.project,
      "--reporter=default",
      "--reporter=json",
      `--outputFile.json=${report}`,
      "--passWithNoTests",
      ...files,
      ...passThrough,
    ],
    { cwd: ROOT, stdio: "inherit", env: { ...process.env, ...prep.env, FORCE_COLOR: process.env.FORCE_COLOR ?? "1" } },
  );
  if (!existsSync(report)) {
    process.stderr.write(`${tier}: vitest wrote no report (exit ${r.status ?? r.signal})\n`);
    crashed = true;
    continue;
  }
  const j = JSON.parse(readFileSync(report, "utf8"));
  passed += j.numPassedTests ?? 0;
  failed += (j.numFailedTests ?? 0) + (r.status !== 0 && (j.numFailedTests ?? 0) === 0 ? 1 : 0);
}
if (skipped.length) process.stdout.write(`\nskipped tiers: ${skipped.join(", ")}\n`);
process.stdout.write(`\n${passed} passed, ${failed} failed\n`);
process.exit(failed > 0 || crashed || passed === 0 ? 1 : 0);
