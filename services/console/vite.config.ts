import { defineConfig } from "vite";

/**
 * The console is static files: `src/index.html` and what it imports, bundled into `dist/` with
 * hashed asset names under `/console/assets/` (the gateway serves them with a long cache).
 */
export default defineConfig({
  root: "src",
  base: "/console/",
  publicDir: false,
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: "../dist",
    emptyOutDir: true,
    target: "es2022",
    assetsDir: "assets",
    sourcemap: false,
    modulePreload: { polyfill: false },
  },
});
