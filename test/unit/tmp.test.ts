import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";

const tmpModule = join(import.meta.dirname, "..", "support", "tmp.ts");

describe("temporary folders of the tests", () => {
  for (const [how, ending] of [
    ["normally", ""],
    ["with a thrown error", "throw new Error('failed on purpose');"],
    ["with process.exit", "process.exit(3);"],
  ] as const) {
    it(`are gone when the test process ends ${how}`, () => {
      const script = `import { writeFileSync } from "node:fs"; import { tempDir } from ${JSON.stringify(tmpModule)};
        const dir = tempDir("kuvert-tmp-test-"); writeFileSync(dir + "/file", "x"); console.log(dir); ${ending}`;
      const child = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" });
      const dir = child.stdout.trim();
      assert.ok(dir.includes("kuvert-tmp-test-"), `no folder reported: ${child.stderr}`);
      assert.equal(existsSync(dir), false, `${dir} is still there`);
    });
  }
});
