// Media on the homeserver, streamed both ways (never held whole in memory).
import { open } from "node:fs/promises";
import { request as httpRequest, type ClientRequest, type IncomingMessage, type OutgoingHttpHeaders } from "node:http";
import { request as httpsRequest } from "node:https";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { homeserverRequests, requestOutcome } from "../metrics.ts";
import { HomeserverError, lacksEndpoint, type Homeserver } from "./homeserver.ts";

export interface MediaInfo {
  /** The name the homeserver keeps with the media; none for an encrypted attachment. */
  filename: string | null;
  mimetype: string;
  size: number;
}

async function errorOf(res: Response): Promise<HomeserverError> {
  const body = (await res.json().catch(() => ({}))) as { errcode?: string; error?: string; retry_after_ms?: number };
  return new HomeserverError(res.status, body.errcode ?? "M_UNKNOWN", body.error ?? res.statusText, body.retry_after_ms);
}

async function call(url: string, init: RequestInit): Promise<Response> {
  const done = homeserverRequests.startTimer({ method: init.method ?? "GET" });
  try {
    const res = await fetch(url, init);
    done({ outcome: requestOutcome(res.status) });
    return res;
  } catch (err) {
    done({ outcome: "unreachable" });
    throw new HomeserverError(0, "K_HOMESERVER_UNREACHABLE", `the homeserver could not be reached: ${(err as Error).message}`);
  }
}

/**
 * What the homeserver's media repository offers, learnt from its answers the first time Kuvert
 * needs it and remembered per Homeserver, so a document costs no extra request. A remembered
 * answer is checked again when a request built on it fails, and after an hour (a homeserver
 * upgraded under a running Kuvert is noticed).
 *
 * | | Synapse 1.67 (< 1.111 / < 1.120) | current Synapse |
 * | async upload (create + PUT) | create: 404 (HTML), PUT: 400 M_UNRECOGNIZED | yes (1.111+) |
 * | authenticated media | 400 M_UNRECOGNIZED | yes (1.120+); /_matrix/media/v3/download may be frozen (404) |
 * | upload limit (m.upload.size) | GET /_matrix/media/v3/config | GET /_matrix/client/v1/media/config |
 */
export interface MediaCapabilities {
  asyncUpload: boolean | undefined;
  authenticatedMedia: boolean | undefined;
  /** The largest upload the homeserver takes, in bytes; null: it names none. */
  uploadLimit: number | null | undefined;
}

const relearnAfterMs = 3600_000;
const learnt = new WeakMap<Homeserver, { caps: MediaCapabilities; at: number }>();

/** The remembered capabilities of this homeserver (undefined: not known yet). */
export function mediaCapabilities(hs: Homeserver): MediaCapabilities {
  let entry = learnt.get(hs);
  if (!entry || Date.now() - entry.at > relearnAfterMs) {
    entry = { caps: { asyncUpload: undefined, authenticatedMedia: undefined, uploadLimit: undefined }, at: Date.now() };
    learnt.set(hs, entry);
  }
  return entry.caps;
}

/**
 * Reserves a media id (CS API §"POST /_matrix/media/v1/create", Matrix 1.7), so that an upload
 * retried after a crash goes to the same id. Answers null where the homeserver lacks it
 * (remembered: the next document uploads with a plain POST straight away).
 */
export async function createMedia(hs: Homeserver): Promise<string | null> {
  const caps = mediaCapabilities(hs);
  if (caps.asyncUpload === false) return null;
  const res = await call(`${hs.url}/_matrix/media/v1/create`, { method: "POST", headers: { authorization: hs.authorization } });
  if (res.ok) {
    caps.asyncUpload = true;
    return ((await res.json()) as { content_uri: string }).content_uri;
  }
  const err = await errorOf(res);
  if (lacksEndpoint(err)) {
    caps.asyncUpload = false;
    return null;
  }
  throw err;
}

/**
 * Puts one file into the media repository once, across crashes and retries. A reserved id
 * (`reserve`, createMedia) is recorded before its PUT, so a crash repeats the same PUT; a finished
 * upload is recorded as such and never sent again (homeservers without async upload refuse any
 * PUT, and the file is there already). `put` uploads to the reserved id, or with a POST when
 * there is none.
 */
