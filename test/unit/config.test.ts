import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parse } from "yaml";
import { ConfigError, loadConfig, parseConfig } from "../../appservice/config/load.ts";
import { sampleConfig } from "../../appservice/config/sample.ts";
import { moduleEnabled } from "../../appservice/module.ts";
import { modules } from "../../appservice/modules.ts";
import { tempDir } from "../support/tmp.ts";

const root = join(import.meta.dirname, "..", "..");

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err.problems;
  }
  assert.fail("the configuration was accepted");
}

function configFile(text: string): string {
  const file = join(tempDir("kuvert-config-"), "config.yaml");
  writeFileSync(file, text);
  return file;
}

describe("configuration", () => {
  it("the committed config.sample.yaml is the one the code generates", () => {
    assert.equal(readFileSync(join(root, "config.sample.yaml"), "utf8"), sampleConfig(), "run `node bin/kuvert.js config sample > config.sample.yaml`");
  });

  it("the sample parses to exactly the defaults", () => {
    assert.deepEqual(parseConfig(parse(sampleConfig())), parseConfig({}));
  });

  it("names an unknown key instead of ignoring it", () => {
    const problems = problemsOf(() => loadConfig(configFile("homeserver:\n  domian: example.org\n"), {}));
    assert.deepEqual(problems, ["homeserver.domian: unknown key (not a Kuvert setting; check its spelling and nesting)"]);
  });

  it("names the key, the value found and what was expected", () => {
    const problems = problemsOf(() => loadConfig(configFile("appservice:\n  listener:\n    port: 70000\nworkers:\n  concurrency: lots\nstaff:\n  - userId: bob\n    roles: [boss]\n"), {}));
    assert.deepEqual(problems, [
      "appservice.listener.port: found 70000, expected at most 65535",
      'staff.0.userId: found "bob", expected a Matrix user ID like @alice:example.org',
      'staff.0.roles.0: found "boss", expected one of "admin", "staff", "dpo"',
      'workers.concurrency: found "lots", expected a number',
    ]);
  });

  it("reports YAML syntax errors and unreadable files", () => {
    assert.match(problemsOf(() => loadConfig(configFile("homeserver: [unclosed\n"), {}))[0]!, /YAML syntax/);
    assert.match(problemsOf(() => loadConfig("/nonexistent/kuvert.yaml", {}))[0]!, /cannot read the file/);
  });

  it("takes secrets from the environment over the file", () => {
    const config = loadConfig(configFile("database:\n  url: postgres://file/db\n"), {
      KUVERT_DATABASE_URL: "postgres://env/db",
      KUVERT_HOMESERVER_ADMIN_TOKEN: "secret",
    });
    assert.equal(config.database.url, "postgres://env/db");
    assert.equal(config.homeserver.adminToken, "secret");
  });

  it("stages on S3 only when documents.stagingS3 is given, with its keys from the environment", () => {
    assert.equal(parseConfig({}).documents.stagingS3, undefined, "the directory by default");
    assert.match(sampleConfig(), /^ {2}# stagingS3:$/m, "the sample shows the section commented out");
    assert.match(sampleConfig(), /^ {2}# {3}region: us-east-1$/m, "with its defaults commented out too");
    const config = loadConfig(configFile("documents:\n  stagingS3:\n    endpoint: http://127.0.0.1:9000\n    bucket: kuvert\n    forcePathStyle: true\n"), {
      KUVERT_S3_ACCESS_KEY_ID: "access",
      KUVERT_S3_SECRET_ACCESS_KEY: "secret",
    });
    assert.deepEqual(config.documents.stagingS3, { endpoint: "http://127.0.0.1:9000", bucket: "kuvert", region: "us-east-1", prefix: "kuvert/", forcePathStyle: true, accessKeyId: "access", secretAccessKey: "secret" });
    assert.deepEqual(
      problemsOf(() => loadConfig(configFile("documents:\n  stagingS3:\n    endpoint: http://127.0.0.1:9000\n"), {})),
      ["documents.stagingS3.bucket: found nothing, expected a string"],
    );
  });

  it("takes each module's switch, section and secrets from the module's own config", () => {
    const withConfig = modules.filter((m) => m.config);
    assert.ok(withConfig.length >= 4, "the console, accounts, circulars and calls declare theirs");
    const defaults = parseConfig({}) as unknown as Record<string, unknown> & { modules: Record<string, unknown> };
    for (const m of withConfig) {
      if (m.config?.switch !== undefined) assert.equal(defaults.modules[m.name], true, `modules.${m.name} is on by default`);
      if (m.config?.section) assert.equal(typeof defaults[m.name], "object", `the section ${m.name} has its defaults`);
    }
    assert.deepEqual(
      problemsOf(() => parseConfig({ modules: { calls: "no" }, calls: { callMinutes: 1 } })),
      ['modules.calls: found "no", expected a boolean', "calls.callMinutes: found 1, expected at least 5"],
    );
    const config = loadConfig(configFile("calls:\n  appSecret: from-the-file\n"), { KUVERT_JITSI_APP_SECRET: "from-the-environment" });
    assert.equal(config.calls.appSecret, "from-the-environment");
    assert.match(sampleConfig(), /#   KUVERT_JITSI_VERIFY_TOKEN sets calls\.verifyToken/);
  });

  it("starts a module by its switch unless the module decides itself", () => {
    const byName = (name: string) => modules.find((m) => m.name === name)!;
    const off = parseConfig({ modules: { calls: false, accounts: false } });
    assert.equal(moduleEnabled(byName("calls"), off), false);
    assert.equal(moduleEnabled(byName("calls"), parseConfig({})), true);
    // Accounts stay loaded with their switch off: accounts created earlier still need letters.
    assert.equal(moduleEnabled(byName("accounts"), off), true);
    // Documents have no switch of their own.
    assert.equal(moduleEnabled(byName("documents"), off), true);
  });
});
