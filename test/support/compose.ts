// Docker Compose as the deployment tests read it: .env files, Compose's variable interpolation,
// and the compose file's service definitions normalised (mounts, ports, networks, environment).
import assert from "node:assert/strict";

export type Env = Record<string, string>;
export type Json = Record<string, unknown>;

export const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

// ---------------------------------------------------------------------------------------------
// .env and Compose's variable interpolation

/** Reads KEY=value lines as Docker Compose and deploy/setup.sh do. */
export function parseEnvFile(text: string): Env {
  const env: Env = {};
  for (const [i, raw] of text.split("\n").entries()) {
    const line = raw.replace(/\r$/, "");
    if (/^\s*(#|$)/.test(line)) continue;
    const m = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    assert.ok(m, `env file line ${i + 1} is not VARIABLE=value: ${line}`);
    let value = m[2]!;
    const quoted = /^"(.*)"$/.exec(value) ?? /^'(.*)'$/.exec(value);
    if (quoted) value = quoted[1]!;
    env[m[1]!] = value;
  }
  return env;
}

export const reference = /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g;

/** Compose's interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, $$. */
export function interpolate(text: string, env: Env, where: string): string {
  return text.replace(reference, (match, name: string | undefined, op: string | undefined, arg: string | undefined, bare: string | undefined) => {
    if (match === "$$") return "$";
    if (bare) throw new Error(`${where}: $${bare} without braces; write \${${bare}}`);
    const value = env[name!];
    switch (op) {
      case undefined:
        if (value === undefined) throw new Error(`${where}: \${${name}} is not set`);
        return value;
      case ":-":
        return value === undefined || value === "" ? arg! : value;
      case "-":
        return value === undefined ? arg! : value;
      case ":?":
        if (value === undefined || value === "") throw new Error(`${where}: ${arg}`);
        return value;
      default:
        if (value === undefined) throw new Error(`${where}: ${arg}`);
        return value;
    }
  });
}

export function interpolateDeep(node: unknown, env: Env, where: string): unknown {
  if (typeof node === "string") return interpolate(node, env, where);
  if (Array.isArray(node)) return node.map((v, i) => interpolateDeep(v, env, `${where}[${i}]`));
  if (isObject(node)) return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, interpolateDeep(v, env, `${where}.${k}`)]));
  return node;
}

export function strings(node: unknown): string[] {
  if (typeof node === "string") return [node];
  if (Array.isArray(node)) return node.flatMap(strings);
  if (isObject(node)) return Object.values(node).flatMap(strings);
  return [];
}

export function referencedVariables(texts: string[]): { all: Set<string>; mandatory: Set<string> } {
  const all = new Set<string>();
  const mandatory = new Set<string>();
  for (const text of texts) {
    for (const m of text.matchAll(reference)) {
      if (!m[1]) continue;
      all.add(m[1]);
      if (m[2]?.endsWith("?")) mandatory.add(m[1]);
    }
  }
  return { all, mandatory };
}

// ---------------------------------------------------------------------------------------------
// The compose file's service definitions, normalised

export interface Mount {
  kind: "bind" | "volume";
  source: string;
  target: string;
  readOnly: boolean;
}

export interface Port {
  hostIp: string | undefined;
  published: string | undefined;
  target: number;
  protocol: string;
}

export function mountsOf(service: Json): Mount[] {
  const volumes = (service.volumes ?? []) as unknown[];
  return volumes.map((v): Mount => {
    if (typeof v === "string") {
      const [source, target, mode] = v.split(":");
      assert.ok(source && target, `volume entry ${v} is not source:target`);
      return { kind: /^[./~]/.test(source) ? "bind" : "volume", source, target, readOnly: (mode ?? "").split(",").includes("ro") };
    }
    assert.ok(isObject(v), "a volume entry is neither a string nor a mapping");
    assert.ok(v.type === "bind" || v.type === "volume", `volume type ${String(v.type)} is neither bind nor volume`);
    return { kind: v.type as Mount["kind"], source: String(v.source), target: String(v.target), readOnly: v.read_only === true };
  });
}

export function portsOf(service: Json): Port[] {
  const ports = (service.ports ?? []) as unknown[];
  return ports.map((p): Port => {
    if (isObject(p)) {
      return { hostIp: p.host_ip as string | undefined, published: p.published === undefined ? undefined : String(p.published), target: Number(p.target), protocol: String(p.protocol ?? "tcp") };
    }
    const [spec, protocol = "tcp"] = String(p).split("/");
    const parts = spec!.split(":");
    const target = Number(parts.pop());
    const published = parts.pop();
    const hostIp = parts.pop();
    assert.equal(parts.length, 0, `port ${String(p)} has too many parts`);
    return { hostIp, published, target, protocol };
  });
}

export function networksOf(service: Json): string[] {
  const n = service.networks;
  if (n === undefined) return ["default"];
  return Array.isArray(n) ? n.map(String) : Object.keys(n as Json);
}

export function exposedPorts(service: Json): number[] {
  return ((service.expose ?? []) as unknown[]).map((p) => Number(String(p).split("/")[0]));
}

export function environmentOf(service: Json): Env {
  const e = service.environment;
  if (e === undefined) return {};
  if (Array.isArray(e)) {
    return Object.fromEntries(
      e.map((entry) => {
        const [k, ...rest] = String(entry).split("=");
        return [k!, rest.join("=")];
      }),
    );
  }
  return Object.fromEntries(Object.entries(e as Json).map(([k, v]) => [k, v === null ? "" : String(v)]));
}

/** The mount that holds a path inside a container, and the path below its mount point. */
export function resolveInContainer(service: Json, path: string): { mount: Mount; rest: string } | undefined {
  let best: { mount: Mount; rest: string } | undefined;
  for (const mount of mountsOf(service)) {
    const target = mount.target.replace(/\/$/, "");
    if (path !== target && !path.startsWith(`${target}/`)) continue;
    if (best && best.mount.target.length >= target.length) continue;
    best = { mount, rest: path.slice(target.length).replace(/^\//, "") };
  }
  return best;
}

export function hostAndPort(url: string): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port || (u.protocol === "https:" ? 443 : 80)) };
}
