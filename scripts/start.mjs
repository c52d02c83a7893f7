#!/usr/bin/env node
// `npm start`: installs what is missing, builds, then runs the whole system on the embedded
// default (a local nats-server, the five services). Ctrl-C stops it.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { bootstrap } from "./lib/bootstrap.mjs";
import { ROOT } from "./lib/nats.mjs";

bootstrap();
const child = spawn(process.execPath, [join(ROOT, "deploy", "local", "dist", "main.js")], { stdio: "inherit", env: process.env });
// Ctrl-C reaches the whole process group (the runner too), so only SIGTERM, which is sent to
// this process alone (by a process manager, say), needs passing on.
process.on("SIGINT", () => undefined);
process.on("SIGTERM", () => child.kill("SIGTERM"));
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
