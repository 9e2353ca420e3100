// Reading a streamed request body safely: whatever the client does — a multipart body without
// its closing boundary, a body shorter than announced, a connection broken off mid-file — every
// file stream ends with an error its reader sees (so staging removes its partial file and closes
// its descriptor), no stream error is left unhandled, and the failure is a 400 with a code.
import type busboy from "busboy";
import type { Request } from "express";
import type { Readable } from "node:stream";
import { ErrCode, KuvertError } from "../errors.ts";

export interface BodyFeed {
  /** Why the body could not be read, once it is known (client broke off, multipart malformed). */
  failure: KuvertError | undefined;
}

const brokenOff = () => new KuvertError(ErrCode.BodyIncomplete, "The upload was broken off before its end; nothing was kept. Send it again in full.");

/**
 * Pipes `req` into `bb`. A file stream's own errors are always listened to (the reader may not
 * have attached yet); when the client goes away before the end of the body, every open file
 * stream and busboy itself are destroyed with a KUVERT_BODY_INCOMPLETE error.
 */
export function feedBusboy(req: Request, bb: busboy.Busboy): BodyFeed {
  const feed: BodyFeed = { failure: undefined };
  const open = new Set<Readable>();
  const fail = (err: KuvertError) => {
    feed.failure ??= err;
    req.unpipe(bb);
    for (const stream of open) stream.destroy(feed.failure);
    open.clear();
    bb.destroy(feed.failure);
  };
  bb.on("file", (_name, stream) => {
    open.add(stream);
    // Busboy reports a part without its closing boundary on the file stream; its reader sees
    // the same error through its pipeline, and until it attaches this listener keeps the process alive.
    stream.on("error", () => undefined);
    stream.once("close", () => open.delete(stream));
  });
  bb.on("error", (err: Error) => {
    feed.failure ??= err instanceof KuvertError ? err : new KuvertError(ErrCode.InvalidInput, `The multipart body cannot be read: ${err.message}.`);
  });
  req.on("close", () => {
    if (!req.complete) fail(brokenOff());
  });
  req.on("error", () => fail(brokenOff()));
  req.pipe(bb);
  return feed;
}

/**
 * The error to answer for a failed upload: the multipart failure when there is one, a
 * KUVERT_BODY_INCOMPLETE when the client broke off a raw body, else the error itself.
 */
export function uploadError(req: Request, err: unknown, feed?: BodyFeed): unknown {
  if (feed?.failure) return feed.failure;
  if (err instanceof KuvertError) return err;
  if (!req.complete && (req.readableAborted || req.destroyed)) return brokenOff();
  return err;
}
