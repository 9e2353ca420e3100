// One clamd configuration for the deployment, the tests and the quick start, and its limits
// matched with Kuvert's: deploy/clamav/clamd.conf is the source, test/support/clamd.ts (used by
// the tests and scripts/try-locally.ts) runs clamd with its settings.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parse } from "yaml";
import { configSchema } from "../../appservice/config/composed.ts";
import { clamdBytes, clamdSettings, startClamd } from "../support/clamd.ts";

const root = join(import.meta.dirname, "..", "..");
const deployed = () => configSchema.parse({ scanning: (parse(readFileSync(join(root, "deploy", "kuvert", "config.yaml"), "utf8")) as { scanning: unknown }).scanning }).scanning;

describe("clamd's configuration", () => {
  const conf = clamdSettings();
  const get = (key: string) => {
    const value = conf.get(key);
    assert.ok(value !== undefined, `${key} is set in deploy/clamav/clamd.conf`);
    return value;
  };

  it("reports what it cannot read instead of answering OK", () => {
    for (const key of ["ScanArchive", "HeuristicAlerts", "AlertEncrypted", "AlertExceedsMax", "AlertBrokenExecutables"]) assert.equal(get(key), "yes", key);
  });

  for (const [name, scanning] of [
    ["the deployment's Kuvert configuration", deployed()],
    ["Kuvert's defaults", configSchema.parse({}).scanning],
  ] as const) {
    it(`has limits at least ${name}'s, so that Kuvert's limits decide`, () => {
      const stream = clamdBytes(get("StreamMaxLength"));
      assert.ok(stream >= scanning.maxStreamBytes, "StreamMaxLength ≥ scanning.maxStreamBytes");
      assert.ok(clamdBytes(get("MaxFileSize")) >= stream, "MaxFileSize ≥ StreamMaxLength");
      assert.ok(clamdBytes(get("MaxScanSize")) >= scanning.archives.maxTotalBytes, "MaxScanSize ≥ scanning.archives.maxTotalBytes");
      assert.ok(Number(get("MaxRecursion")) > scanning.archives.maxDepth, "MaxRecursion > scanning.archives.maxDepth");
      assert.ok(Number(get("MaxFiles")) >= scanning.archives.maxMembers, "MaxFiles ≥ scanning.archives.maxMembers");
    });
  }

  it("StreamMaxLength is the deployment's scanning.maxStreamBytes exactly", () => {
    assert.equal(clamdBytes(get("StreamMaxLength")), deployed().maxStreamBytes);
  });

  it("is what the tests' and the quick start's clamd runs with", async () => {
    const clamd = await startClamd();
    try {
      const written = readFileSync(join(clamd.dir, "clamd.conf"), "utf8").split("\n");
      for (const [key, value] of conf) assert.ok(written.includes(`${key} ${value}`), `${key} ${value}`);
    } finally {
      await clamd.stop();
    }
  });
});
