#!/usr/bin/env node
// Prints the nats-server the embedded default will run, installing one first if none is usable.
import { ensureNatsServer } from "./lib/nats.mjs";

if (process.env.ORCH_NATS_URL) {
  process.stdout.write(`ORCH_NATS_URL is set (${process.env.ORCH_NATS_URL}): no local nats-server is needed\n`);
} else {
  const found = ensureNatsServer();
  if (!found) process.exit(1);
  process.stdout.write(`nats-server ${found.version.text}: ${found.path}\n`);
}
