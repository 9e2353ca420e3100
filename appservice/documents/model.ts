// Documents in the words of the drop API: names, states, the checks on what comes in.
import { randomBytes } from "node:crypto";
import type { AuditEntry } from "../audit/audit.ts";
import { ErrCode, KuvertError } from "../errors.ts";

/** failed: the work could not be done (reason says why; staff were alerted). */
export type DocumentState = "received" | "scanning" | "held" | "rejected" | "delivered" | "checked" | "removed" | "failed";

export interface DocumentRecord {
  id: string;
  direction: "outbound" | "inbound";
  organisationId: string;
  source: string;
  submittedBy: string;
  filename: string;
  kind: string | null;
  reference: string | null;
  mimetype: string | null;
  size: number;
  sha256: string | null;
  state: DocumentState;
  reason: string | null;
  signature: string | null;
  /** Why it was refused: KUVERT_INFECTED, KUVERT_TOO_LARGE or KUVERT_UNSCANNABLE. */
  errcode: string | null;
  eventId: string | null;
  createdAt: string;
  scannedAt: string | null;
  finishedAt: string | null;
  /** 1 for a first version; each correction one more than the version it replaces. */
  version: number;
  /** The version this one replaces, and the one that replaces it (null: none, or deleted by retention). */
  supersedes: string | null;
  supersededBy: string | null;
}

/** A document as the API shows it; GET /api/v1/documents/{id} adds the e-mails to its clerks by state. */
export interface DocumentStatus extends DocumentRecord {
  statusUrl: string;
  notifications?: { pending: number; sent: number; dead: number };
}

export function newDocumentId(): string {
  return `doc_${randomBytes(12).toString("base64url")}`;
}

// C0 and C1 controls, DEL, and the bidirectional overrides and isolates that make a name read
// differently from what it is (e.g. "invoice\u202Efdp.exe").
const forbiddenCharacters = /[\u0000-\u001F\u007F-\u009F\u200E\u200F\u202A-\u202E\u2066-\u2069]/u;

// What a name must not hold beyond that: every invisible format character (zero-width space,
// joiners, word joiner, soft hyphen, byte order mark, Arabic letter mark, tag characters: Unicode
// category Cf, which includes the bidi controls), line and paragraph separators, private-use and
// surrogate code points, and the Hangul fillers that render as blank.
const invisibleCharacters = /[\p{Cf}\p{Zl}\p{Zp}\p{Co}\p{Cs}\u115F\u1160\u3164\uFFA0]/u;

// Names Windows reserves for devices, with or without an extension ("aux.pdf" opens the AUX
// device, not a file); the superscript digits count as digits there.
const windowsReserved = /^(con|prn|aux|nul|com[0-9\u00B9\u00B2\u00B3]|lpt[0-9\u00B9\u00B2\u00B3]|conin\$|conout\$)$/i;

/** Checks a file name from outside; answers it unchanged or throws a KuvertError that says why. */
export function checkFilename(name: string | undefined): string {
  const fail = (why: string) => {
    throw new KuvertError(ErrCode.InvalidFilename, `The file name ${JSON.stringify(name ?? "")} is not accepted: ${why}.`, [{ path: "filename", message: why }]);
  };
  if (name === undefined || name.trim() === "") return fail("a file name is required");
  if (name.includes("/") || name.includes("\\")) fail("it contains a path separator");
  if (name === "." || name === ".." || name.split(".").every((p) => p === "")) fail("it is a path, not a name");
  if (name.includes("..")) fail('it contains ".."');
  if (forbiddenCharacters.test(name)) fail("it contains control or text-direction characters");
  if (invisibleCharacters.test(name)) fail("it contains invisible characters (such as a zero-width space)");
  if (name !== name.trim()) fail("it starts or ends with white space");
  if (name.endsWith(".")) fail("it ends with a dot, which Windows drops");
  if (windowsReserved.test(name.split(".")[0]!.trimEnd())) fail(`${name.split(".")[0]!.trimEnd().toUpperCase()} is a device name on Windows`);
  if (Buffer.byteLength(name, "utf8") > 255) fail("it is longer than 255 bytes");
  return name.normalize("NFC");
}

export function checkShortText(field: "kind" | "reference", value: string | undefined, max = 200): string | null {
  if (value === undefined || value === "") return null;
  if (value.length > max || forbiddenCharacters.test(value)) {
    throw new KuvertError(ErrCode.InvalidInput, `${field}: expected at most ${max} characters without control characters`, [{ path: field, message: `at most ${max} characters without control characters` }]);
  }
  return value;
}

/** Whether a content type is on the allow-list (`type/*` allows a family). */
export function typeAllowed(mimetype: string, allowed: string[]): boolean {
  return allowed.some((a) => a === mimetype || (a.endsWith("/*") && mimetype.startsWith(a.slice(0, -1))));
}

/** The audit entry of a clean scan, whether reached while the document arrived (at intake) or by the pipeline. */
export function scannedEntry(organisationId: string, documentId: string, durationMs: number, whileReceiving: boolean): AuditEntry {
  return { actor: "kuvert", action: "document.scanned", organisationId, object: documentId, outcome: "ok", details: { verdict: "clean", durationMs, whileReceiving } };
}
