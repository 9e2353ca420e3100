// The test homeserver is a package of its own (packages/test-homeserver): its users reach it only
// through its public interface (the package name, whose `exports` name index.ts), and it imports
// nothing of Kuvert's.
import assert from "node:assert/strict";
import { globSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";

const root = join(import.meta.dirname, "..", "..");
const pkgDir = "packages/test-homeserver";

/** Module specifiers of static and dynamic imports and re-exports in a TypeScript source. */
function specifiers(source: string): string[] {
  const found: string[] = [];
  for (const m of source.matchAll(/(?:^|[\s;])(?:import|export)\b[^"'`;]*?\bfrom\s*["']([^"']+)["']|\bimport\s*\(\s*["']([^"']+)["']\s*\)|^\s*import\s*["']([^"']+)["']/gm)) {
    const spec = m[1] ?? m[2] ?? m[3];
    if (spec !== undefined) found.push(spec);
  }
  return found;
}

const sources = (patterns: string[]): string[] => patterns.flatMap((p) => globSync(p, { cwd: root, exclude: (f) => f.includes("node_modules") }));

describe("the test homeserver package", () => {
  it("names index.ts as its one entry, and the root declares it as a workspace", () => {
    const manifest = JSON.parse(readFileSync(join(root, pkgDir, "package.json"), "utf8")) as { name: string; private: boolean; exports: Record<string, string> };
    assert.equal(manifest.name, "@kuvert/test-homeserver");
    assert.equal(manifest.private, true);
    assert.equal(manifest.exports["."], "./index.ts");
    assert.deepEqual(
      Object.keys(manifest.exports).filter((k) => k !== "./package.json"),
      ["."],
      "only index.ts is public",
    );
    const rootManifest = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { workspaces: string[] };
    assert.ok(rootManifest.workspaces.includes(pkgDir));
  });

  it("imports only Node's modules, its declared dependencies and its own files", () => {
    const manifest = JSON.parse(readFileSync(join(root, pkgDir, "package.json"), "utf8")) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };
    const files = sources([`${pkgDir}/**/*.ts`]);
    assert.ok(files.length > 20, `only ${files.length} files found in ${pkgDir}`);
    for (const file of files) {
      const isTest = file.startsWith(`${pkgDir}/test/`);
      const allowed = new Set([...Object.keys(manifest.dependencies), ...(isTest ? [...Object.keys(manifest.devDependencies), "@kuvert/test-homeserver"] : [])]);
      for (const spec of specifiers(readFileSync(join(root, file), "utf8"))) {
        if (spec.startsWith("node:")) continue;
        if (spec.startsWith(".")) {
          const target = join(file, "..", spec);
          assert.ok(target.startsWith(`${pkgDir}/`), `${file} imports ${spec}, outside the package`);
          if (isTest) assert.fail(`${file} imports ${spec}: the package's tests use its public interface, @kuvert/test-homeserver`);
          continue;
        }
        const name = spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : (spec.split("/")[0] ?? spec);
        assert.ok(allowed.has(name), `${file} imports ${spec}, which its package.json does not declare`);
      }
    }
  });

  it("is used only through its package name, never by a path into its files", () => {
    const files = sources(["appservice/**/*.ts", "test/**/*.ts", "bench/**/*.ts", "scripts/**/*.ts", "web/**/*.ts", "web/**/*.tsx", "bin/**/*.js"]);
    let users = 0;
    for (const file of files) {
      for (const spec of specifiers(readFileSync(join(root, file), "utf8"))) {
        assert.ok(!spec.includes("test-homeserver/") && !/(^|\/)test\/homeserver\//.test(spec) && !spec.startsWith("../homeserver/"), `${file} imports ${spec}: import "@kuvert/test-homeserver" instead`);
        if (spec === "@kuvert/test-homeserver") {
          users++;
          assert.ok(!file.startsWith("appservice/") && !file.startsWith("web/") && !file.startsWith("bin/"), `${file}: Kuvert itself must not depend on the test homeserver`);
        }
      }
    }
    assert.ok(users >= 3, `only ${users} users of @kuvert/test-homeserver found (the harness, the quick start and the benchmarks use it)`);
  });
});
