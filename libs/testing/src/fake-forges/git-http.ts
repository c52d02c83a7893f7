import { spawn, execFileSync } from "node:child_process";
import type { IncomingMessage, ServerResponse } from "node:http";

/**
 * Git's smart HTTP protocol for a fake forge, served by git itself: `git http-backend` (the CGI
 * program that ships with git) run once per request over the forge's bare repositories, behind
 * Basic authentication that checks the forge's token (any user name, as GitHub and GitLab accept
 * `x-access-token` and `oauth2`). Clones, fetches and pushes are real git over a real socket.
 */

/** The directory of git's helper programs (`git --exec-path`), where http-backend lives. */
let execPath: string | undefined;
function gitExecPath(): string {
  execPath ??= execFileSync("git", ["--exec-path"], { encoding: "utf8" }).trim();
  return execPath;
}

export interface GitHttpAuth {
  user: string;
  password: string;
}

/** The user and password of a Basic `authorization` header, if it is one. */
export function basicAuth(header: string | undefined): GitHttpAuth | undefined {
  const m = /^Basic\s+(\S+)$/i.exec(header ?? "");
  if (!m) return undefined;
  const decoded = Buffer.from(m[1]!, "base64").toString("utf8");
  const i = decoded.indexOf(":");
  return i < 0 ? undefined : { user: decoded.slice(0, i), password: decoded.slice(i + 1) };
}

/** Whether a request path is git's smart HTTP (`/<repo>.git/info/refs`, `/<repo>.git/git-upload-pack`, `…/git-receive-pack`). */
export function isGitHttpPath(path: string): boolean {
  return /^\/.+\.git\/(info\/refs|git-upload-pack|git-receive-pack|HEAD)$/.test(path);
}

/** Runs http-backend for one request; `root` holds the bare repositories (`<root>/<path>.git`). */
export function serveGitHttp(req: IncomingMessage, res: ServerResponse, opts: { root: string; path: string; query: string; user: string }): void {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    GIT_PROJECT_ROOT: opts.root,
    GIT_HTTP_EXPORT_ALL: "1",
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_CONFIG_GLOBAL: "/dev/null",
    // Set: http-backend allows receive-pack (pushes) only to an authenticated user.
    REMOTE_USER: opts.user,
    REMOTE_ADDR: req.socket.remoteAddress ?? "127.0.0.1",
    REQUEST_METHOD: req.method ?? "GET",
    PATH_INFO: decodeURIComponent(opts.path),
    QUERY_STRING: opts.query,
    CONTENT_TYPE: req.headers["content-type"] ?? "",
    GATEWAY_INTERFACE: "CGI/1.1",
  };
  if (req.headers["content-length"]) env.CONTENT_LENGTH = String(req.headers["content-length"]);
  if (req.headers["content-encoding"]) env.HTTP_CONTENT_ENCODING = String(req.headers["content-encoding"]);
  if (req.headers["git-protocol"]) env.GIT_PROTOCOL = String(req.headers["git-protocol"]);
  const child = spawn(`${gitExecPath()}/git-http-backend`, [], { env, stdio: ["pipe", "pipe", "pipe"] });
  req.pipe(child.stdin);
  let head = Buffer.alloc(0);
  let headersDone = false;
  child.stdout.on("data", (chunk: Buffer) => {
    if (headersDone) {
      res.write(chunk);
      return;
    }
    head = Buffer.concat([head, chunk]);
    let end = head.indexOf("\r\n\r\n");
    let sep = 4;
    if (end < 0) {
      end = head.indexOf("\n\n");
      sep = 2;
    }
    if (end < 0) return;
    headersDone = true;
    let status = 200;
    for (const line of head.subarray(0, end).toString("latin1").split(/\r?\n/)) {
      const i = line.indexOf(":");
      if (i < 0) continue;
      const name = line.slice(0, i).trim();
      const value = line.slice(i + 1).trim();
      if (name.toLowerCase() === "status") status = Number.parseInt(value, 10) || 200;
      else res.setHeader(name, value);
    }
    res.statusCode = status;
    res.write(head.subarray(end + sep));
  });
  const stderr: Buffer[] = [];
  child.stderr.on("data", (b: Buffer) => stderr.push(b));
  child.on("close", (code) => {
    if (!headersDone) {
      res.statusCode = 500;
      res.end(`git http-backend failed (${code}): ${Buffer.concat(stderr).toString("utf8")}`);
      return;
    }
    res.end();
  });
  child.on("error", (err) => {
    if (!res.headersSent) res.statusCode = 500;
    res.end(String(err));
  });
}
