// The drop API: back-office systems deliver documents for an organisation, and ask where they are.
import busboy from "busboy";
import express, { type NextFunction, type Request, type RequestHandler, type Response } from "express";
import type { Readable } from "node:stream";
import type { Database } from "../db/database.ts";
import { ErrCode, KuvertError } from "../errors.ts";
import { slugPattern } from "../organisations/model.ts";
import { feedBusboy, uploadError, type BodyFeed } from "../http/multipart.ts";
import { actorOf, callerOf } from "../http/auth.ts";
import { tokenCovers } from "../tokens/tokens.ts";
import type { Batches } from "./batch.ts";
import type { DocumentIntake, OutboundSubmission } from "./intake.ts";
import type { DocumentStatus } from "./model.ts";
import * as store from "./store.ts";
import { parseSupersedes, versionChain } from "./versions.ts";

function requireOrganisation(req: Request): string {
  const id = String(req.params.id);
  if (!slugPattern.test(id)) throw new KuvertError(ErrCode.NotFound, `There is no organisation with the id ${id} (not a valid id).`);
  const caller = callerOf(req);
  if (!tokenCovers(caller, id)) {
    throw new KuvertError(ErrCode.OutOfScope, `The token ${caller.name} may not deliver to organisation ${id}.`);
  }
  return id;
}

function idempotencyKey(req: Request): string | undefined {
  const key = req.header("idempotency-key");
  if (key === undefined) return undefined;
  if (key.length < 1 || key.length > 200 || !/^[\x21-\x7e]+$/.test(key)) {
    throw new KuvertError(ErrCode.InvalidInput, "Idempotency-Key: expected 1–200 visible ASCII characters", [{ path: "Idempotency-Key", message: "1–200 visible ASCII characters" }]);
  }
  return key;
}

/** The file part of a multipart/form-data body, with the fields sent before it. Streamed. */
function multipartFile(req: Request, limitBytes: number): Promise<{ fields: Record<string, string>; filename: string | undefined; stream: Readable; feed: BodyFeed }> {
  return new Promise((resolve, reject) => {
    let bb: busboy.Busboy;
    try {
      // preservePath: the name is checked as sent (a path in it is refused, never cut to its last part);
      // names are UTF-8 as browsers send them, not busboy's default Latin-1.
      bb = busboy({ headers: req.headers, preservePath: true, defParamCharset: "utf8", limits: { files: 1, fields: 10, fieldSize: 1000, fileSize: limitBytes + 1 } });
    } catch (err) {
      return reject(new KuvertError(ErrCode.InvalidInput, `The multipart body cannot be read: ${(err as Error).message}`));
    }
    // First: its error listener must run before the ones below, which answer with its failure.
    const feed = feedBusboy(req, bb);
    const fields: Record<string, string> = {};
    let found = false;
    bb.on("field", (name, value) => {
      fields[name] = value;
    });
    bb.on("file", (_name, stream, info) => {
      if (found) return void stream.resume();
      found = true;
      resolve({ fields, filename: fields.filename ?? info.filename, stream, feed });
    });
    bb.on("error", () => reject(feed.failure));
    bb.on("close", () => {
      if (!found) reject(feed.failure ?? new KuvertError(ErrCode.InvalidInput, "The multipart body has no file part (send the fields kind and reference before it)."));
    });
  });
}

function presentStatus(row: store.DocumentRow): DocumentStatus {
  const record = store.toRecord(row);
  return { ...record, statusUrl: `/api/v1/documents/${record.id}` };
}

