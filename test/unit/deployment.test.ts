// The deployment stack (Dockerfile, docker-compose.yml, deploy/) checked without Docker: every
// file parses, every name one file gives another points at something that exists, and Kuvert's
// own loader and registration code accept what the stack hands them. The templates are rendered
// by deploy/setup.sh itself, with the values of deploy/env.example.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, posix } from "node:path";
import { after, describe, it } from "node:test";
import { parse, parseDocument } from "yaml";
import { loadConfig } from "../../appservice/config/load.ts";
import type { KuvertConfig } from "../../appservice/config/schema.ts";
import { GUEST_LINK_AUDIENCE } from "../../appservice/calls/guest-token.ts";
import { buildRegistration } from "../../appservice/matrix/registration.ts";
import { balancerConfig, deployedHaproxyCfg } from "../support/haproxy.ts";
import { tempDir } from "../support/tmp.ts";
import { environmentOf, exposedPorts, hostAndPort, interpolateDeep, isObject, mountsOf, networksOf, parseEnvFile, portsOf, referencedVariables, resolveInContainer, strings, type Json, type Mount } from "../support/compose.ts";

const root = join(import.meta.dirname, "..", "..");
const setupScript = join(root, "deploy", "setup.sh");
const read = (rel: string): string => readFileSync(join(root, rel), "utf8");

const secretName = /PASSWORD|SECRET|TOKEN|_KEY$|^KEY$|PASSPHRASE/i;

// ---------------------------------------------------------------------------------------------
// Dockerfile

interface Instruction {
  op: string;
  args: string;
}

