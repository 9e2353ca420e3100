// Builds the staff console into web/console/dist, which Kuvert serves at /console/.
import { defineConfig } from "vite";

export default defineConfig({
  root: import.meta.dirname,
  base: "/console/",
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: "dist",
    // Two pages: the console, and the call link page for members (join.html), which shares its sign-in.
    rollupOptions: { input: { console: `${import.meta.dirname}/index.html`, join: `${import.meta.dirname}/join.html` } },
    emptyOutDir: true,
    // matrix-js-sdk is large; one chunk per page set keeps the first load reasonable.
    chunkSizeWarningLimit: 2000,
  },
  logLevel: "warn",
});
