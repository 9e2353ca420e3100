import { authenticate } from "./auth.ts";
import type { Core } from "./core.ts";
import { MatrixError, forbidden, notFound } from "./errors.ts";
import { newMediaId } from "./ids.ts";
import { type Reply, type Req, type Router, ok } from "./http.ts";
import type { MediaItem } from "./media-store.ts";

/** Synapse's INLINE_CONTENT_TYPES: everything else is served as an attachment. */
const INLINE_CONTENT_TYPES = new Set([
  "text/css",
  "text/plain",
  "text/csv",
  "application/json",
  "application/ld+json",
  "image/jpeg",
  "image/gif",
  "image/png",
  "image/apng",
  "image/webp",
  "image/avif",
  "video/mp4",
  "video/webm",
  "video/ogg",
  "video/quicktime",
  "audio/mp4",
  "audio/webm",
  "audio/aac",
  "audio/mpeg",
  "audio/ogg",
  "audio/wave",
  "audio/wav",
  "audio/x-wav",
  "audio/x-pn-wav",
  "audio/flac",
  "audio/x-flac",
]);

const CSP = "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; style-src 'unsafe-inline'; media-src 'self'; object-src 'self';";

function contentDisposition(contentType: string, filename: string | undefined): string {
  const base = contentType.split(";")[0]?.trim().toLowerCase() ?? "";
  const disposition = INLINE_CONTENT_TYPES.has(base) ? "inline" : "attachment";
  if (!filename) return disposition;
  if (/^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/.test(filename)) return `${disposition}; filename=${filename}`;
  return `${disposition}; filename*=utf-8''${encodeURIComponent(filename)}`;
}

function serve(item: MediaItem, filename: string | undefined): Reply {
  const data = item.data ?? Buffer.alloc(0);
  let contentType = item.contentType;
  if (contentType.toLowerCase().startsWith("text/") && !/charset/i.test(contentType)) contentType += "; charset=utf-8";
  return {
    status: 200,
    body: data,
    headers: {
      "Content-Type": contentType,
      "Content-Length": String(data.length),
      "Content-Disposition": contentDisposition(item.contentType, filename || item.filename),
      "Content-Security-Policy": CSP,
      "X-Content-Security-Policy": CSP,
      "Cross-Origin-Resource-Policy": "cross-origin",
      "X-Robots-Tag": "noindex, nofollow, noarchive, noimageindex",
    },
  };
}

function lookup(core: Core, req: Req, legacy: boolean): MediaItem {
  const item = core.media.get(req.params["serverName"] ?? "", req.params["mediaId"] ?? "");
  if (!item || item.quarantined || (legacy && item.authenticatedOnly)) throw notFound("Not found");
  if (item.data === undefined) throw new MatrixError(504, "M_NOT_YET_UPLOADED", "Media has not been uploaded yet");
  return item;
}

