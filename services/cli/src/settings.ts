import { userInfo } from "node:os";
import { ConfigError, loadConfig, UiConfig } from "@orch/config";
import { Client } from "./client.js";
import { CliError, ExitCode } from "./errors.js";

/** Where the gateway is and who `orch` is to it: flags win over the environment. */

export const DEFAULT_URL = "http://127.0.0.1:8080";

export interface GlobalOptions {
  url?: string;
  token?: string;
  actor?: string;
  json?: boolean;
}

export function clientOf(g: GlobalOptions, env: NodeJS.ProcessEnv = process.env): Client {
  const url = g.url || env.ORCH_URL || DEFAULT_URL;
  try {
    new URL(url);
  } catch {
    throw new CliError(ExitCode.Usage, `not a URL: ${url} (--url, ORCH_URL)`);
  }
  return new Client({
    url,
    token: g.token || env.ORCH_API_TOKEN || env.TASKSGODZILLA_API_TOKEN || undefined,
    actor: g.actor || env.ORCH_ACTOR || safeUser(),
  });
}

function safeUser(): string | undefined {
  try {
    return userInfo().username || undefined;
  } catch {
    return undefined;
  }
}

/** The terminal UI's settings (`[ui]` of the configuration file, `ORCH_UI_*`), validated alone. */
export function uiConfig(env: NodeJS.ProcessEnv = process.env): UiConfig {
  try {
    return loadConfig(UiConfig, env);
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(ExitCode.Usage, err.message);
    throw err;
  }
}
