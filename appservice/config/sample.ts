// Generates config.sample.yaml from the schema: every key, its description and its default.
import { z } from "zod";
import { configSchema, environmentKeys } from "./composed.ts";

interface JsonSchema {
  type?: string | string[];
  description?: string;
  default?: unknown;
  properties?: Record<string, JsonSchema>;
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  enum?: unknown[];
}

const header = `# Kuvert configuration. Generated from the code by \`kuvert config sample\`: every key,
# what it means and its default. Secrets are better given as environment variables:
${Object.entries(environmentKeys)
  .map(([variable, path]) => `#   ${variable} sets ${path.join(".")}`)
  .join("\n")}
`;

function scalar(value: unknown): string {
  if (value === undefined) return "";
  if (typeof value === "string") return value === "" ? '""' : /^[\w./:@-]+$/.test(value) && !/^(true|false|null|~|\d.*)$/i.test(value) ? value : JSON.stringify(value);
  return JSON.stringify(value);
}

function comment(lines: string[], indent: string, text: string | undefined): void {
  if (!text) return;
  for (const line of text.split("\n")) lines.push(`${indent}# ${line}`);
}

function render(schema: JsonSchema, indent: string, lines: string[]): void {
  for (const [key, prop] of Object.entries(schema.properties ?? {})) {
    if (indent === "" && lines.length > 0) lines.push("");
    const choices = prop.enum ?? prop.items?.enum;
    comment(lines, indent, prop.description + (choices ? ` One of: ${choices.join(", ")}.` : ""));
    if (prop.type === "object" && prop.properties) {
      const section: string[] = [];
      render(prop, "  ", section);
      // A section that is off unless given (no default), or that sets nothing: shown commented out,
      // since its keys without defaults would make the sample invalid, and an empty key is null.
      const off = prop.default === undefined || section.every((line) => line.trimStart().startsWith("#"));
      lines.push(off ? `${indent}# ${key}:` : `${indent}${key}:`);
      for (const line of section) lines.push(off ? `${indent}# ${line}` : `${indent}${line}`);
    } else if (prop.type === "array") {
      if (prop.items?.type === "object" && prop.items.properties) {
        lines.push(`${indent}${key}: ${JSON.stringify(prop.default ?? [])}`);
        lines.push(`${indent}# Each entry:`);
        for (const [itemKey, itemProp] of Object.entries(prop.items.properties)) {
          const itemChoices = itemProp.items?.enum ?? itemProp.enum;
          lines.push(`${indent}#   ${itemKey}: ${itemProp.description ?? ""}${itemChoices ? ` (${itemChoices.join(", ")})` : ""}`);
        }
        lines.push(`${indent}# e.g.`);
        lines.push(`${indent}# ${key}:`);
        lines.push(`${indent}#   - userId: "@alice:example.org"`);
        lines.push(`${indent}#     roles: [admin]`);
      } else {
        lines.push(`${indent}${key}: ${JSON.stringify(prop.default ?? [])}`);
      }
    } else if (prop.default === undefined) {
      lines.push(`${indent}# ${key}:`);
    } else {
      lines.push(`${indent}${key}: ${scalar(prop.default)}`);
    }
  }
}

export function sampleConfig(): string {
  const schema = z.toJSONSchema(configSchema, { io: "input", unrepresentable: "any" }) as JsonSchema;
  const lines: string[] = [];
  render(schema, "", lines);
  return `${header}\n${lines.join("\n")}\n`;
}