function dockerfileInstructions(text: string): Instruction[] {
  const logical: string[] = [];
  let current = "";
  for (const raw of text.split("\n")) {
    const line = raw.trimEnd();
    if (/^\s*#/.test(line)) continue;
    if (line.endsWith("\\")) {
      current += `${line.slice(0, -1)} `;
      continue;
    }
    current += line;
    if (current.trim()) logical.push(current.trim());
    current = "";
  }
  return logical.map((l) => {
    const m = /^(\S+)\s*(.*)$/.exec(l)!;
    return { op: m[1]!.toUpperCase(), args: m[2]! };
  });
}

// ---------------------------------------------------------------------------------------------
// Shared state: env.example, the compose file as written and as interpolated, the rendered files

const envExample = parseEnvFile(read("deploy/env.example"));
const composeText = read("docker-compose.yml");
const composeRaw = parse(composeText, { merge: true }) as Json;
const compose = interpolateDeep(composeRaw, envExample, "docker-compose.yml") as Json;
const services = compose.services as Record<string, Json>;
const service = (name: string): Json => {
  const s = services[name];
  assert.ok(s, `docker-compose.yml has no service ${name}`);
  return s;
};
const setupText = read("deploy/setup.sh");
const bashArray = (name: string): string[] => {
  const m = new RegExp(`^${name}=\\(([^)]*)\\)`, "m").exec(setupText);
  assert.ok(m, `deploy/setup.sh defines no array ${name}`);
  return m[1]!.trim().split(/\s+/);
};
const templates = bashArray("templates");
const templateVars = bashArray("template_vars");

// Rendered once, on first use, by deploy/setup.sh itself; each file is parsed on first use, so
// a broken one fails the tests that need it with its own error.
let renderedDir: string | undefined;
function renderedFile(rel: string): string {
  if (!renderedDir) {
    renderedDir = tempDir("kuvert-deploy-");
    execFileSync("bash", [setupScript, "render", "--env-file", join(root, "deploy", "env.example"), "--out", renderedDir], { stdio: "pipe" });
  }
  return join(renderedDir, rel);
}
after(() => {
  if (renderedDir) rmSync(renderedDir, { recursive: true, force: true });
});

const once = <T>(make: () => T): (() => T) => {
  let made: { value: T } | undefined;
  return () => (made ??= { value: make() }).value;
};
/** Kuvert's deployment configuration, through Kuvert's own loader, with the kuvert service's environment. */
const kuvertConfig = once((): KuvertConfig => loadConfig(renderedFile("kuvert/config.yaml"), environmentOf(service("kuvert"))));
const synapseConfig = once(() => parse(readFileSync(renderedFile("synapse/homeserver.yaml"), "utf8")) as Json);
const elementConfig = once(() => JSON.parse(readFileSync(renderedFile("element/config.json"), "utf8")) as Json);

/** deploy/haproxy/haproxy.cfg, the balancer's configuration. */
const haproxyConfig = once(() => read("deploy/haproxy/haproxy.cfg"));

/** One section of an HAProxy configuration: its header line to the next unindented line. */
function haproxySection(cfg: string, kind: string, name: string): string {
  const lines = cfg.split("\n");
  const start = lines.findIndex((l) => l.trim() === `${kind} ${name}`.trim());
  assert.ok(start >= 0, `haproxy.cfg has no ${kind} ${name}`);
  const end = lines.findIndex((l, i) => i > start && /^\S/.test(l));
  return lines.slice(start, end < 0 ? undefined : end).join("\n");
}

/** Where kuvert-proxy sends what reaches it on a port: the frontend binding it, its backend's servers. */
function balancedTo(port: number): { host: string; port: number } {
  const cfg = haproxyConfig();
  const frontend = [...cfg.matchAll(/^frontend (\S+)$/gm)].map((m) => haproxySection(cfg, "frontend", m[1]!)).find((f) => new RegExp(`^ +bind :${port}$`, "m").test(f));
  assert.ok(frontend, `kuvert-proxy listens on no port ${port}`);
  const backend = /^ +default_backend (\S+)$/m.exec(frontend)?.[1];
  assert.ok(backend, `the frontend on ${port} names no backend`);
  const server = /^ +server-template \S+ \d+ ([a-z0-9-]+):(\d+)$/m.exec(haproxySection(cfg, "backend", backend));
  assert.ok(server, `backend ${backend} names no servers`);
  return { host: server[1]!, port: Number(server[2]) };
}

/** The container path a service mounts a repository file at (read-only). */
function renderlessMount(serviceName: string, source: string): string {
  const mount = mountsOf(service(serviceName)).find((m) => m.kind === "bind" && posix.normalize(m.source) === source);
  assert.ok(mount?.readOnly, `${serviceName} does not mount ${source} read-only`);
  return mount.target;
}

/** Where a rendered file goes in a container, resolved through the compose file's bind mounts. */
function renderedMountTarget(serviceName: string, template: string): Mount {
  const mount = mountsOf(service(serviceName)).find((m) => m.kind === "bind" && posix.normalize(m.source) === `deploy/site/${template}`);
  assert.ok(mount, `${serviceName} does not mount the rendered deploy/site/${template}`);
  return mount;
}

// ---------------------------------------------------------------------------------------------

describe("docker-compose.yml", () => {
  it("parses as YAML, and every service has an image or a build", () => {
    const doc = parseDocument(composeText, { merge: true });
    assert.deepEqual(
      doc.errors.map((e) => e.message),
      [],
    );
    assert.deepEqual(
      doc.warnings.map((e) => e.message),
      [],
    );
    assert.ok(Object.keys(services).length >= 10, "the stack has its services");
    for (const [name, s] of Object.entries(services)) {
      assert.ok(typeof s.image === "string" || s.build !== undefined, `${name} has neither image nor build`);
    }
    for (const name of ["postgres", "synapse", "kuvert", "kuvert-proxy", "clamav", "mailpit", "element", "jitsi-web", "jitsi-prosody", "jitsi-jicofo", "jitsi-jvb"]) service(name);
  });

  it("gives every service a health check", () => {
    for (const [name, s] of Object.entries(services)) {
      const hc = s.healthcheck;
      assert.ok(isObject(hc), `${name} has no healthcheck`);
      assert.notEqual(hc.disable, true, `${name} disables its healthcheck`);
      const test = hc.test as unknown;
      assert.ok(Array.isArray(test) && test.length >= 2, `${name}: healthcheck.test must be a CMD or CMD-SHELL list`);
      assert.ok(test[0] === "CMD" || test[0] === "CMD-SHELL", `${name}: healthcheck.test starts with ${String(test[0])}`);
    }
  });

  it("depends only on services that exist, waiting for health only where there is a health check", () => {
    const conditions = new Set(["service_started", "service_healthy", "service_completed_successfully"]);
    for (const [name, s] of Object.entries(services)) {
      const deps = s.depends_on;
      if (deps === undefined) continue;
      const entries: [string, unknown][] = Array.isArray(deps) ? deps.map((d) => [String(d), {}]) : Object.entries(deps as Json);
      for (const [dep, spec] of entries) {
        assert.ok(services[dep], `${name} depends on ${dep}, which is not a service`);
        assert.notEqual(dep, name, `${name} depends on itself`);
        const condition = isObject(spec) ? (spec.condition as string | undefined) : undefined;
        if (condition !== undefined) assert.ok(conditions.has(condition), `${name} → ${dep}: unknown condition ${condition}`);
        if (condition === "service_healthy") assert.ok(isObject(services[dep]!.healthcheck), `${name} waits for ${dep} to be healthy, which has no health check`);
      }
    }
    const kuvertDeps = service("kuvert").depends_on as Json;
    assert.deepEqual(kuvertDeps.postgres, { condition: "service_healthy" });
    assert.deepEqual(kuvertDeps.synapse, { condition: "service_healthy" });
    assert.deepEqual((service("synapse").depends_on as Json).postgres, { condition: "service_healthy" });
  });

  it("uses only variables that deploy/env.example documents, and env.example has none that nothing uses", () => {
    const inCompose = referencedVariables(strings(composeRaw));
    const inTemplates = referencedVariables(templates.map((t) => read(`deploy/${t}`)));
    for (const v of inCompose.all) assert.ok(v in envExample, `docker-compose.yml uses \${${v}}, which deploy/env.example does not list`);
    for (const v of inCompose.mandatory) assert.notEqual(envExample[v], "", `${v} is mandatory in docker-compose.yml but empty in deploy/env.example`);
    for (const v of inTemplates.all) {
      assert.ok(v in envExample, `a template uses \${${v}}, which deploy/env.example does not list`);
      assert.ok(templateVars.includes(v), `a template uses \${${v}}, which deploy/setup.sh does not allow (template_vars)`);
    }
    for (const v of templateVars) assert.doesNotMatch(v, secretName, `template variable ${v} looks like a secret: rendered files must hold none`);
    for (const v of Object.keys(envExample)) {
      assert.ok(inCompose.all.has(v) || inTemplates.all.has(v), `deploy/env.example lists ${v}, which neither docker-compose.yml nor a template uses`);
    }
    // Every variable is explained: the nearest line above it that is not another variable is a comment.
    const lines = read("deploy/env.example").split("\n");
    for (const v of Object.keys(envExample)) {
      let i = lines.findIndex((l) => l.startsWith(`${v}=`)) - 1;
      while (i >= 0 && /^[A-Z_][A-Z0-9_]*=/.test(lines[i]!)) i--;
      assert.match(lines[i] ?? "", /^#/, `deploy/env.example: ${v} has no comment above it`);
    }
  });

  it("mounts only files from deploy/ that exist in the repository or that deploy/setup.sh renders, and declares every named volume", () => {
    const declared = new Set(Object.keys((compose.volumes ?? {}) as Json));
    const used = new Set<string>();
    for (const [name, s] of Object.entries(services)) {
      for (const m of mountsOf(s)) {
        if (m.kind === "volume") {
          assert.ok(declared.has(m.source), `${name} mounts the volume ${m.source}, which is not declared`);
          used.add(m.source);
          continue;
        }
        const source = posix.normalize(m.source);
        assert.ok(source.startsWith("deploy/"), `${name} bind-mounts ${m.source}, which is not under ./deploy`);
        if (source.startsWith("deploy/site/")) {
          const rel = source.slice("deploy/site/".length);
          assert.ok(templates.includes(rel), `${name} mounts ${m.source}, which deploy/setup.sh does not render`);
          assert.ok(statSync(renderedFile(rel)).isFile(), `deploy/setup.sh render did not produce ${rel}`);
          assert.ok(existsSync(join(root, "deploy", rel)), `the template deploy/${rel} is missing`);
        } else {
          assert.ok(existsSync(join(root, source)) && statSync(join(root, source)).isFile(), `${name} mounts ${m.source}, which is not a file in the repository`);
        }
        assert.ok(m.readOnly, `${name} mounts ${m.source} writable; configuration is read-only`);
      }
    }
    for (const v of declared) assert.ok(used.has(v), `the volume ${v} is declared but no service uses it`);
    for (const t of templates) assert.ok(existsSync(join(root, "deploy", t)), `deploy/setup.sh renders deploy/${t}, which does not exist`);
  });

  it("keeps the databases and clamd on the internal network, which has no route out", () => {
    const networks = compose.networks as Json;
    for (const [name, s] of Object.entries(services)) {
      for (const n of networksOf(s)) assert.ok(n in networks, `${name} joins the undeclared network ${n}`);
      if (portsOf(s).length > 0) {
        assert.ok(
          networksOf(s).some((n) => (networks[n] as Json | null)?.internal !== true),
          `${name} publishes ports but sits only on internal networks`,
        );
      }
    }
    assert.equal((networks.internal as Json).internal, true, "the network internal must be internal: true");
    assert.deepEqual(networksOf(service("postgres")), ["internal"]);
    assert.deepEqual(portsOf(service("postgres")), []);
    for (const name of ["synapse", "kuvert", "kuvert-proxy", "clamav"]) assert.ok(networksOf(service(name)).includes("internal"), `${name} is not on the internal network`);
    assert.ok(exposedPorts(service("clamav")).includes(3310), "clamd's TCP port 3310 is not exposed");
    assert.deepEqual(portsOf(service("clamav")), [], "clamd must not be published");
    assert.match(String(service("clamav").image), /^clamav\/clamav:/);
  });

  it("publishes the web front ends on BIND_ADDRESS and the videobridge's media port over UDP", () => {
    for (const name of ["synapse", "kuvert-proxy", "element", "jitsi-web", "mailpit"]) {
      const ports = portsOf(service(name));
      assert.ok(ports.length > 0, `${name} publishes nothing`);
      for (const p of ports) assert.equal(p.hostIp, envExample.BIND_ADDRESS, `${name} publishes ${p.target} on ${p.hostIp ?? "all interfaces"}`);
    }
    const jvbPort = Number(environmentOf(service("jitsi-jvb")).JVB_PORT);
    assert.equal(jvbPort, 10000);
    assert.deepEqual(portsOf(service("jitsi-jvb")), [{ hostIp: undefined, published: String(jvbPort), target: jvbPort, protocol: "udp" }]);
    const mailpit = service("mailpit");
    assert.ok(exposedPorts(mailpit).includes(1025), "mailpit's SMTP port 1025 is not exposed");
    assert.ok(
      portsOf(mailpit).some((p) => p.target === 8025),
      "mailpit's UI 8025 is not published",
    );
  });
});

describe("Kuvert in the stack", () => {
  it("loads its deployment configuration with Kuvert's own loader and the compose file's environment", () => {
    const config = kuvertConfig();
    assert.equal(config.homeserver.domain, envExample.KUVERT_SERVER_NAME);
    assert.equal(config.publicApi.baseUrl, envExample.KUVERT_PUBLIC_URL);
    assert.equal(config.logging.pseudonymKey, envExample.KUVERT_PSEUDONYM_KEY);
    assert.deepEqual(config.staff, [{ userId: `@${envExample.KUVERT_ADMIN_LOCALPART}:${envExample.KUVERT_SERVER_NAME}`, roles: ["admin"] }]);
    assert.ok(config.database.url, "KUVERT_DATABASE_URL does not reach Kuvert");
    const db = new URL(config.database.url);
    assert.equal(db.hostname, "postgres");
    assert.equal(db.port, "5432");
    assert.equal(db.pathname, "/kuvert");
    assert.equal(db.username, "kuvert");
    assert.equal(decodeURIComponent(db.password), envExample.KUVERT_DB_PASSWORD);
    assert.equal(environmentOf(service("postgres")).KUVERT_DB_PASSWORD, envExample.KUVERT_DB_PASSWORD, "postgres creates the role with another password");
    const init = read("deploy/postgres/init.sh");
    assert.match(init, /CREATE ROLE kuvert LOGIN PASSWORD :'kuvert_password'/);
    assert.match(init, /CREATE DATABASE kuvert OWNER kuvert ENCODING 'UTF8'/);
    assert.match(init, /--set=kuvert_password="\$KUVERT_DB_PASSWORD"/);
    assert.ok(
      networksOf(service("kuvert")).some((n) => networksOf(service("postgres")).includes(n)),
      "Kuvert cannot reach postgres",
    );
    assert.ok(exposedPorts(service("postgres")).includes(5432));
  });

  it("reaches Synapse at homeserver.url: a compose service and port on the internal network", () => {
    const { host, port } = hostAndPort(kuvertConfig().homeserver.url);
    assert.equal(host, "synapse");
    const synapse = service(host);
    assert.ok(networksOf(synapse).includes("internal") && networksOf(service("kuvert")).includes("internal"), "Kuvert and Synapse do not share the internal network");
    assert.ok(exposedPorts(synapse).includes(port), `synapse does not expose ${port}`);
    const listeners = synapseConfig().listeners as Json[];
    const listener = listeners.find((l) => l.port === port);
    assert.ok(listener, `Synapse has no listener on ${port}`);
    assert.equal(listener.type, "http");
    assert.ok(((listener.bind_addresses as string[] | undefined) ?? ["0.0.0.0"]).includes("0.0.0.0"), "Synapse's listener is not reachable from other containers");
    assert.ok(
      (listener.resources as Json[]).some((r) => (r.names as string[]).includes("client")),
      `Synapse's listener on ${port} does not serve the client API`,
    );
    const hc = (synapse.healthcheck as Json).test as string[];
    assert.match(hc.join(" "), new RegExp(`localhost:${port}/health`));
  });

  it("is reached by Synapse at appservice.url through kuvert-proxy on the internal network, and never from the host", () => {
    const { host, port } = hostAndPort(kuvertConfig().appservice.url);
    assert.equal(host, "kuvert-proxy", "Synapse must reach Kuvert's replicas through the balancer");
    assert.ok(networksOf(service(host)).includes("internal"), "kuvert-proxy is not on the internal network");
    assert.ok(exposedPorts(service(host)).includes(port), `kuvert-proxy does not expose ${port}`);
    assert.deepEqual(balancedTo(port), { host: "kuvert", port: kuvertConfig().appservice.listener.port });
    assert.equal(kuvertConfig().appservice.listener.bindAddress, "0.0.0.0", "the appservice listener must accept connections from other containers");
    const kuvert = service("kuvert");
    assert.ok(networksOf(kuvert).includes("internal"), "Kuvert is not on the internal network");
    assert.ok(exposedPorts(kuvert).includes(kuvertConfig().appservice.listener.port), "kuvert does not expose its appservice listener");
    for (const name of ["kuvert", "kuvert-proxy"])
      assert.ok(
        portsOf(service(name)).every((p) => p.target !== port),
        `${name} publishes the appservice port ${port} on the host`,
      );
    const publicPort = kuvertConfig().publicApi.listener.port;
    assert.notEqual(publicPort, kuvertConfig().appservice.listener.port, "the two listeners share a port");
    assert.equal(kuvertConfig().publicApi.listener.bindAddress, "0.0.0.0");
    // Replicas cannot share a host port: only the balancer publishes, and it forwards to the public listener.
    assert.deepEqual(portsOf(kuvert), [], "a replicated service must publish nothing");
    const published = portsOf(service("kuvert-proxy")).find((p) => p.published === envExample.KUVERT_HTTP_PORT);
    assert.ok(published, "kuvert-proxy does not publish KUVERT_HTTP_PORT");
    assert.deepEqual(balancedTo(published.target), { host: "kuvert", port: publicPort });
    assert.match(((kuvert.healthcheck as Json).test as string[]).join(" "), new RegExp(`fetch\\('http://127\\.0\\.0\\.1:${publicPort}/healthz'\\)`));
    // Synapse's upload check asks the same listener, through the same balancer.
    const uploadCheck = (synapseConfig().modules as Json[]).map((m) => (m.config as Json | undefined)?.kuvert_url).find((u) => typeof u === "string") as string | undefined;
    assert.ok(uploadCheck, "Synapse's upload check names no kuvert_url");
    assert.deepEqual(hostAndPort(uploadCheck), { host, port });
  });

  it("runs KUVERT_REPLICAS replicas behind a balancer that Docker's DNS tells where they are", () => {
    assert.equal(String((service("kuvert").deploy as Json).replicas), envExample.KUVERT_REPLICAS);
    assert.equal((service("kuvert") as Json).container_name, undefined, "a container name allows one replica only");
    const cfg = haproxyConfig();
    assert.match(cfg, /^resolvers docker\n {2}nameserver dns 127\.0\.0\.11:53$/m, "HAProxy asks Docker's embedded DNS for the replicas");
    for (const backend of ["kuvert-appservice", "kuvert-public"]) {
      const section = haproxySection(cfg, "backend", backend);
      assert.match(section, /option httpchk GET \/health/, `${backend}: a replica that does not answer must leave the rotation`);
      assert.match(section, /check resolvers docker init-addr none/, `${backend}: replicas found through DNS, also those started later`);
      assert.doesNotMatch(section, /\b(stick|cookie|balance source)\b/, `${backend}: any replica can take any request; no stickiness`);
    }
    assert.match(haproxySection(cfg, "defaults", ""), /option redispatch/, "a request refused by a dead replica goes to another");
    const proxy = service("kuvert-proxy");
    assert.deepEqual((proxy.depends_on as Json).kuvert, { condition: "service_started" });
    assert.equal(renderlessMount("kuvert-proxy", "deploy/haproxy/haproxy.cfg"), "/usr/local/etc/haproxy/haproxy.cfg");
  });

  it("hands HAProxy a configuration it accepts (haproxy -c, Debian's haproxy), as deployed and as the tests run it", () => {
    // Debian puts it in /usr/sbin, which is not on every user's PATH.
    const haproxy = existsSync("/usr/sbin/haproxy") ? "/usr/sbin/haproxy" : "haproxy";
    const check = (file: string) => {
      const res = spawnSync(haproxy, ["-c", "-f", file], { encoding: "utf8" });
      assert.ok(!res.error, `haproxy could not be run (scripts/setup.sh --tests installs it): ${res.error?.message}`);
      assert.equal(res.status, 0, res.stderr + res.stdout);
    };
    check(deployedHaproxyCfg);
    // The multi-process suites put the same file in front of their Kuvert processes (test/support/haproxy.ts).
    const dir = tempDir("kuvert-haproxy-");
    try {
      const forTests = balancerConfig(haproxyConfig(), { appservice: 19993, public: 18080 }, [
        { appservice: 29993, public: 28080 },
        { appservice: 39993, public: 38080 },
      ]);
      assert.match(forTests, /^ {2}server kuvert-2 127\.0\.0\.1:38080$/m);
      assert.doesNotMatch(forTests, /resolvers|server-template/);
      writeFileSync(join(dir, "haproxy.cfg"), forTests);
      check(join(dir, "haproxy.cfg"));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("names the registration file that Synapse loads: the same file in the same volume", () => {
    const inKuvert = resolveInContainer(service("kuvert"), kuvertConfig().appservice.registrationFile);
    assert.ok(inKuvert, `${kuvertConfig().appservice.registrationFile} is on no volume of the kuvert container`);
    assert.equal(inKuvert.mount.kind, "volume", "the registration must live in a named volume shared with Synapse");
    assert.equal(inKuvert.mount.readOnly, false, "Kuvert writes the registration (generate-registration) into its mount");
    const files = synapseConfig().app_service_config_files as string[];
    assert.ok(Array.isArray(files) && files.length > 0, "Synapse loads no application service");
    const matches = files.map((f) => resolveInContainer(service("synapse"), f)).filter((r) => r && r.mount.source === inKuvert.mount.source && r.rest === inKuvert.rest);
    assert.equal(matches.length, 1, `Synapse's app_service_config_files (${files.join(", ")}) does not name ${inKuvert.mount.source}:${inKuvert.rest}`);
    assert.equal(matches[0]!.mount.readOnly, true, "Synapse must mount the registration read-only");
    const dir = /^registration_dir=(\S+)$/m.exec(setupText)?.[1];
    assert.equal(dir, inKuvert.mount.target, "deploy/setup.sh generates the registration into another directory");
  });

  it("generates a registration whose url and sender_localpart Synapse can use", () => {
    const reg = buildRegistration(kuvertConfig());
    const serverName = synapseConfig().server_name as string;
    assert.equal(serverName, kuvertConfig().homeserver.domain, "Synapse's server_name and Kuvert's homeserver.domain differ");
    assert.equal(reg.id, kuvertConfig().appservice.id);
    assert.equal(reg.sender_localpart, "kuvert");
    assert.ok(reg.url, "the registration has no url");
    const { host, port } = hostAndPort(reg.url);
    assert.ok(
      networksOf(service(host)).some((n) => networksOf(service("synapse")).includes(n)),
      `Synapse cannot reach ${host}`,
    );
    assert.ok(exposedPorts(service(host)).includes(port), `${host} does not expose ${port}`);
    const users = new RegExp(`^${reg.namespaces.users[0]!.regex}$`);
    assert.match(`@${kuvertConfig().appservice.userPrefix}clerk:${serverName}`, users);
    assert.doesNotMatch(`@${kuvertConfig().appservice.userPrefix}clerk:other.example`, users);
    for (const s of kuvertConfig().staff) assert.doesNotMatch(s.userId, users, `staff member ${s.userId} is in Kuvert's exclusive namespace`);
    assert.ok(
      kuvertConfig().staff.every((s) => s.userId.endsWith(`:${serverName}`)),
      "the staff example lives on another server",
    );
    assert.equal(String(synapseConfig().public_baseurl).replace(/\/$/, ""), kuvertConfig().homeserver.publicUrl);
  });
});

describe("ClamAV in the stack", () => {
  const clamdConf = () =>
    new Map(
      read("deploy/clamav/clamd.conf")
        .split("\n")
        .filter((l) => l.trim() && !l.trim().startsWith("#"))
        .map((l) => {
          const [key, ...rest] = l.trim().split(/\s+/);
          return [key!, rest.join(" ")] as const;
        }),
    );
  const bytes = (size: string) => {
    const m = /^(\d+)([KM]?)$/i.exec(size);
    assert.ok(m, `a clamd size: ${size}`);
    return Number(m[1]) * (m[2]!.toUpperCase() === "M" ? 1024 * 1024 : m[2]!.toUpperCase() === "K" ? 1024 : 1);
  };

  it("scans exactly as much as Kuvert sends, and never answers OK for what it skipped", () => {
    const conf = clamdConf();
    const stream = bytes(conf.get("StreamMaxLength") ?? "");
    assert.equal(stream, kuvertConfig().scanning.maxStreamBytes, "StreamMaxLength = scanning.maxStreamBytes");
    const skipsSilently = conf.get("AlertExceedsMax") !== "yes" && (bytes(conf.get("MaxFileSize") ?? "0") < stream || bytes(conf.get("MaxScanSize") ?? "0") < stream);
    assert.equal(skipsSilently, false, "MaxFileSize and MaxScanSize cover StreamMaxLength, or AlertExceedsMax is on");
    assert.ok(kuvertConfig().documents.maxBytes <= stream, "Kuvert accepts nothing larger than clamd scans");
    assert.equal(conf.get("TCPSocket"), "3310");
    assert.equal(kuvertConfig().scanning.host, "clamav");
    assert.equal(kuvertConfig().scanning.port, 3310);
  });

  it("mounts that configuration into the clamav service", () => {
    assert.ok(read("docker-compose.yml").includes("./deploy/clamav/clamd.conf:/etc/clamav/clamd.conf:ro"));
  });
});

describe("Synapse and PostgreSQL", () => {
  it("connects Synapse to its own UTF8/C database with the password from the environment only", () => {
    const db = synapseConfig().database as Json;
    assert.equal(db.name, "psycopg2");
    const args = db.args as Json;
    assert.equal(args.host, "postgres");
    assert.equal(args.dbname, "synapse");
    assert.equal(args.user, "synapse");
    assert.ok(!("password" in args), "homeserver.yaml must not hold the database password");
    assert.equal(environmentOf(service("synapse")).PGPASSWORD, envExample.SYNAPSE_DB_PASSWORD);
    assert.equal(environmentOf(service("postgres")).SYNAPSE_DB_PASSWORD, envExample.SYNAPSE_DB_PASSWORD);
    const init = read("deploy/postgres/init.sh");
    assert.match(init, /CREATE DATABASE synapse OWNER synapse ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;/);
    assert.match(init, /--set=synapse_password="\$SYNAPSE_DB_PASSWORD"/);
    const initMount = mountsOf(service("postgres")).find((m) => posix.normalize(m.source) === "deploy/postgres/init.sh");
    assert.ok(initMount?.target.startsWith("/docker-entrypoint-initdb.d/"), "init.sh is not mounted where the postgres image runs it");
    assert.match(String(service("postgres").image), /^postgres:16/);
    assert.match(((service("postgres").healthcheck as Json).test as string[]).join(" "), /pg_isready/);
  });

  it("configures Synapse's files, authenticated media and (documented, not enabled) retention", () => {
    assert.equal(synapseConfig().server_name, envExample.KUVERT_SERVER_NAME);
    assert.equal(synapseConfig().public_baseurl, `${envExample.SYNAPSE_PUBLIC_URL}/`);
    assert.equal(synapseConfig().enable_authenticated_media, true);
    assert.equal(synapseConfig().report_stats, false);
    assert.equal(synapseConfig().enable_registration, false);
    const synapse = service("synapse");
    const configPath = environmentOf(synapse).SYNAPSE_CONFIG_PATH!;
    assert.equal(renderedMountTarget("synapse", "synapse/homeserver.yaml").target, configPath);
    const logMount = resolveInContainer(synapse, synapseConfig().log_config as string);
    assert.ok(logMount && logMount.mount.kind === "bind" && existsSync(join(root, logMount.mount.source)), "log_config is not a mounted file");
    assert.equal(parse(read("deploy/synapse/log.config")).version, 1);
    for (const key of ["media_store_path", "signing_key_path", "registration_shared_secret_path"]) {
      const where = resolveInContainer(synapse, synapseConfig()[key] as string);
      assert.ok(where && where.mount.kind === "volume" && !where.mount.readOnly, `${key} is not in a writable volume`);
    }
    assert.ok(!("retention" in synapseConfig()) && !("media_retention" in synapseConfig()), "retention is a records decision: document it, do not switch it on");
    const template = read("deploy/synapse/homeserver.yaml");
    assert.match(template, /^# retention:\n#   enabled: true\n#   default_policy:\n#     max_lifetime: /m);
    assert.match(template, /^# media_retention:\n#   local_media_lifetime: /m);
    assert.match(template, /^#   remote_media_lifetime: /m);
  });
});

describe("Element and Jitsi", () => {
  it("points Element at Synapse's public URL and the Jitsi domain", () => {
    const hs = (elementConfig().default_server_config as Json)["m.homeserver"] as Json;
    assert.equal(hs.base_url, envExample.SYNAPSE_PUBLIC_URL);
    assert.equal(hs.base_url, String(synapseConfig().public_baseurl).replace(/\/$/, ""));
    assert.equal(hs.server_name, synapseConfig().server_name);
    assert.ok(!("default_server_name" in elementConfig()) && !("default_hs_url" in elementConfig()), "Element refuses a mix of default_server_config and default_server_name/default_hs_url");
    const jitsiDomain = (elementConfig().jitsi as Json).preferred_domain;
    assert.equal(jitsiDomain, envExample.JITSI_DOMAIN);
    for (const name of ["jitsi-web", "jitsi-prosody", "jitsi-jvb"]) {
      assert.equal(new URL(environmentOf(service(name)).PUBLIC_URL!).hostname, jitsiDomain, `${name}'s PUBLIC_URL is not the domain Element uses`);
    }
    assert.equal(renderedMountTarget("element", "element/config.json").target, "/app/config.json");
  });

  it("lets only room members (Matrix user verification by Kuvert) and guests with a signed token into Jitsi", () => {
    const prosody = environmentOf(service("jitsi-prosody"));
    assert.equal(prosody.ENABLE_AUTH, "1");
    assert.equal(prosody.AUTH_TYPE, "hybrid_matrix_token");
    assert.equal(prosody.ENABLE_GUESTS, "0", "anonymous guests would bypass both checks");
    assert.equal(prosody.JWT_ALLOW_EMPTY, "0");
    assert.equal(prosody.JWT_APP_ID, envExample.JITSI_JWT_APP_ID);
    assert.equal(prosody.JWT_APP_SECRET, envExample.JITSI_JWT_APP_SECRET);
    const uvs = hostAndPort(prosody.MATRIX_UVS_URL!);
    assert.equal(uvs.host, "kuvert-proxy");
    assert.deepEqual(balancedTo(uvs.port), { host: "kuvert", port: kuvertConfig().publicApi.listener.port }, "MATRIX_UVS_URL must reach Kuvert's public listener");
    assert.ok(
      networksOf(service("jitsi-prosody")).some((n) => networksOf(service("kuvert-proxy")).includes(n)),
      "Prosody cannot reach Kuvert's balancer",
    );
    assert.equal(environmentOf(service("jitsi-jicofo")).AUTH_TYPE, "hybrid_matrix_token");
    assert.equal(environmentOf(service("jitsi-web")).ENABLE_GUESTS, "0");
    // The rootless web image links /usr/share/jitsi-meet/.well-known to /run/web/.well-known, on the /run tmpfs.
    const wellKnown = mountsOf(service("jitsi-web")).find((m) => m.target === "/run/web/.well-known/element/jitsi");
    assert.ok(wellKnown, "Jitsi does not serve /.well-known/element/jitsi");
    assert.ok(
      ((service("jitsi-web").tmpfs ?? []) as string[]).some((t) => t.split(":")[0] === "/run"),
      "/run/web lives on the /run tmpfs",
    );
    assert.deepEqual(JSON.parse(read(posix.normalize(wellKnown.source))), { auth: "openidtoken-jwt" });
    for (const name of ["jitsi-jicofo", "jitsi-jvb"]) {
      assert.equal(environmentOf(service(name)).XMPP_SERVER, "xmpp.meet.jitsi");
    }
    const aliases = ((service("jitsi-prosody").networks as Json).public as Json).aliases as string[];
    assert.ok(aliases.includes("xmpp.meet.jitsi"), "no service answers to XMPP_SERVER");
    assert.equal(environmentOf(service("jitsi-jicofo")).JICOFO_AUTH_PASSWORD, prosody.JICOFO_AUTH_PASSWORD);
    assert.equal(environmentOf(service("jitsi-jvb")).JVB_AUTH_PASSWORD, prosody.JVB_AUTH_PASSWORD);
  });
});

describe("Kuvert's video consultations in the stack", () => {
  it("signs guest tokens for the Jitsi that checks them: same app id, secret and domain", () => {
    const calls = kuvertConfig().calls;
    const prosody = environmentOf(service("jitsi-prosody"));
    assert.equal(calls.jitsiDomain, (elementConfig().jitsi as Json).preferred_domain, "Kuvert's widgets name the domain Element uses");
    assert.equal(calls.jitsiDomain, envExample.JITSI_DOMAIN);
    assert.equal(new URL(calls.jitsiUrl!).hostname, new URL(prosody.PUBLIC_URL!).hostname, "the guest page loads external_api.js from the stack's Jitsi");
    assert.equal(calls.appId, prosody.JWT_APP_ID);
    assert.equal(calls.appSecret, prosody.JWT_APP_SECRET);
    assert.equal(calls.membershipCheck, true, "members are checked by Prosody through /verify");
    assert.equal(new URL(calls.widgetBaseUrl).origin, envExample.ELEMENT_PUBLIC_URL, "the widget opens the stack's Element's jitsi.html");
  });

  it("has Prosody verify Element's members with Kuvert, with the bearer token Kuvert wants", () => {
    const calls = kuvertConfig().calls;
    const prosody = environmentOf(service("jitsi-prosody"));
    assert.ok(calls.verifyToken, "Kuvert's /verify is on the public listener: it needs a bearer token");
    assert.equal(prosody.MATRIX_UVS_AUTH_TOKEN, calls.verifyToken);
    assert.equal(prosody.MATRIX_UVS_ISSUER, calls.jitsiDomain, "Element's wrapper signs its Matrix token with iss = the Jitsi domain");
    assert.equal(prosody.MATRIX_UVS_SYNC_POWER_LEVELS, "1");
    const raw = read("docker-compose.yml");
    assert.match(raw, /KUVERT_JITSI_APP_SECRET: \$\{JITSI_JWT_APP_SECRET:\?/, "Kuvert's signing secret is Prosody's JWT_APP_SECRET variable");
    assert.match(raw, /JWT_APP_SECRET: \$\{JITSI_JWT_APP_SECRET:\?/);
    assert.match(raw, /KUVERT_JITSI_VERIFY_TOKEN: \$\{JITSI_UVS_AUTH_TOKEN:\?/);
    assert.match(raw, /MATRIX_UVS_AUTH_TOKEN: \$\{JITSI_UVS_AUTH_TOKEN:\?/);
  });
});

describe("the tokens Prosody accepts", () => {
  // Jitsi's token library (token/util.lib.lua, luajwtjitsi.lib.lua's verify_claim) compares "aud"
  // and "iss" with exact string matches against asap_accepted_audiences / asap_accepted_issuers,
  // which docker-jitsi-meet renders from these comma-separated variables; hybrid_matrix_token
  // replaces the issuers with {app_id, uvs_issuer}.
  const list = (value: string | undefined): string[] =>
    (value ?? "")
      .split(",")
      .map((v) => v.trim())
      .filter((v) => v !== "");
  const prosody = () => environmentOf(service("jitsi-prosody"));
  const accepted = () => {
    const p = prosody();
    const audiences = list(p.JWT_ACCEPTED_AUDIENCES);
    const issuers = p.AUTH_TYPE === "hybrid_matrix_token" ? [p.JWT_APP_ID!, p.MATRIX_UVS_ISSUER ?? "*"] : list(p.JWT_ACCEPTED_ISSUERS);
    return { audiences, issuers, admits: (t: { iss: string; aud: string }) => (audiences.length === 0 || audiences.includes(t.aud)) && (issuers.includes("*") || issuers.includes(t.iss)) };
  };

  it("admits Element's wrapper JWT (iss = the Jitsi domain, aud = https://<domain>) and Kuvert's guest join tokens, and nothing else", () => {
    const calls = kuvertConfig().calls;
    const domain = calls.jitsiDomain!;
    const { audiences, issuers, admits } = accepted();
    assert.deepEqual([...audiences].sort(), [calls.appId, `https://${domain}`].sort(), "exactly Kuvert's app id and Element's audience");
    assert.deepEqual([...issuers].sort(), [calls.appId, domain].sort(), "exactly Kuvert's app id and Element's issuer; no wildcard");
    assert.ok(admits({ iss: domain, aud: `https://${domain}` }), "Element's createJWTToken");
    assert.ok(admits({ iss: calls.appId, aud: calls.appId }), "Kuvert's join token for guests");
    assert.ok(!admits({ iss: calls.appId, aud: GUEST_LINK_AUDIENCE }), "a guest link's own token never opens the conference");
    assert.ok(!admits({ iss: "someone-else", aud: calls.appId }));
    assert.ok(!admits({ iss: domain, aud: "https://other.example.org" }));
    assert.ok(!issuers.includes("*") && !audiences.includes("*"));
  });

  it("renders the issuer list the hybrid module computes anyway, so the setting reads true", () => {
    const p = prosody();
    assert.deepEqual(list(p.JWT_ACCEPTED_ISSUERS), [p.JWT_APP_ID, p.MATRIX_UVS_ISSUER]);
  });
});

describe("Dockerfile", () => {
  const instructions = dockerfileInstructions(read("Dockerfile"));
  const index = (pred: (i: Instruction) => boolean, what: string): number => {
    const i = instructions.findIndex(pred);
    assert.ok(i >= 0, `the Dockerfile has no ${what}`);
    return i;
  };

  it("installs the runtime dependencies with tools/ in place, and runs as its own user", () => {
    // Every stage (the console's build stage, then the image) starts from the same Node image.
    const stages = instructions.filter((i) => i.op === "FROM");
    assert.equal(instructions[0]?.op, "FROM");
    for (const from of stages) assert.match(from.args, /^node:22-bookworm-slim( AS [a-z]+)?$/);
    assert.equal(stages.at(-1)!.args, "node:22-bookworm-slim", "the image itself must be the last stage");
    const npmCi = index((i) => i.op === "RUN" && /npm ci --omit=dev/.test(i.args), "RUN npm ci --omit=dev");
    assert.ok(npmCi > instructions.lastIndexOf(stages.at(-1)!), "npm ci --omit=dev must run in the image's stage");
    const built = index((i) => i.op === "COPY" && /^--from=\w+ \S*web\/console\/dist \S*web\/console\/dist$/.test(i.args), "COPY of the built console");
    assert.ok(built > instructions.lastIndexOf(stages.at(-1)!));
    const last = instructions.lastIndexOf(stages.at(-1)!);
    const inImage = (pred: (i: Instruction) => boolean) => instructions.findIndex((i, n) => n > last && pred(i));
    assert.ok(inImage((i) => i.op === "COPY" && /^tools\/? /.test(i.args)) > last, "the image's stage does not copy tools/");
    assert.ok(inImage((i) => i.op === "COPY" && /^tools\/? /.test(i.args)) < npmCi, "tools/ is copied after npm ci");
    assert.ok(inImage((i) => i.op === "COPY" && /package-lock\.json/.test(i.args)) < npmCi);
    assert.ok(read("package.json").includes('"file:./tools/crypto-unavailable"'), "package.json no longer overrides the crypto module");
    const users = instructions.filter((i) => i.op === "USER");
    assert.ok(users.length > 0, "the image runs as root");
    assert.ok(!["root", "0", "0:0"].includes(users.at(-1)!.args), "the image runs as root");
    assert.ok(instructions.lastIndexOf(users.at(-1)!) > npmCi);
    for (const copy of instructions.filter((i) => i.op === "COPY")) {
      if (copy.args.startsWith("--from=")) continue; // from a build stage, not the context
      const sources = copy.args
        .split(/\s+/)
        .slice(0, -1)
        .filter((s) => !s.startsWith("--"));
      for (const s of sources) if (s !== ".") assert.ok(existsSync(join(root, s)), `COPY ${s}: no such file`);
    }
  });

  it("starts Kuvert with the configuration the compose file mounts, and checks /healthz with Node's fetch", () => {
    const json = (op: string): unknown => JSON.parse(instructions.find((i) => i.op === op)!.args);
    assert.deepEqual(json("ENTRYPOINT"), ["node", "bin/kuvert.js"]);
    const cmd = json("CMD") as string[];
    assert.deepEqual(cmd, ["start", "--config", "/data/config.yaml"]);
    assert.equal(renderedMountTarget("kuvert", "kuvert/config.yaml").target, cmd[2], "docker-compose.yml mounts Kuvert's configuration elsewhere");
    const env = instructions
      .filter((i) => i.op === "ENV")
      .map((i) => i.args)
      .join(" ");
    assert.match(env, new RegExp(`KUVERT_CONFIG=${cmd[2]}(\\s|$)`));
    const hc = instructions.find((i) => i.op === "HEALTHCHECK");
    assert.ok(hc, "the Dockerfile has no HEALTHCHECK");
    assert.match(hc.args, new RegExp(`fetch\\('http://127\\.0\\.0\\.1:${kuvertConfig().publicApi.listener.port}/healthz'\\)`));
    assert.doesNotMatch(hc.args, /curl|wget/);
    assert.deepEqual(service("kuvert").build as Json, { context: ".", dockerfile: "Dockerfile" });
  });

  it("gets a build context of only what it needs (.dockerignore is an allowlist)", () => {
    const patterns = read(".dockerignore")
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith("#"));
    assert.equal(patterns[0], "*", ".dockerignore must exclude everything first");
    const admitted = patterns.filter((p) => p.startsWith("!")).map((p) => p.slice(1).replace(/\/$/, ""));
    // `npm ci` checks the lock against every workspace's package.json: those come in, nothing else of the workspaces.
    const workspaces = (JSON.parse(read("package.json")) as { workspaces?: string[] }).workspaces ?? [];
    const workspaceManifests = workspaces.map((w) => `${w}/package.json`);
    assert.deepEqual(new Set(admitted), new Set(["package.json", "package-lock.json", ...workspaceManifests, "tools", "appservice", "bin", "web", "config.sample.yaml"]));
    const dockerfile = read("Dockerfile");
    for (const manifest of workspaceManifests) {
      const copies = dockerfile.split("\n").filter((l) => l.startsWith(`COPY ${manifest} `));
      assert.equal(copies.length, 2, `the Dockerfile must copy ${manifest} before each \`npm ci\``);
    }
    assert.ok(patterns.includes("**/.env"), ".env files are not excluded inside admitted directories");
  });
});

describe("deploy/setup.sh and the secrets", () => {
  it("refuses env.example's placeholders, and `init` makes an .env that passes its check", () => {
    const dir = tempDir("kuvert-env-");
    try {
      const refused = spawnSync("bash", [setupScript, "check", "--env-file", join(root, "deploy", "env.example")], { encoding: "utf8" });
      assert.notEqual(refused.status, 0);
      assert.match(refused.stderr, /KUVERT_PSEUDONYM_KEY still says CHANGE_ME/);
      const envFile = join(dir, ".env");
      execFileSync("bash", [setupScript, "init", "--env-file", envFile], { stdio: "pipe" });
      assert.equal(statSync(envFile).mode & 0o777, 0o600, ".env must be readable by its owner only");
      const made = parseEnvFile(readFileSync(envFile, "utf8"));
      for (const [k, v] of Object.entries(envExample)) {
        if (v === "CHANGE_ME") assert.match(made[k]!, /^[0-9a-f]{64}$/, `${k} did not get a random secret`);
        else assert.equal(made[k], v);
      }
      const checked = spawnSync("bash", [setupScript, "check", "--env-file", envFile], { encoding: "utf8" });
      assert.equal(checked.status, 0, checked.stderr);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("commits no secret: env.example has placeholders, the rest only ${...} references", () => {
    for (const [k, v] of Object.entries(envExample)) {
      if (secretName.test(k)) assert.ok(v === "CHANGE_ME" || v === "", `deploy/env.example gives ${k} a value: ${v}`);
    }
    for (const [name, s] of Object.entries(composeRaw.services as Record<string, Json>)) {
      for (const [k, v] of Object.entries(environmentOf(s))) {
        if (secretName.test(k)) assert.match(v, /^\$\{[A-Z_][A-Z0-9_]*(:?[-?][^}]*)?\}$/, `${name}: ${k} is not a \${...} reference`);
        for (const cred of v.matchAll(/\/\/[^/:@\s]+:([^@\s]+)@/g)) assert.match(cred[1]!, /^\$\{[^}]+\}$/, `${name}: ${k} has a literal password`);
      }
    }
    const walk = (node: unknown, file: string, path: string): void => {
      if (Array.isArray(node)) node.forEach((v, i) => walk(v, file, `${path}[${i}]`));
      else if (isObject(node)) {
        for (const [k, v] of Object.entries(node)) {
          const literal = typeof v === "string" || typeof v === "number";
          if (secretName.test(k) && !/_(path|file)$/.test(k) && literal) assert.fail(`${file}: ${path}${k} holds a secret; secrets come from the environment`);
          walk(v, file, `${path}${k}.`);
        }
      }
    };
    walk(parse(read("deploy/synapse/homeserver.yaml")), "deploy/synapse/homeserver.yaml", "");
    walk(parse(read("deploy/kuvert/config.yaml")), "deploy/kuvert/config.yaml", "");
    walk(JSON.parse(read("deploy/element/config.json")), "deploy/element/config.json", "");

    const files = ["Dockerfile", ".dockerignore", "docker-compose.yml"];
    const collect = (dir: string): void => {
      for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
        const rel = posix.join(dir, entry.name);
        if (rel === "deploy/site") continue;
        if (entry.isDirectory()) collect(rel);
        else files.push(rel);
      }
    };
    collect("deploy");
    const tokenLike = /(?<![\w/.-])[A-Za-z0-9_+-]{24,}={0,2}(?![\w/.-])/g;
    for (const file of files) {
      const text = read(file);
      assert.doesNotMatch(text, /-----BEGIN [A-Z ]*PRIVATE KEY-----/, `${file} holds a private key`);
      for (const m of text.matchAll(tokenLike)) {
        const t = m[0];
        assert.ok(!(/\d/.test(t) && /[a-z]/.test(t) && /[A-Z]/.test(t)), `${file} holds something that looks like a token: ${t}`);
        assert.ok(!/^[0-9a-f]{32,}$/.test(t), `${file} holds something that looks like a hex secret: ${t}`);
      }
    }
    assert.match(read("deploy/.gitignore"), /^\/site\/$/m, "deploy/site/ (rendered files) is not ignored by git");
  });
});

describe("deploy/README.md", () => {
  it("covers the operator's steps: .env, setup.sh, TLS, TURN and pg_dump backups of both databases", () => {
    const readme = read("deploy/README.md");
    for (const needle of ["deploy/setup.sh init", "deploy/setup.sh", "docker compose up -d", "register_new_matrix_user", "KUVERT_HOMESERVER_ADMIN_TOKEN", "TLS", "TURN"]) {
      assert.ok(readme.includes(needle), `deploy/README.md does not mention ${needle}`);
    }
    assert.match(readme, /pg_dump\s[^\n]*\ssynapse\s*>/, "no pg_dump of the synapse database");
    assert.match(readme, /pg_dump\s[^\n]*\skuvert\s*>/, "no pg_dump of the kuvert database");
  });
});
