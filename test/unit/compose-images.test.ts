// The compose file as Docker Compose reads it, without Docker: valid against the Compose
// Specification's JSON schema (compose-spec's schema/compose-spec.json, as the npm package
// dclint ships it) once interpolated with deploy/env.example; every image pinned to an exact
// version; Jitsi from ghcr.io/jitsi, run the way docker-jitsi-meet's own compose file runs it.
//
// Why not `docker compose config`: Debian (bookworm) ships only docker-compose 1.29, which
// predates the Compose Specification's top-level `name` and refuses this file for it.
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, it } from "node:test";
import { Ajv } from "ajv";
import { parse } from "yaml";
import { environmentOf, interpolateDeep, mountsOf, parseEnvFile, portsOf, type Json } from "../support/compose.ts";

const root = join(import.meta.dirname, "..", "..");
const read = (rel: string): string => readFileSync(join(root, rel), "utf8");
const envExample = parseEnvFile(read("deploy/env.example"));
const composeText = read("docker-compose.yml");
const composeRaw = parse(composeText, { merge: true }) as Json;
const compose = interpolateDeep(composeRaw, envExample, "docker-compose.yml") as Json;
const services = compose.services as Record<string, Json>;
const jitsi = ["jitsi-web", "jitsi-prosody", "jitsi-jicofo", "jitsi-jvb"];

function composeSchema(): Json {
  // dclint (a Compose linter) ships the Compose Specification's schema, kept current upstream.
  const require = createRequire(import.meta.url);
  const dir = dirname(require.resolve("dclint/package.json"));
  const schema = JSON.parse(readFileSync(join(dir, "schemas", "compose.schema.json"), "utf8")) as Json;
  // Draft-07, named by its https:// URI, which Ajv knows under http://.
  assert.match(String(schema.$schema), /draft-07/);
  delete schema.$schema;
  return schema;
}

describe("docker-compose.yml against the Compose Specification", () => {
  const validate = () => {
    const ajv = new Ajv({ allErrors: true, strict: false, validateFormats: false });
    return ajv.compile(composeSchema());
  };

  it("is valid once interpolated with deploy/env.example's values", () => {
    const check = validate();
    const ok = check(compose);
    assert.ok(ok, JSON.stringify(check.errors, null, 2));
  });

  it("and the check can fail: a misspelt key and a wrong type are refused", () => {
    const check = validate();
    const broken = structuredClone(compose) as { services: Record<string, Json> };
    broken.services["jitsi-web"]!.read_onyl = true;
    assert.equal(check(broken), false);
    const wrongType = structuredClone(compose) as { services: Record<string, Json> };
    wrongType.services.postgres!.restart = ["always"];
    assert.equal(check(wrongType), false);
  });
});

describe("images", () => {
  /** The tag the compose file names by default (from its ${X_VERSION:-default}) and the variable. */
  const defaults = (name: string): { variable: string; fallback: string } | null => {
    const image = String((composeRaw.services as Record<string, Json>)[name]!.image);
    const m = /\$\{([A-Z_]+_VERSION):-([^}]+)\}/.exec(image);
    return m ? { variable: m[1]!, fallback: m[2]! } : null;
  };

  it("pins every image to an exact version, never latest, stable or unstable", () => {
    for (const [name, s] of Object.entries(services)) {
      const image = String(s.image);
      if (s.build !== undefined) continue;
      const tag = /:([^/:@]+)$/.exec(image)?.[1];
      assert.ok(tag, `${name}: ${image} names no tag`);
      assert.ok(!/^(latest|stable|unstable|main|nightly|edge)$/.test(tag), `${name}: ${image} follows a moving tag`);
      assert.match(tag, /\d+\.\d+|^stable-\d+/, `${name}: ${image} is not an exact version`);
    }
  });

  it("documents each version in deploy/env.example with the compose file's own default", () => {
    for (const name of Object.keys(services)) {
      if (services[name]!.build !== undefined) continue;
      const d = defaults(name);
      assert.ok(d, `${name}: the tag is not a \${..._VERSION:-default} variable`);
      assert.equal(envExample[d.variable], d.fallback, `${name}: deploy/env.example's ${d.variable} differs from docker-compose.yml's default`);
    }
  });

  it("takes Jitsi from ghcr.io/jitsi, all four services at one release", () => {
    const versions = new Set(jitsi.map((name) => String(services[name]!.image).split(":")[1]));
    assert.equal(versions.size, 1, "the Jitsi services run one release");
    for (const name of jitsi) assert.match(String(services[name]!.image), /^ghcr\.io\/jitsi\/(web|prosody|jicofo|jvb):stable-\d+(-\d+)?$/, name);
  });
});

describe("Jitsi, rootless as upstream runs it", () => {
  it("runs as uid 1000 with a read-only root file system and tmpfs for /run and /tmp", () => {
    for (const name of jitsi) {
      const s = services[name]!;
      assert.equal(String(s.user).split(":")[0], "1000", `${name} runs as uid 1000`);
      assert.equal(s.read_only, true, `${name} has a read-only root file system`);
      const tmpfs = ((s.tmpfs ?? []) as string[]).map((t) => t.split(":")[0]);
      assert.deepEqual(tmpfs.sort(), ["/run", "/tmp"], `${name} has tmpfs for /run and /tmp`);
    }
  });

  it("publishes the web front end's unprivileged port 8000 and checks its health there", () => {
    const web = services["jitsi-web"]!;
    assert.deepEqual(
      portsOf(web).map((p) => p.target),
      [8000],
    );
    assert.deepEqual(web.expose, ["8000"]);
    assert.match(JSON.stringify((web.healthcheck as Json).test), /127\.0\.0\.1:8000\//);
    assert.equal(environmentOf(web).DISABLE_HTTPS, "1", "8443 stays unused: TLS is the reverse proxy's job");
  });

  it("keeps everything Jitsi writes on volumes or tmpfs", () => {
    const targets = (name: string) => mountsOf(services[name]!).map((m) => m.target);
    for (const name of jitsi) assert.ok(targets(name).includes("/config"), `${name} keeps /config on a volume`);
    assert.ok(targets("jitsi-prosody").includes("/var/lib/prosody"), "Prosody's accounts survive a restart");
  });
});
