#!/usr/bin/env node
// Writes api/openapi.yaml from the gateway's route schemas (run `npm run build` first).
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { generateOpenApiYaml } from "../dist/openapi-file.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const file = join(root, "api", "openapi.yaml");
writeFileSync(file, await generateOpenApiYaml());
console.log(`wrote ${file}`);
