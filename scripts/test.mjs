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
import { ROOT } from "./lib/nats.mjs";

const TIERS = ["unit", "integration"];

const args = process.argv.slice(2);
const tiers = [];
const passThrough = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--tier") tiers.push(args[++i]);
  else passThrough.push(args[i]);
}
for (const t of tiers) {
  if (!TIERS.includes(t)) {
    process.stderr.write(`unknown tier '${t}': one of ${TIERS.join(", ")}\n`);
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
for (const tier of tiers.length ? tiers : TIERS) {
  process.stdout.write(`\n── ${tier} tests ──\n`);
  const report = join(outDir, `${tier}.json`);
  const r = spawnSync(
    process.execPath,
    [vitest, "run", "--project", tier, "--reporter=default", "--reporter=json", `--outputFile.json=${report}`, "--passWithNoTests", ...passThrough],
    { cwd: ROOT, stdio: "inherit", env: { ...process.env, FORCE_COLOR: process.env.FORCE_COLOR ?? "1" } },
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
process.stdout.write(`\n${passed} passed, ${failed} failed\n`);
process.exit(failed > 0 || crashed || passed === 0 ? 1 : 0);
