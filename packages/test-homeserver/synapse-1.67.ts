// Answers as Synapse 1.67 gives them, for endpoints it does not have yet. Registered before the
// current routes when the homeserver runs with `synapse: "1.67"`, so they take precedence.
// What 1.67 does differently, checked against element-hq/synapse v1.67.0 and a running 1.67.0:
//
// | | Synapse 1.67 | current Synapse |
// | appservice transactions | legacy `PUT {url}/transactions/{txnId}?access_token=` (as-pusher.ts) | `/_matrix/app/v1/...`, bearer token |
// | appservice ping | 400 M_UNRECOGNIZED | 1.84+ |
// | ephemeral events to appservices | `de.sorunome.msc2409.push_ephemeral` only (appservices.ts) | also `receive_ephemeral`, under `ephemeral` (1.156+) |
// | MSC3202 one-time-key counts | `org.matrix.msc3202.device_one_time_key_counts` (core.ts) | also `…device_one_time_keys_count` (1.73+) |
// | authenticated media | 400 M_UNRECOGNIZED; `/_matrix/media/v3/download` serves everything | 1.120+ |
// | async upload | create: 404 (Twisted's HTML page); PUT upload: 400 M_UNRECOGNIZED | 1.111+ |
// | unknown client paths | 400 M_UNRECOGNIZED (UnrecognizedRequestError's default code then) | 404 M_UNRECOGNIZED |
// | spec versions | r0.0.1 … v1.2 | up to v1.12 here |
import type { Core } from "./core.ts";
import { unrecognized } from "./errors.ts";
import { type Reply, type Router, ok } from "./http.ts";

/** `GET /_matrix/client/versions` of Synapse 1.67 (synapse/rest/client/versions.py at v1.67.0). */
const SPEC_VERSIONS_1_67 = ["r0.0.1", "r0.1.0", "r0.2.0", "r0.3.0", "r0.4.0", "r0.5.0", "r0.6.0", "r0.6.1", "v1.1", "v1.2"];

/** What Twisted's NoResource answers for a path the media repository of 1.67 does not have. */
function noSuchResource(): Reply {
  const html = "\n<html>\n  <head><title>404 - No Such Resource</title></head>\n  <body>\n    <h1>No Such Resource</h1>\n    <p>No such child resource.</p>\n  </body>\n</html>\n";
  return { status: 404, body: Buffer.from(html, "utf8"), headers: { "Content-Type": "text/html; charset=utf-8" } };
}

const unrecognized400 = (): Reply => {
  throw unrecognized(400);
};

export function synapse167Routes(router: Router, _core: Core): void {
  // CS API GET /_matrix/client/versions (#get_matrixclientversions): 1.67 advertises up to v1.2.
  router.add("GET", "/_matrix/client/versions", () => ok({ versions: SPEC_VERSIONS_1_67, unstable_features: {} }));
  // AS API POST /_matrix/client/v1/appservice/{appserviceId}/ping (#post_matrixclientv1appserviceappserviceidping): Matrix 1.7, Synapse 1.84.
  router.add("POST", "/_matrix/client/v1/appservice/:appserviceId/ping", unrecognized400);
  // CS API POST /_matrix/media/v1/create (#post_matrixmediav1create): Matrix 1.7, Synapse 1.111.
  router.add("POST", "/_matrix/media/v1/create", noSuchResource);
  // CS API PUT /_matrix/media/v3/upload/{serverName}/{mediaId} (#put_matrixmediav3uploadservernamemediaid): Synapse 1.111.
  router.add("PUT", "/_matrix/media/v3/upload/:serverName/:mediaId", unrecognized400);
  // CS API GET /_matrix/client/v1/media/* (#get_matrixclientv1mediadownloadservernamemediaid and siblings): Matrix 1.11, Synapse 1.120.
  router.add("GET", "/_matrix/client/v1/media/download/:serverName/:mediaId", unrecognized400);
  router.add("GET", "/_matrix/client/v1/media/download/:serverName/:mediaId/:fileName", unrecognized400);
  router.add("GET", "/_matrix/client/v1/media/thumbnail/:serverName/:mediaId", unrecognized400);
  router.add("GET", "/_matrix/client/v1/media/config", unrecognized400);
}