export async function uploadOnce(media: { mxc: string | null; uploaded: boolean }, steps: { reserve(): Promise<string | null>; record(mxc: string, uploaded: boolean): Promise<unknown>; put(reserved: string | null): Promise<string> }): Promise<string> {
  if (media.uploaded) {
    if (!media.mxc) throw new Error("a file marked as uploaded has no media URI");
    return media.mxc;
  }
  let reserved = media.mxc;
  if (!reserved) {
    reserved = await steps.reserve();
    if (reserved) await steps.record(reserved, false);
  }
  const mxc = await steps.put(reserved);
  await steps.record(mxc, true);
  return mxc;
}

/**
 * The homeserver's upload limit (CS API §"GET /_matrix/client/v1/media/config", Matrix 1.11, or
 * §"GET /_matrix/media/v3/config" before it), learnt once. A file over it is refused before a
 * byte is sent: Synapse aborts the connection of an upload over its limit rather than answer
 * 413, which would look like a homeserver that cannot be reached and be retried. Unknown (the
 * homeserver does not answer) means no check, and is asked again next time.
 */
async function uploadLimit(hs: Homeserver): Promise<number | null> {
  const caps = mediaCapabilities(hs);
  if (caps.uploadLimit !== undefined) return caps.uploadLimit;
  const paths = caps.authenticatedMedia === false ? ["/_matrix/media/v3/config"] : ["/_matrix/client/v1/media/config", "/_matrix/media/v3/config"];
  for (const path of paths) {
    const res = await call(`${hs.url}${path}`, { headers: { authorization: hs.authorization } }).catch(() => undefined);
    if (!res) return null;
    if (res.ok) {
      const size = ((await res.json().catch(() => ({}))) as { "m.upload.size"?: unknown })["m.upload.size"];
      caps.uploadLimit = typeof size === "number" && Number.isSafeInteger(size) && size > 0 ? size : null;
      return caps.uploadLimit;
    }
    if (!lacksEndpoint(await errorOf(res))) return null;
  }
  caps.uploadLimit = null;
  return null;
}

/**
 * Uploads a file (by path) or a stream. With `mxc` (reserved by createMedia): CS API §"PUT /_matrix/media/v3/upload/{serverName}/{mediaId}",
 * where M_CANNOT_OVERWRITE_MEDIA means an earlier attempt got through. Without: §"POST /_matrix/media/v3/upload".
 * The caller records the answer as uploaded and never uploads it again.
 */
export async function uploadMedia(hs: Homeserver, body: Readable | { path: string }, info: MediaInfo, mxc: string | null): Promise<string> {
  const limit = await uploadLimit(hs);
  if (limit !== null && info.size > limit) {
    if (body instanceof Readable) body.destroy();
    throw new HomeserverError(413, "M_TOO_LARGE", `the file has ${info.size} bytes, more than the ${limit} the homeserver accepts (its m.upload.size)`);
  }
  const headers = { authorization: hs.authorization, "content-type": info.mimetype, "content-length": String(info.size) };
  const query = info.filename === null ? "" : `filename=${encodeURIComponent(info.filename)}`;
  if (mxc) {
    const [serverName, mediaId] = mxc.slice("mxc://".length).split("/");
    const res = await send(`${hs.url}/_matrix/media/v3/upload/${encodeURIComponent(serverName!)}/${encodeURIComponent(mediaId!)}?${query}`, "PUT", headers, body);
    if (res.ok) return mxc;
    if (res.error.errcode === "M_CANNOT_OVERWRITE_MEDIA") return mxc;
    if (lacksEndpoint(res.error)) {
      // No async upload here, so this mxc was no reservation: it came from a plain upload that
      // holds the file already (recorded before uploads were marked as done).
      mediaCapabilities(hs).asyncUpload = false;
      return mxc;
    }
    throw res.error;
  }
  const res = await send(`${hs.url}/_matrix/media/v3/upload?${query}`, "POST", headers, body);
  if (!res.ok) throw res.error;
  return (res.json as { content_uri: string }).content_uri;
}

