#!/usr/bin/env node
// Kuvert runs its TypeScript sources directly (Node's type stripping): only on the Node versions
// package.json's engines.node names (bin/node-range.cjs checks them, before any .ts is loaded).
import { createRequire } from "node:module";
const nodeRange = createRequire(import.meta.url)("./node-range.cjs");
if (!nodeRange.satisfies(process.versions.node, nodeRange.range())) {
  process.stderr.write(
    `kuvert: Node.js ${process.versions.node} is not supported; Kuvert needs Node ${nodeRange.range()} (package.json engines). ` +
      "Run scripts/setup.sh, which installs one and prints the PATH line to use, or see the README.\n",
  );
  process.exit(1);
}
// A dependency of matrix-appservice-bridge still calls util._extend; the warning says nothing to operators.
const emitWarning = process.emitWarning.bind(process);
process.emitWarning = (warning, ...rest) => {
  if (rest[0] === "DeprecationWarning" && rest[1] === "DEP0060") return;
  emitWarning(warning, ...rest);
};
// Kuvert is a long-running I/O-bound service: V8's memory-saving heuristics (smaller young
// generation, earlier collection) keep it about 30 MiB smaller at rest (bench/README.md). Set
// before anything is loaded, so the whole heap grows by these rules.
(await import("node:v8")).setFlagsFromString("--optimize-for-size");
const { main } = await import("../appservice/cli.ts");
await main(process.argv);
