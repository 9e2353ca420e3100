// Documents in the words of the drop API: names, states, the checks on what comes in.
import { randomBytes } from "node:crypto";
import type { AuditEntry } from "../audit/audit.ts";
import { ErrCode, KuvertError } from "../errors.ts";
import { forbiddenCharacters } from "../files/names.ts";

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

export function checkShortText(field: "kind" | "reference", value: string | undefined, max = 200): string | null {
  if (value === undefined || value === "") return null;
  if (value.length > max || forbiddenCharacters.test(value)) {
    throw new KuvertError(ErrCode.InvalidInput, `${field}: expected at most ${max} characters without control characters`, [{ path: field, message: `at most ${max} characters without control characters` }]);
  }
  return value;
}

/** The audit entry of a clean scan, whether reached while the document arrived (at intake) or by the pipeline. */
export function scannedEntry(organisationId: string, documentId: string, durationMs: number, whileReceiving: boolean): AuditEntry {
  return { actor: "kuvert", action: "document.scanned", organisationId, object: documentId, outcome: "ok", details: { verdict: "clean", durationMs, whileReceiving } };
}
