export * from "./base.js";
export * from "./git-http.js";
export * from "./github.js";
export * from "./gitlab.js";