export function documentRoutes(db: Database, intake: DocumentIntake, batches: Batches, auth: RequestHandler, batchesEnabled = true): express.Router {
  const r = express.Router();
  const batchesOn = (_req: Request, _res: Response, next: NextFunction) => next(batchesEnabled ? undefined : new KuvertError(ErrCode.ModuleDisabled, "Bulk batches are switched off in this Kuvert (modules.batches); send documents one by one."));

  // A bulk batch: a ZIP with manifest.csv or manifest.json and the files it names. Streamed.
  r.post("/batches", auth, batchesOn, async (req: Request, res: Response) => {
    if (!req.is("application/zip") && !req.is("application/x-zip-compressed")) {
      throw new KuvertError(ErrCode.UnsupportedMediaType, "Send the batch as a ZIP file (Content-Type: application/zip) with manifest.csv or manifest.json inside.");
    }
    const key = idempotencyKey(req);
    const caller = callerOf(req);
    const accepted = await batches.accept(req, {
      submittedBy: caller.actor,
      organisations: caller.scopes.includes("admin") ? null : caller.organisations,
      idempotency: key ? { scope: caller.actor, key } : undefined,
    });
    res.status(202).json({ id: accepted.id, replayed: accepted.replayed, statusUrl: `/api/v1/batches/${accepted.id}` });
  });

  r.get("/batches/:batchId", auth, async (req: Request, res: Response) => {
    const caller = callerOf(req);
    const status = await batches.status(String(req.params.batchId), caller.scopes.includes("admin") ? null : caller.actor);
    if (!status) throw new KuvertError(ErrCode.NotFound, `There is no batch ${String(req.params.batchId)}.`);
    res.json(status);
  });

  // Streamed: raw body (filename, kind, reference in the query) or multipart/form-data (fields, then one file).
  // A new version names the one it replaces: supersedes (its id) or supersedesReference (its reference).
  r.post("/organisations/:id/documents", auth, async (req: Request, res: Response) => {
    const organisationId = requireOrganisation(req);
    const key = idempotencyKey(req);
    const base: Omit<OutboundSubmission, "filename" | "content"> = {
      organisationId,
      source: callerOf(req).kind === "session" ? "console" : "api",
      submittedBy: actorOf(req),
      idempotency: key ? { scope: actorOf(req), key } : undefined,
    };
    const q = (name: string) => (typeof req.query[name] === "string" ? (req.query[name] as string) : undefined);
    let submission: OutboundSubmission;
    let feed: BodyFeed | undefined;
    if (req.is("multipart/form-data")) {
      const part = await multipartFile(req, intake.limitBytes);
      feed = part.feed;
      let supersedes;
      try {
        supersedes = parseSupersedes(part.fields.supersedes, part.fields.supersedesReference);
      } catch (err) {
        part.stream.resume();
        throw err;
      }
      submission = { ...base, filename: part.filename, kind: part.fields.kind, reference: part.fields.reference, supersedes, content: part.stream };
    } else if (req.is("application/json") || req.is("application/x-www-form-urlencoded")) {
      throw new KuvertError(ErrCode.UnsupportedMediaType, "Send the document itself as the body (any binary type), or as multipart/form-data.");
    } else {
      submission = { ...base, filename: q("filename"), kind: q("kind"), reference: q("reference"), supersedes: parseSupersedes(q("supersedes"), q("supersedesReference")), content: req };
    }
    let accepted;
    try {
      accepted = await intake.accept(submission);
    } catch (err) {
      // Refused before the content was read: the rest of the body goes nowhere.
      submission.content.resume();
      throw uploadError(req, err, feed);
    }
    res.status(202).json({ ...presentStatus({ ...(await store.findDocument(db, accepted.document.id))! }), replayed: accepted.replayed });
  });

  r.get("/organisations/:id/documents", auth, async (req: Request, res: Response) => {
    const organisationId = requireOrganisation(req);
    const limit = Math.min(1000, Math.max(1, Number(req.query.limit ?? 100) || 100));
    res.json({ documents: (await store.listDocuments(db, organisationId, limit)).map(presentStatus) });
  });

  r.get("/documents/:docId", auth, async (req: Request, res: Response) => {
    const row = await store.findDocument(db, String(req.params.docId));
    // A document of an organisation outside the token's scope is as unknown as one that does not exist.
    if (!row || !tokenCovers(callerOf(req), row.organisation_id)) throw new KuvertError(ErrCode.NotFound, `There is no document ${String(req.params.docId)}.`);
    // The e-mails to the organisation's clerks about it: once none is pending, they are notified.
    res.json({ ...presentStatus(row), notifications: await store.notificationCounts(db, row.id) } satisfies DocumentStatus);
  });

  // Every version linked to a document, oldest first; the current one is the last that is not rejected.
  r.get("/documents/:docId/versions", auth, async (req: Request, res: Response) => {
    const chain = await versionChain(db, String(req.params.docId));
    if (chain.length === 0 || !tokenCovers(callerOf(req), chain[0]!.organisation_id)) throw new KuvertError(ErrCode.NotFound, `There is no document ${String(req.params.docId)}.`);
    const current = [...chain].reverse().find((d) => d.state === "delivered") ?? null;
    res.json({ current: current?.id ?? null, versions: chain.map(presentStatus) });
  });

  r.use((err: unknown, req: Request, _res: Response, next: NextFunction) => {
    // An error before the body was read: let the client finish sending, then answer.
    if (!req.complete) req.resume();
    next(err);
  });
  return r;
}
