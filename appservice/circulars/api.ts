// The circulars API (scope staff or admin): send, list, show with per-organisation delivery,
// cancel, correct. A circular with attachments is multipart/form-data: the fields text,
// targets (JSON) and scheduledAt, and one or more `attachment` file parts, each streamed to
// staging as it arrives (never held in memory).
import busboy from "busboy";
import express, { type NextFunction, type Request, type RequestHandler, type Response } from "express";
import { ErrCode, KuvertError } from "../errors.ts";
import { refuseNul } from "../http/input.ts";
import { feedBusboy } from "../http/multipart.ts";
import { actorOf } from "../http/auth.ts";
import type { StagedFile } from "../files/staging.ts";
import { attachmentStagingId, type AttachmentInput, type Circulars } from "./service.ts";
import { newCircularId } from "./model.ts";

const idPattern = /^circ_[A-Za-z0-9_-]{1,40}$/;

function circularId(req: Request): string {
  const id = String(req.params.id);
  if (!idPattern.test(id)) throw new KuvertError(ErrCode.NotFound, `There is no circular ${id}.`);
  return id;
}

interface MultipartCircular {
  fields: Record<string, string>;
  files: { filename: string | undefined; staged: StagedFile | null; error: unknown }[];
}

/** Reads a multipart circular: fields kept, each `attachment` part streamed into staging. */
function readMultipart(req: Request, circulars: Circulars, id: string, maxFiles: number): Promise<MultipartCircular> {
  return new Promise((resolve, reject) => {
    let bb: busboy.Busboy;
    try {
      // preservePath: attachment names are checked as sent, never cut to their last part; UTF-8 as browsers send them.
      bb = busboy({ headers: req.headers, preservePath: true, defParamCharset: "utf8", limits: { files: maxFiles + 1, fields: 10, fieldSize: 256 * 1024, fileSize: circulars.limitBytes + 1 } });
    } catch (err) {
      return reject(new KuvertError(ErrCode.InvalidInput, `The multipart body cannot be read: ${(err as Error).message}`));
    }
    const feed = feedBusboy(req, bb);
    const fields: Record<string, string> = {};
    const files: MultipartCircular["files"] = [];
    const writes: Promise<void>[] = [];
    let truncatedField = false;
    bb.on("field", (name, value, info) => {
      if (info.valueTruncated) truncatedField = true;
      fields[name] = value;
    });
    bb.on("file", (name, stream, info) => {
      if (name !== "attachment") {
        stream.resume();
        files.push({ filename: info.filename, staged: null, error: new KuvertError(ErrCode.InvalidInput, `Unexpected file field ${name}; send files as "attachment".`) });
        return;
      }
      const entry: MultipartCircular["files"][number] = { filename: info.filename, staged: null, error: null };
      files.push(entry);
      const position = files.length - 1;
      writes.push(
        circulars.staging.write(attachmentStagingId(id, position), stream, circulars.limitBytes).then(
          (staged) => void (entry.staged = staged),
          (err: unknown) => void (entry.error = err),
        ),
      );
    });
    // On a malformed or broken-off body, answer only once every staging write has ended (and removed its partial file).
    bb.on("error", () => void Promise.all(writes).then(() => reject(feed.failure)));
    bb.on("close", () => {
      void Promise.all(writes).then(() => {
        if (feed.failure) reject(feed.failure);
        else if (truncatedField) reject(new KuvertError(ErrCode.TooLarge, "A field of the multipart body is too large."));
        else resolve({ fields, files });
      });
    });
  });
}

/** An error before the body was read: let the client finish sending, then answer. */
function drainOnError(err: unknown, req: Request, _res: Response, next: NextFunction): void {
  if (!req.complete) req.resume();
  next(err);
}

