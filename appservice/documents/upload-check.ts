// Uploads to the homeserver, scanned before the homeserver stores them. Synapse's module
// deploy/synapse/kuvert_upload_scan.py (spam-checker callback check_media_file_for_spam)
// streams every file it is about to store to this endpoint on the application service
// listener and refuses the upload unless Kuvert answers "clean". The same scanner as every
// other scan, and the same audit log.
//
//   POST /_kuvert/v1/upload-check
//   Authorization: Bearer <appservice.uploadCheckToken>
//   X-Kuvert-Media: <server name>/<media id> (for the audit log; "local/<id>" for local media)
//   X-Kuvert-Media-Kind: upload | thumbnail | remote | url-preview
//   body: the file (Content-Length, or chunked)
//
//   200 {"verdict": "clean"}
//   200 {"verdict": "infected", "signature": "…", "errcode": "KUVERT_INFECTED", "error": "…"}
//   200 {"verdict": "unscannable", "errcode": "KUVERT_UNSCANNABLE", "error": "…"}
//   503 {"errcode": "KUVERT_UNAVAILABLE", "error": "…"}: no verdict (the scanner is down); the module's fail_closed decides
//   401/403: no or a wrong token; the module refuses whatever its fail_closed says
//   404 {"errcode": "KUVERT_UPLOAD_CHECK_OFF", …}: appservice.uploadCheckToken is not set; the module refuses
import express, { type Request, type Response } from "express";
import { audit } from "../audit/audit.ts";
import type { Database } from "../db/database.ts";
import { ErrCode, errorStatus } from "../errors.ts";
import { logger } from "../log.ts";
import { tokenMatches } from "../matrix/listener.ts";
import { ScannerUnavailableError, TooLargeToScanError, type Scanner } from "../scanning/scanner.ts";
import { DocumentErr } from "./errors.ts";

const log = logger("upload-check");

export const uploadCheckPath = "/_kuvert/v1/upload-check";

const kinds = new Set(["upload", "thumbnail", "remote", "url-preview"]);

export interface UploadCheckOptions {
  /** Unset: the endpoint answers 404 (the module is not in use). */
  token: string | undefined;
  scanner: Scanner;
  db: Database;
  maxStreamBytes: number;
}

function header(req: Request, name: string, max = 300): string | null {
  const value = req.headers[name];
  if (typeof value !== "string" || value === "") return null;
  // Only for the audit log: printable ASCII, bounded.
  return value.replace(/[^\x20-\x7e]/g, "?").slice(0, max);
}

export function uploadCheckRoutes(opts: UploadCheckOptions): express.Router {
  const router = express.Router();
  router.post(uploadCheckPath, async (req: Request, res: Response) => {
    const fail = (errcode: ErrCode, error: string) => {
      // The body is not read: the connection is closed after the answer, so no unread upload lingers.
      res.set("connection", "close").status(errorStatus(errcode)).json({ errcode, error });
      req.resume();
    };
    if (!opts.token) return fail(DocumentErr.UploadCheckOff, "Upload checks are not switched on: set appservice.uploadCheckToken (or KUVERT_UPLOAD_CHECK_TOKEN).");
    const auth = req.headers.authorization;
    if (!auth?.startsWith("Bearer ")) return fail(ErrCode.Unauthorized, "No token: the Synapse module must send appservice.uploadCheckToken as a bearer token.");
    if (!tokenMatches(auth.slice(7), opts.token)) {
      log.warn("upload check with a wrong token refused");
      return fail(ErrCode.Forbidden, "The token is not Kuvert's appservice.uploadCheckToken; check the Synapse module's kuvert_token.");
    }
    const media = header(req, "x-kuvert-media");
    const kindHeader = header(req, "x-kuvert-media-kind");
    const kind = kindHeader && kinds.has(kindHeader) ? kindHeader : "upload";
    const length = req.headers["content-length"] === undefined ? undefined : Number(req.headers["content-length"]);
    const record = async (outcome: "ok" | "refused" | "failed", details: Record<string, unknown>) => {
      // Clean thumbnails are made by the homeserver from an original that was itself checked: not worth a row each.
      if (outcome === "ok" && kind === "thumbnail") return;
      const action = outcome === "ok" ? "upload.checked" : outcome === "refused" ? "upload.refused" : "upload.unchecked";
      await opts.db.transaction((tx) => audit(tx, { actor: "homeserver", action, object: media, outcome, details: { kind, ...details } }));
    };
    const refuse = async (verdict: "infected" | "unscannable", errcode: ErrCode, error: string, details: Record<string, unknown>) => {
      await record("refused", { verdict, ...details });
      log.info({ media, kind, verdict }, "upload refused");
      res.json({ verdict, errcode, error, ...(typeof details.signature === "string" ? { signature: details.signature } : {}) });
    };
    try {
      if (length !== undefined && (!Number.isSafeInteger(length) || length > opts.maxStreamBytes)) {
        req.resume();
        res.set("connection", "close");
        return await refuse("unscannable", ErrCode.Unscannable, `The file is larger than the ${opts.maxStreamBytes} bytes the virus scanner checks; nothing unchecked is stored.`, { reason: "too-large-to-scan", bytes: length });
      }
      const verdict = await opts.scanner.scan(req, length);
      if (verdict.clean) {
        await record("ok", { bytes: verdict.bytes, durationMs: verdict.durationMs });
        return void res.json({ verdict: "clean" });
      }
      return await refuse("infected", ErrCode.Infected, `The virus scanner found malware (${verdict.signature}); the upload is refused.`, { signature: verdict.signature, bytes: verdict.bytes });
    } catch (err) {
      if (err instanceof TooLargeToScanError) {
        res.set("connection", "close");
        return await refuse("unscannable", ErrCode.Unscannable, "The file is larger than the virus scanner checks; nothing unchecked is stored.", { reason: "too-large-to-scan" });
      }
      if (err instanceof ScannerUnavailableError) {
        log.warn({ err, media }, "upload check without a verdict: scanner unavailable");
        await record("failed", { verdict: "unavailable" }).catch(() => undefined);
        return fail(ErrCode.Unavailable, "The virus scanner cannot be reached; the upload cannot be checked now.");
      }
      // The upload broke off (the homeserver went away) or something else failed: no verdict.
      log.warn({ err, media }, "upload check failed");
      if (!res.headersSent) fail(ErrCode.Unavailable, "The upload could not be checked; try again.");
    }
  });
  return router;
}
