// The drop folder's description files: beside a dropped document `<name>`, an optional
// `<name>.kuvert.json` says what the document is and which version it replaces:
//
//   { "version": 1, "kind": "Beitragsbescheid", "reference": "AZ-2026-17",
//     "supersedes": "doc_…" }            (or "supersedesReference": "AZ-2026-17")
//
// Every field is optional; "version" is the format's version (formats.ts): absent means the
// current one, an unknown one is refused. The description must be complete before the document
// gets its final name (write it first, under a temporary name, and rename it). Kuvert reads it
// when it takes the document and deletes it once the document is accepted; a document refused
// goes to unroutable/ and its description stays, to be corrected.
import { constants } from "node:fs";
import { open } from "node:fs/promises";
import { z } from "zod";
import { ErrCode, KuvertError, parseInput } from "../errors.ts";
import { checkFormatVersion } from "./formats.ts";
import { parseSupersedes, type Supersedes } from "./versions.ts";

export const DESCRIPTION_SUFFIX = ".kuvert.json";
const MAX_BYTES = 64 * 1024;

/** Whether a name in an organisation folder is a description file, not a document. */
export function isDescriptionName(name: string): boolean {
  return name.toLowerCase().endsWith(DESCRIPTION_SUFFIX) && name.length > DESCRIPTION_SUFFIX.length;
}

const descriptionSchema = z.strictObject({
  version: z.union([z.number(), z.string()]).optional(),
  kind: z.string().optional(),
  reference: z.string().optional(),
  supersedes: z.string().optional(),
  supersedesReference: z.string().optional(),
});

export interface DropDescription {
  kind: string | undefined;
  reference: string | undefined;
  supersedes: Supersedes | null;
}

/** Reads the description of the document at `documentPath`; null when there is none. Throws a KuvertError when it is not usable. */
export async function readDescription(documentPath: string): Promise<DropDescription | null> {
  let handle;
  try {
    handle = await open(`${documentPath}${DESCRIPTION_SUFFIX}`, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return null;
    if (code === "ELOOP") throw new KuvertError(ErrCode.InvalidInput, `The description file (${DESCRIPTION_SUFFIX}) is a symbolic link; Kuvert does not follow links.`);
    throw err;
  }
  let text: string;
  try {
    const stat = await handle.stat();
    if (!stat.isFile() || stat.size > MAX_BYTES) throw new KuvertError(ErrCode.InvalidInput, `The description file (${DESCRIPTION_SUFFIX}) must be a plain file of at most ${MAX_BYTES} bytes.`);
    text = await handle.readFile({ encoding: "utf8" });
  } finally {
    await handle.close().catch(() => undefined);
  }
  let value: unknown;
  try {
    value = JSON.parse(text.replace(/^\uFEFF/, ""));
  } catch (err) {
    throw new KuvertError(ErrCode.InvalidInput, `The description file (${DESCRIPTION_SUFFIX}) is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof value === "object" && value !== null && !Array.isArray(value)) checkFormatVersion((value as { version?: unknown }).version, `The description file (${DESCRIPTION_SUFFIX})`);
  const d = parseInput(descriptionSchema, value, "description");
  return { kind: d.kind, reference: d.reference, supersedes: parseSupersedes(d.supersedes, d.supersedesReference) };
}
