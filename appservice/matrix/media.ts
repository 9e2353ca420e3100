// Media on the homeserver, streamed both ways (never held whole in memory).
import { Readable } from "node:stream";
import { homeserverRequests, requestOutcome } from "../metrics.ts";
import { HomeserverError, type Homeserver } from "./homeserver.ts";

export interface MediaInfo {
  filename: string;
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
 * Reserves a media id (CS API §"POST /_matrix/media/v1/create", Matrix 1.7), so that an upload
 * retried after a crash goes to the same id. Answers null where the homeserver lacks it.
 */
export async function createMedia(hs: Homeserver): Promise<string | null> {
  const res = await call(`${hs.url}/_matrix/media/v1/create`, { method: "POST", headers: { authorization: hs.authorization } });
  if (res.ok) return ((await res.json()) as { content_uri: string }).content_uri;
  const err = await errorOf(res);
  if (err.errcode === "M_UNRECOGNIZED" || res.status === 404 || res.status === 405) return null;
  throw err;
}

/**
 * Uploads a stream. With `mxc` (from createMedia): CS API §"PUT /_matrix/media/v3/upload/{serverName}/{mediaId}",
 * where M_CANNOT_OVERWRITE_MEDIA means an earlier attempt got through. Without: §"POST /_matrix/media/v3/upload".
 */
export async function uploadMedia(hs: Homeserver, body: Readable, info: MediaInfo, mxc: string | null): Promise<string> {
  const headers = { authorization: hs.authorization, "content-type": info.mimetype, "content-length": String(info.size) };
  const query = `filename=${encodeURIComponent(info.filename)}`;
  // redirect "error": with the default "follow", fetch keeps a copy of a streamed body to replay it
  // on a redirect, which holds a whole document in memory. The media endpoints never redirect.
  const init = { headers, body: Readable.toWeb(body) as ReadableStream, duplex: "half", redirect: "error" } as RequestInit;
  if (mxc) {
    const [serverName, mediaId] = mxc.slice("mxc://".length).split("/");
    const res = await call(`${hs.url}/_matrix/media/v3/upload/${encodeURIComponent(serverName!)}/${encodeURIComponent(mediaId!)}?${query}`, { ...init, method: "PUT" });
    if (res.ok) return mxc;
    const err = await errorOf(res);
    if (err.errcode === "M_CANNOT_OVERWRITE_MEDIA") return mxc;
    throw err;
  }
  const res = await call(`${hs.url}/_matrix/media/v3/upload?${query}`, { ...init, method: "POST" });
  if (!res.ok) throw await errorOf(res);
  return ((await res.json()) as { content_uri: string }).content_uri;
}

/**
 * Downloads media as a stream: the authenticated endpoint (CS API §"GET /_matrix/client/v1/media/download",
 * Matrix 1.11), falling back to §"GET /_matrix/media/v3/download" on homeservers that lack it.
 */
export async function downloadMedia(hs: Homeserver, mxc: string): Promise<{ stream: Readable; size: number | null; mimetype: string | null }> {
  const match = /^mxc:\/\/([^/]+)\/([A-Za-z0-9_-]+)$/.exec(mxc);
  if (!match) throw new HomeserverError(400, "K_BAD_MXC", `not a media URI: ${mxc}`);
  const path = `${encodeURIComponent(match[1]!)}/${encodeURIComponent(match[2]!)}`;
  let res = await call(`${hs.url}/_matrix/client/v1/media/download/${path}`, { headers: { authorization: hs.authorization } });
  if (!res.ok) {
    const err = await errorOf(res);
    if (!(err.errcode === "M_UNRECOGNIZED" || res.status === 405)) throw err;
    res = await call(`${hs.url}/_matrix/media/v3/download/${path}`, { headers: { authorization: hs.authorization } });
    if (!res.ok) throw await errorOf(res);
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
