#!/usr/bin/env node
// The `orch` command (package.json `bin`). A file of its own, not dist/main.js itself, so npm links
// it into node_modules/.bin at install time, before anything is built (npm links no bin whose file
// is missing, and a fresh clone's `npm ci` runs before the build).
try {
  await import("../dist/main.js");
} catch (err) {
  if (err?.code === "ERR_MODULE_NOT_FOUND" && String(err.message).includes("dist/main.js")) {
    process.stderr.write("orch: not built yet: run `npm run build` (or `npm start`) in the repository first\n");
    process.exit(2);
  }
  throw err;
}
