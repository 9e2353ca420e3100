import { readFileSync } from "node:fs";
import { parseDocument } from "yaml";
import type { z } from "zod";
import { expectation } from "../errors.ts";
import { configSchema, environmentKeys } from "./composed.ts";
import type { KuvertConfig } from "./schema.ts";

/** A configuration problem, naming the key, what was found and what was expected. */
export class ConfigError extends Error {
  readonly problems: string[];
  constructor(source: string, problems: string[]) {
    super(`Invalid configuration in ${source}:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
    this.problems = problems;
  }
}

type Env = Record<string, string | undefined>;

function describeValue(value: unknown): string {
  if (value === undefined) return "nothing";
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let node = root;
  for (const key of path) {
    if (node === null || typeof node !== "object") return undefined;
    node = (node as Record<PropertyKey, unknown>)[key];
  }
  return node;
}

export function formatIssues(input: unknown, issues: z.core.$ZodIssue[]): string[] {
  return issues.flatMap((issue) => {
    const key = issue.path.map(String).join(".") || "(top level)";
    if (issue.code === "unrecognized_keys") {
      return issue.keys.map((k) => `${key === "(top level)" ? k : `${key}.${k}`}: unknown key (not a Kuvert setting; check its spelling and nesting)`);
    }
    return [`${key}: found ${describeValue(valueAt(input, issue.path))}, expected ${expectation(issue)}`];
  });
}

/** Parses and validates a configuration object that already includes environment overrides. */
export function parseConfig(raw: unknown, source = "configuration"): KuvertConfig {
  const result = configSchema.safeParse(raw ?? {});
  if (!result.success) throw new ConfigError(source, formatIssues(raw, result.error.issues));
  return result.data;
}

export function applyEnvironment(raw: Record<string, unknown>, env: Env): Record<string, unknown> {
  for (const [variable, path] of Object.entries(environmentKeys)) {
    const value = env[variable];
    if (value === undefined || value === "") continue;
    let node = raw;
    for (const key of path.slice(0, -1)) {
      const next = node[key];
      if (next === undefined || next === null) node[key] = {};
      else if (typeof next !== "object") throw new ConfigError(variable, [`${path.join(".")}: cannot be set from ${variable}, the file gives ${key} a non-object value`]);
      node = node[key] as Record<string, unknown>;
    }
    node[path[path.length - 1]!] = value;
  }
  return raw;
}

/** Reads a YAML configuration file (missing file: all defaults) and applies the environment. */
export function loadConfig(file: string | undefined, env: Env = process.env): KuvertConfig {
  let raw: Record<string, unknown> = {};
  const source = file ?? "defaults";
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      throw new ConfigError(file, [`cannot read the file: ${(err as Error).message}`]);
    }
    const doc = parseDocument(text);
    if (doc.errors.length > 0)
      throw new ConfigError(
        file,
        doc.errors.map((e) => `YAML syntax: ${e.message}`),
      );
    const value: unknown = doc.toJS();
    if (value !== null && value !== undefined) {
      if (typeof value !== "object" || Array.isArray(value)) throw new ConfigError(file, ["(top level): expected a mapping of settings"]);
      raw = value as Record<string, unknown>;
    }
  }
  return parseConfig(applyEnvironment(raw, env), source);
}