/** Bytes read from a file at a time for an upload, into buffers that are used again. */
const uploadChunkBytes = 1024 * 1024;
/**
 * Upload buffers outlive their upload while others follow: a fresh pair of 1 MiB for every
 * document, even one of 10 kB, was 2 GiB of short-lived memory outside V8's heap for 1,000
 * documents, and V8 answers such memory with full collections of its heap (bench/README.md).
 * An upload takes buffers from here and gives them back once the socket has taken every byte;
 * at most `spareBuffers` wait, and none a second after the last upload ended, so a Kuvert at
 * rest keeps nothing here.
 */
const spareBuffers = 8;
const spare: Buffer[] = [];
let uploading = 0;
let dropSpare: NodeJS.Timeout | undefined;
function takeBuffers(): Buffer[] {
  uploading++;
  clearTimeout(dropSpare);
  return [spare.pop() ?? Buffer.allocUnsafeSlow(uploadChunkBytes), spare.pop() ?? Buffer.allocUnsafeSlow(uploadChunkBytes)];
}
/** The upload is over; its buffers may be used again (`reusable`: no write can still be reading them). */
function uploadEnded(buffers: Buffer[], reusable: boolean): void {
  uploading--;
  if (reusable) for (const b of buffers) if (spare.length < spareBuffers) spare.push(b);
  if (uploading === 0) {
    dropSpare = setTimeout(() => (spare.length = 0), 1000);
    dropSpare.unref();
  }
}
const idleTimeoutMs = 300_000;

/**
 * Sends a body with node:http rather than fetch. fetch turns a Node stream into a web stream
 * and queues chunks on the way, and every chunk read is a new Buffer: for a 1 GiB document
 * that was 25–50 MiB of Buffers in flight or waiting for collection (bench/README.md). A file
 * is read into two buffers that take turns, each used again only once the socket has taken
 * it, so an upload of any size needs 2 MiB.
 */
async function send(url: string, method: "PUT" | "POST", headers: OutgoingHttpHeaders, body: Readable | { path: string }): Promise<{ ok: true; json: unknown } | { ok: false; error: HomeserverError }> {
  const done = homeserverRequests.startTimer({ method });
  const target = new URL(url);
  const req = (target.protocol === "https:" ? httpsRequest : httpRequest)(target, { method, headers });
  // Like fetch's body and headers timeouts: a homeserver that stops moving does not hold a worker forever.
  req.setTimeout(idleTimeoutMs, () => req.destroy(new Error(`no progress for ${idleTimeoutMs / 1000} s`)));
  const response = new Promise<IncomingMessage>((resolve, reject) => {
    req.once("response", resolve);
    req.once("error", reject);
  });
  response.catch(() => undefined);
  let res: IncomingMessage;
  try {
    if (body instanceof Readable) await pipeline(body, req);
    else await writeFile(req, body.path);
    res = await response;
  } catch (err) {
    req.destroy();
    done({ outcome: "unreachable" });
    // A homeserver that answers before taking the whole body (413, 401) ends the upload early: its answer counts.
    const early = await Promise.race([response, new Promise<undefined>((r) => setTimeout(r, 100, undefined))]).catch(() => undefined);
    if (early) return readAnswer(early, done);
    throw new HomeserverError(0, "K_HOMESERVER_UNREACHABLE", `the homeserver could not be reached: ${(err as Error).message}`);
  }
  return readAnswer(res, done);
}

async function readAnswer(res: IncomingMessage, done: (labels: { outcome: string }) => void): Promise<{ ok: true; json: unknown } | { ok: false; error: HomeserverError }> {
  const status = res.statusCode ?? 0;
  done({ outcome: requestOutcome(status) });
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  let json: unknown = {};
  try {
    json = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    // Not JSON: the status says what happened.
  }
  if (status >= 200 && status < 300) return { ok: true, json };
  const b = json as { errcode?: string; error?: string; retry_after_ms?: number };
  return { ok: false, error: new HomeserverError(status, b.errcode ?? "M_UNKNOWN", b.error ?? res.statusMessage ?? String(status), b.retry_after_ms) };
}

