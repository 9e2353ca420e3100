import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parse } from "yaml";
import { parseConfig } from "../../appservice/config/load.ts";
import { buildRegistration, readRegistration, RegistrationError, sampleRegistration, writeRegistration } from "../../appservice/matrix/registration.ts";
import { tempDir } from "../support/tmp.ts";

const root = join(import.meta.dirname, "..", "..");
const sampleFile = join(root, "registration.yaml");

describe("the sample registration (registration.yaml)", () => {
  it("is the one the code generates from config.sample.yaml", () => {
    assert.equal(readFileSync(sampleFile, "utf8"), sampleRegistration(parseConfig(parse(readFileSync(join(root, "config.sample.yaml"), "utf8")))), "run `node bin/kuvert.js generate-registration --sample > registration.yaml`");
  });

  it("has tokens that are plainly placeholders, and Kuvert refuses to start with them", () => {
    const sample = parse(readFileSync(sampleFile, "utf8")) as { as_token: string; hs_token: string };
    assert.match(sample.as_token, /^PLACEHOLDER-/);
    assert.match(sample.hs_token, /^PLACEHOLDER-/);
    assert.throws(
      () => readRegistration(sampleFile),
      (err: Error) => err instanceof RegistrationError && /^KUVERT_REGISTRATION_PLACEHOLDER: .*generate-registration/.test(err.message),
    );
  });

  it("is never overwritten by the generate command, even with --force; the real one goes beside it", () => {
    const dir = tempDir("kuvert-registration-");
    const copy = join(dir, "registration.yaml");
    copyFileSync(sampleFile, copy);
    const config = parseConfig({});
    assert.throws(() => writeRegistration(copy, buildRegistration(config), true), /KUVERT_REGISTRATION_PLACEHOLDER/);
    const cli = spawnSync(process.execPath, [join(root, "bin", "kuvert.js"), "generate-registration", "--force", "--output", copy], { encoding: "utf8", cwd: dir });
    assert.equal(cli.status, 1, cli.stderr);
    assert.match(cli.stderr, /KUVERT_REGISTRATION_PLACEHOLDER: .* is the sample registration/);
    assert.equal(readFileSync(copy, "utf8"), readFileSync(sampleFile, "utf8"));
    const real = join(dir, "kuvert-registration.yaml");
    writeRegistration(real, buildRegistration(config), false);
    assert.equal(readRegistration(real).id, "kuvert");
  });

  it("deploy/setup.sh refuses a registration with the placeholder tokens", () => {
    assert.match(readFileSync(join(root, "deploy", "setup.sh"), "utf8"), /grep -qs PLACEHOLDER \$registration_dir/);
  });
});