export function mediaRoutes(router: Router, core: Core): void {
  const upload = async (req: Req, item: MediaItem): Promise<void> => {
    item.data = await req.body(core.opts.maxUploadBytes);
    item.contentType = req.header("content-type") ?? "application/octet-stream";
    const filename = req.query.get("filename");
    if (filename !== null && filename !== "") item.filename = filename;
  };
  const newItem = (uploader: string): MediaItem => ({
    serverName: core.serverName,
    mediaId: newMediaId(),
    contentType: "application/octet-stream",
    filename: undefined,
    data: undefined,
    uploader,
    createdTs: Date.now(),
    quarantined: false,
    authenticatedOnly: core.opts.authenticatedMediaOnly,
  });

  // CS API POST /_matrix/media/v3/upload (#post_matrixmediav3upload)
  router.add("POST", "/_matrix/media/v3/upload", async (req) => {
    const requester = authenticate(core, req);
    const item = newItem(requester.userId);
    await upload(req, item);
    core.media.add(item);
    return ok({ content_uri: `mxc://${item.serverName}/${item.mediaId}` });
  });

  // CS API POST /_matrix/media/v1/create (#post_matrixmediav1create)
  router.add("POST", "/_matrix/media/v1/create", (req) => {
    const requester = authenticate(core, req);
    const item = newItem(requester.userId);
    core.media.add(item);
    return ok({ content_uri: `mxc://${item.serverName}/${item.mediaId}`, unused_expires_at: Date.now() + 24 * 3600 * 1000 });
  });

  // CS API PUT /_matrix/media/v3/upload/{serverName}/{mediaId} (#put_matrixmediav3uploadservernamemediaid)
  router.add("PUT", "/_matrix/media/v3/upload/:serverName/:mediaId", async (req) => {
    const requester = authenticate(core, req);
    const item = core.media.get(req.params["serverName"] ?? "", req.params["mediaId"] ?? "");
    if (!item) throw notFound("Not found");
    if (item.uploader !== requester.userId) throw forbidden("You may not upload to this media ID");
    if (item.data !== undefined) throw new MatrixError(409, "M_CANNOT_OVERWRITE_MEDIA", "Media ID cannot be overwritten");
    await upload(req, item);
    return ok({});
  });

  const download =
    (legacy: boolean) =>
    (req: Req): Reply => {
      if (!legacy) authenticate(core, req);
      return serve(lookup(core, req, legacy), req.params["fileName"]);
    };
  // CS API GET /_matrix/client/v1/media/download/{serverName}/{mediaId} (#get_matrixclientv1mediadownloadservernamemediaid)
  router.add("GET", "/_matrix/client/v1/media/download/:serverName/:mediaId", download(false));
  // CS API GET /_matrix/client/v1/media/download/{serverName}/{mediaId}/{fileName} (#get_matrixclientv1mediadownloadservernamemediaidfilename)
  router.add("GET", "/_matrix/client/v1/media/download/:serverName/:mediaId/:fileName", download(false));
  // CS API GET /_matrix/media/v3/download/{serverName}/{mediaId} (#get_matrixmediav3downloadservernamemediaid): deprecated; frozen by authenticated media
  router.add("GET", "/_matrix/media/v3/download/:serverName/:mediaId", download(true));
  // CS API GET /_matrix/media/v3/download/{serverName}/{mediaId}/{fileName} (#get_matrixmediav3downloadservernamemediaidfilename)
  router.add("GET", "/_matrix/media/v3/download/:serverName/:mediaId/:fileName", download(true));

  // Thumbnails are not generated: images are served as they are, other media has no thumbnail.
  const thumbnail =
    (legacy: boolean) =>
    (req: Req): Reply => {
      if (!legacy) authenticate(core, req);
      const item = lookup(core, req, legacy);
      if (!item.contentType.startsWith("image/")) throw notFound("Not found");
      return serve(item, undefined);
    };
  // CS API GET /_matrix/client/v1/media/thumbnail/{serverName}/{mediaId} (#get_matrixclientv1mediathumbnailservernamemediaid)
  router.add("GET", "/_matrix/client/v1/media/thumbnail/:serverName/:mediaId", thumbnail(false));
  // CS API GET /_matrix/media/v3/thumbnail/{serverName}/{mediaId} (#get_matrixmediav3thumbnailservernamemediaid)
  router.add("GET", "/_matrix/media/v3/thumbnail/:serverName/:mediaId", thumbnail(true));

  const config = (req: Req): Reply => {
    authenticate(core, req);
    return ok({ "m.upload.size": core.opts.maxUploadBytes });
  };
  // CS API GET /_matrix/client/v1/media/config (#get_matrixclientv1mediaconfig)
  router.add("GET", "/_matrix/client/v1/media/config", config);
  // CS API GET /_matrix/media/v3/config (#get_matrixmediav3config)
  router.add("GET", "/_matrix/media/v3/config", config);
}