async function writeFile(req: ClientRequest, path: string): Promise<void> {
  const file = await open(path, "r");
  // A write whose callback never comes (the connection went away) must not hang the upload.
  const broken = new Promise<never>((_resolve, reject) => {
    req.once("error", reject);
    req.once("close", () => reject(new Error("the connection closed during the upload")));
  });
  broken.catch(() => undefined);
  const buffers = takeBuffers();
  let reusable = false;
  try {
    const taken: (Promise<void> | undefined)[] = [undefined, undefined];
    for (let turn = 0; ; turn = 1 - turn) {
      await Promise.race([taken[turn], broken]);
      const { bytesRead } = await file.read(buffers[turn]!, 0, uploadChunkBytes, null);
      if (bytesRead === 0) break;
      taken[turn] = new Promise<void>((resolve, reject) => {
        req.write(buffers[turn]!.subarray(0, bytesRead), (err) => (err ? reject(err) : resolve()));
      });
      // Errors surface when the turn comes round again, or below.
      taken[turn]!.catch(() => undefined);
    }
    await Promise.race([Promise.all(taken.filter((t) => t !== undefined)), broken]);
    await Promise.race([new Promise<void>((resolve) => req.end(resolve)), broken]);
    // Only now is every write's callback in: no socket holds them any more. (After a failure
    // they are left to the collector, since a write may still be under way.)
    reusable = true;
  } finally {
    uploadEnded(buffers, reusable);
    await file.close();
  }
}

/**
 * Downloads media as a stream: the authenticated endpoint (CS API §"GET /_matrix/client/v1/media/download",
 * Matrix 1.11), or §"GET /_matrix/media/v3/download" on homeservers that lack it (Synapse < 1.120
 * answers 400 M_UNRECOGNIZED). Which one works is remembered; when the remembered one fails,
 * the other is tried once and the answer learnt again.
 */
export async function downloadMedia(hs: Homeserver, mxc: string): Promise<{ stream: Readable; size: number | null; mimetype: string | null }> {
  const match = /^mxc:\/\/([^/]+)\/([A-Za-z0-9_-]+)$/.exec(mxc);
  if (!match) throw new HomeserverError(400, "K_BAD_MXC", `not a media URI: ${mxc}`);
  const path = `${encodeURIComponent(match[1]!)}/${encodeURIComponent(match[2]!)}`;
  const caps = mediaCapabilities(hs);
  const authenticated = () => call(`${hs.url}/_matrix/client/v1/media/download/${path}`, { headers: { authorization: hs.authorization } });
  const legacy = () => call(`${hs.url}/_matrix/media/v3/download/${path}`, { headers: { authorization: hs.authorization } });
  let res: Response;
  if (caps.authenticatedMedia !== false) {
    res = await authenticated();
    if (res.ok) caps.authenticatedMedia = true;
    else {
      const err = await errorOf(res);
      if (!lacksEndpoint(err)) throw err;
      caps.authenticatedMedia = false;
      res = await legacy();
      if (!res.ok) throw await errorOf(res);
    }
  } else {
    res = await legacy();
    if (!res.ok) {
      const err = await errorOf(res);
      if (err.status !== 404) throw err;
      // Maybe upgraded meanwhile, with unauthenticated downloads frozen: ask the other way once.
      res = await authenticated();
      if (!res.ok) {
        const again = await errorOf(res);
        if (lacksEndpoint(again)) throw err;
        caps.authenticatedMedia = true;
        throw again;
      }
      caps.authenticatedMedia = true;
    }
  }
  if (!res.body) throw new HomeserverError(502, "K_EMPTY_MEDIA", "the homeserver sent no body");
  const length = res.headers.get("content-length");
  return { stream: Readable.fromWeb(res.body as never), size: length ? Number(length) : null, mimetype: res.headers.get("content-type") };
}

/** Quarantines media through Synapse's admin API (POST /_synapse/admin/v1/media/quarantine/{serverName}/{mediaId}). */
export async function quarantineMedia(hs: Homeserver, adminToken: string, mxc: string): Promise<void> {
  const [serverName, mediaId] = mxc.slice("mxc://".length).split("/");
  const res = await call(`${hs.url}/_synapse/admin/v1/media/quarantine/${encodeURIComponent(serverName!)}/${encodeURIComponent(mediaId!)}`, {
    method: "POST",
    headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
    body: "{}",
  });
  if (!res.ok) throw await errorOf(res);
}
