// Talking to Kuvert: same-origin requests with the session cookie; every request carries the
// console header (Kuvert refuses state changes without it).
export const CONSOLE_HEADER = "X-Kuvert-Console";

/** Polling on the page's own account (see api's `background`). */
export const poll = <T>(path: string) => api<T>("GET", path, undefined, undefined, true);

export class ApiError extends Error {
  readonly status: number;
  readonly errcode: string;
  constructor(status: number, errcode: string, message: string) {
    super(message);
    this.status = status;
    this.errcode = errcode;
  }
}

// The server's own types for what it answers (type-only imports: nothing of the server reaches
// the bundle). The pages take them from here; none declares a shape of the server's by hand.
export type { Role } from "../../../appservice/config/schema.ts";
export type { Scope } from "../../../appservice/tokens/tokens.ts";
/** GET /session's session. */
export type { ConsoleSession as Session } from "../../../appservice/console/sessions.ts";
export type { AuditEntryView, DeadMail, OrganisationChoice, StatusView } from "../../../appservice/console/views.ts";
export type { VerifyResult } from "../../../appservice/audit/audit.ts";
export type { Call, GuestLink } from "../../../appservice/calls/service.ts";
export type { CircularStatus } from "../../../appservice/circulars/service.ts";
export type { CircularState, Targets } from "../../../appservice/circulars/model.ts";
export type { DocumentStatus } from "../../../appservice/documents/model.ts";
export type { RoomEncryptionView } from "../../../appservice/e2ee/views.ts";
export type { Clerk, Organisation } from "../../../appservice/organisations/model.ts";
export type { PreviewRow } from "../../../appservice/organisations/preview.ts";

/** Called when Kuvert says the session has ended, so the app can show the sign-in again. */
let onSessionEnded: (() => void) | undefined;
export function whenSessionEnds(fn: () => void): void {
  onSessionEnded = fn;
}

/**
 * A request to Kuvert. `background`: the page polls by itself; Kuvert does not count it as the
 * person's activity, so an open console still ends after the idle time.
 */
export async function api<T>(method: string, path: string, body?: unknown, contentType = "application/json", background = false): Promise<T> {
  const headers: Record<string, string> = { [CONSOLE_HEADER]: "1", Accept: "application/json" };
  if (background) headers["X-Kuvert-Background"] = "1";
  let payload: BodyInit | undefined;
  if (body instanceof FormData) {
    // multipart/form-data: the browser sets the type with its boundary.
    payload = body;
  } else if (body !== undefined) {
    headers["Content-Type"] = contentType;
    payload = typeof body === "string" ? body : JSON.stringify(body);
  }
  let res: Response;
  try {
    res = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
  } catch {
    throw new ApiError(0, "NETWORK", "Kuvert is not reachable.");
  }
  const text = await res.text();
  let json: unknown = undefined;
  try {
    json = text ? JSON.parse(text) : {};
  } catch {
    json = undefined;
  }
  if (!res.ok) {
    const e = (json ?? {}) as { errcode?: string; error?: string };
    const err = new ApiError(res.status, e.errcode ?? `HTTP_${res.status}`, e.error ?? `HTTP ${res.status}`);
    if (err.errcode === "KUVERT_SESSION_EXPIRED" || (res.status === 401 && err.errcode === "KUVERT_UNAUTHORIZED")) onSessionEnded?.();
    throw err;
  }
  return json as T;
}

/** Uploads one file with progress (XMLHttpRequest: fetch has no upload progress). */
export function uploadDocument(organisationId: string, file: File, fields: { kind: string; reference: string; supersedesReference?: string }, onProgress: (fraction: number) => void): Promise<{ id: string; state: string; version: number }> {
  return new Promise((resolve, reject) => {
    const q = new URLSearchParams({ filename: file.name });
    if (fields.kind) q.set("kind", fields.kind);
    if (fields.reference) q.set("reference", fields.reference);
    if (fields.supersedesReference) q.set("supersedesReference", fields.supersedesReference);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/api/v1/organisations/${encodeURIComponent(organisationId)}/documents?${q}`);
    xhr.setRequestHeader(CONSOLE_HEADER, "1");
    xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
    xhr.setRequestHeader("Idempotency-Key", `console-${crypto.randomUUID()}`);
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) onProgress(e.loaded / e.total);
    };
    xhr.onerror = () => reject(new ApiError(0, "NETWORK", "Kuvert is not reachable."));
    xhr.onload = () => {
      let body: { id?: string; state?: string; version?: number; errcode?: string; error?: string } = {};
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        // not JSON
      }
      if (xhr.status === 202 && body.id) {
        onProgress(1);
        resolve({ id: body.id, state: body.state ?? "received", version: body.version ?? 1 });
      } else reject(new ApiError(xhr.status, body.errcode ?? `HTTP_${xhr.status}`, body.error ?? `HTTP ${xhr.status}`));
    };
    xhr.send(file);
  });
}