/** The circulars API; with `circulars` null (modules.circulars off) every endpoint says it is switched off, after the token check. */
export function circularRoutes(circulars: Circulars | null, auth: RequestHandler, maxAttachments: number): express.Router {
  const r = express.Router();
  if (!circulars) {
    r.use("/circulars", auth, (_req: Request, _res: Response, next: NextFunction) => next(new KuvertError(ErrCode.ModuleDisabled, "Circulars are switched off in this Kuvert (modules.circulars).")));
    r.use(drainOnError);
    return r;
  }
  const json = express.json({ limit: "1mb" });

  r.post("/circulars", auth, async (req: Request, res: Response, next: NextFunction) => {
    if (req.is("multipart/form-data")) {
      const id = newCircularId();
      try {
        const body = await readMultipart(req, circulars, id, maxAttachments);
        const failed = body.files.find((f) => f.error);
        if (failed) throw failed.error;
        let targets: unknown;
        try {
          targets = body.fields.targets === undefined ? undefined : JSON.parse(body.fields.targets);
        } catch {
          throw new KuvertError(ErrCode.BadJson, 'The field targets is not valid JSON (e.g. {"tag":"schools"}).', [{ path: "targets", message: "not JSON" }]);
        }
        const unknownField = Object.keys(body.fields).find((k) => !["text", "targets", "scheduledAt"].includes(k));
        if (unknownField) throw new KuvertError(ErrCode.UnknownField, `Unknown field ${unknownField}.`, [{ path: unknownField, message: "unknown field" }]);
        const attachments: AttachmentInput[] = body.files.map((f) => ({ filename: f.filename ?? "", mimetype: f.staged!.mimetype, size: f.staged!.size, sha256: f.staged!.sha256, staged: true }));
        const input = { text: body.fields.text ?? "", targets, ...(body.fields.scheduledAt ? { scheduledAt: body.fields.scheduledAt } : {}) };
        const { circular } = await circulars.create(input, { author: actorOf(req), source: "api" }, attachments, id);
        res.status(201).json(circular);
      } catch (err) {
        // Refused: nothing stays behind, whichever parts were staged before the error.
        for (let i = 0; i <= maxAttachments + 1; i++) await circulars.staging.destroy(attachmentStagingId(id, i));
        next(err);
      }
      return;
    }
    json(req, res, async (err?: unknown) => {
      try {
        if (err) throw err;
        refuseNul(req.body);
        if (!req.is("application/json")) throw new KuvertError(ErrCode.UnsupportedMediaType, "Send the circular as application/json, or as multipart/form-data with attachments.");
        const { circular } = await circulars.create(req.body, { author: actorOf(req), source: "api" });
        res.status(201).json(circular);
      } catch (e) {
        next(e);
      }
    });
  });

  r.get("/circulars", auth, async (req: Request, res: Response) => {
    const limit = Number(req.query.limit ?? 100);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new KuvertError(ErrCode.InvalidInput, "limit: expected a whole number from 1 to 1000");
    const before = typeof req.query.before === "string" && idPattern.test(req.query.before) ? req.query.before : undefined;
    res.json({ circulars: await circulars.list(limit, before) });
  });

  r.get("/circulars/:id", auth, async (req: Request, res: Response) => {
    const c = await circulars.status(circularId(req));
    if (!c) throw new KuvertError(ErrCode.NotFound, `There is no circular ${String(req.params.id)}.`);
    res.json(c);
  });

  r.post("/circulars/:id/cancel", auth, async (req: Request, res: Response) => {
    res.json(await circulars.cancel(circularId(req), actorOf(req)));
  });

  r.post("/circulars/:id/corrections", auth, json, async (req: Request, res: Response) => {
    if (!req.is("application/json")) throw new KuvertError(ErrCode.UnsupportedMediaType, 'Send the correction as application/json: {"text": "…"}.');
    const out = await circulars.correct(circularId(req), req.body, actorOf(req));
    res.status(201).json({ revision: out.revision, rooms: out.rooms, circular: out.circular });
  });

  r.use(drainOnError);
  return r;
}
