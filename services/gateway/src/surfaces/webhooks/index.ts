export * from "./headers.js";
export * from "./normalize.js";
export * from "./verify.js";
