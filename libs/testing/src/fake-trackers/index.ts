export * from "./http.js";
export * from "./linear.js";
export * from "./shortcut.js";
