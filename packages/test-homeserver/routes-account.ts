import { pingAppservice } from "./as-pusher.ts";
import { authenticate, extractToken } from "./auth.ts";
import type { Core } from "./core.ts";
import { randomBytes } from "node:crypto";
import { MatrixError, exclusive, forbidden, invalidParam, missingParam, missingToken, notFound, unknownToken } from "./errors.ts";
import { type Reply, type Req, type Router, ok } from "./http.ts";
import { parseIdentifier } from "./ids.ts";
import { type JsonObject, isJsonObject } from "./types.ts";
import type { Account } from "./users.ts";

const C = "/_matrix/client/v3";
/** The one identity provider of the test homeserver's single sign-on. */
const IDP = { id: "oidc-test", name: "Test Identity Provider" };

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function loginResponse(core: Core, userId: string, body: JsonObject): Reply {
  const deviceId = body["device_id"];
  if (deviceId !== undefined && (typeof deviceId !== "string" || deviceId.length > 512)) {
    throw invalidParam("device_id cannot be longer than 512 characters.");
  }
  const displayName = typeof body["initial_device_display_name"] === "string" ? body["initial_device_display_name"] : undefined;
  const isNew = typeof deviceId !== "string" || !core.users.devices.get(userId)?.has(deviceId);
  const info = core.users.issueToken(userId, deviceId, displayName);
  // A new device changes its owner's device list (Synapse's `check_device_registered`).
  if (isNew) core.deviceListChanged(userId);
  return ok({ user_id: userId, access_token: info.token, home_server: core.serverName, device_id: info.deviceId });
}

/** Finds the account a password login names (Synapse's `AuthHandler.validate_login`). */
export function accountForLogin(core: Core, body: JsonObject): Account | undefined {
  let identifier = body["identifier"];
  if (identifier === undefined && typeof body["user"] === "string") identifier = { type: "m.id.user", user: body["user"] };
  if (identifier === undefined && typeof body["medium"] === "string" && typeof body["address"] === "string") {
    identifier = { type: "m.id.thirdparty", medium: body["medium"], address: body["address"] };
  }
  if (!isJsonObject(identifier)) throw new MatrixError(400, "M_UNKNOWN", "Invalid login submission");
  if (identifier["type"] === "m.id.user") {
    const user = identifier["user"];
    if (typeof user !== "string") throw new MatrixError(400, "M_INVALID_PARAM", "Invalid user in identifier");
    const userId = user.startsWith("@") ? user : `@${user}:${core.serverName}`;
    return core.users.findCaseInsensitive(userId);
  }
  if (identifier["type"] === "m.id.thirdparty") {
    const medium = identifier["medium"];
    const address = identifier["address"];
    if (typeof medium !== "string" || typeof address !== "string") throw new MatrixError(400, "M_UNKNOWN", "Invalid thirdparty identifier");
    const wanted = medium === "email" ? address.toLowerCase() : address;
    return [...core.users.accounts.values()].find((a) => a.threepids.some((t) => t.medium === medium && t.address === wanted));
  }
  throw new MatrixError(400, "M_UNKNOWN", "Unknown login identifier type");
}

export function accountRoutes(router: Router, core: Core): void {
  // CS API GET /_matrix/client/v3/login (#get_matrixclientv3login)
  router.add("GET", `${C}/login`, () =>
    ok({
      flows: [{ type: "m.login.password" }, { type: "m.login.application_service" }, ...(core.opts.sso ? [{ type: "m.login.sso", identity_providers: [{ id: IDP.id, name: IDP.name }] }, { type: "m.login.token" }] : [])],
    }),
  );

  // Single sign-on (CS API "Client login via SSO", #client-login-via-sso), when enabled.
  // Login tokens are single-use and short-lived (Synapse: 2 minutes).
  const loginTokens = new Map<string, { userId: string; expires: number }>();
  if (core.opts.sso) {
    // CS API GET /_matrix/client/v3/login/sso/redirect (#get_matrixclientv3loginssoredirect) and
    // .../redirect/{idpId}: the homeserver sends the browser to the identity provider. The provider
    // here is a page of the homeserver itself with a sign-in form.
    const redirect = (req: Req): Reply => {
      const redirectUrl = req.query.get("redirectUrl");
      if (!redirectUrl) throw missingParam("Missing required query parameter: redirectUrl");
      const idp = req.params["idpId"];
      if (idp !== undefined && idp !== IDP.id) throw notFound("Unknown identity provider ID");
      return { status: 302, headers: { Location: `/_test/idp/sign-in?${new URLSearchParams({ redirectUrl })}` } };
    };
    router.add("GET", `${C}/login/sso/redirect`, async (req) => redirect(req));
    router.add("GET", `${C}/login/sso/redirect/:idpId`, async (req) => redirect(req));
    // The identity provider's sign-in page (not part of Matrix).
    router.add("GET", "/_test/idp/sign-in", async (req) => {
      const back = escapeHtml(req.query.get("redirectUrl") ?? "");
      const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${IDP.name}</title></head><body><h1>${IDP.name}</h1>
<form method="post" action="/_test/idp/sign-in"><input type="hidden" name="redirectUrl" value="${back}">
<label for="idp-user">User name</label> <input id="idp-user" name="user"> <label for="idp-password">Password</label> <input id="idp-password" name="password" type="password">
<button type="submit">Sign in at ${IDP.name}</button></form></body></html>`;
      return { status: 200, body: Buffer.from(html), headers: { "Content-Type": "text/html; charset=utf-8" } };
    });
    // The provider vouches for the person; the homeserver sends the browser back with a login token.
    router.add("POST", "/_test/idp/sign-in", async (req) => {
      const form = new URLSearchParams((await req.body()).toString("utf8"));
      const account = accountForLogin(core, { type: "m.login.password", identifier: { type: "m.id.user", user: form.get("user") ?? "" } });
      if (!account || !core.users.checkPassword(account, form.get("password") ?? "")) throw forbidden("Invalid username or password");
      const token = `syl_${randomBytes(16).toString("hex")}`;
      loginTokens.set(token, { userId: account.userId, expires: Date.now() + 120_000 });
      const back = new URL(form.get("redirectUrl") ?? "");
      back.searchParams.set("loginToken", token);
      return { status: 302, headers: { Location: back.toString() } };
    });
  }

  // CS API POST /_matrix/client/v3/login (#post_matrixclientv3login)
  router.add("POST", `${C}/login`, async (req) => {
    const body = await req.json();
    const type = body["type"];
    if (type === undefined) throw new MatrixError(400, "M_UNKNOWN", "Missing JSON keys.");
    if (type === "m.login.application_service") {
      // CS API "Appservice Login" (#appservice-login): the as_token authenticates, the identifier names the user.
      const requester = authenticate(core, req);
      const as = requester.appservice;
      if (!as) throw unknownToken("This login method is only valid for application services");
      const identifier = body["identifier"];
      if (!isJsonObject(identifier)) throw invalidParam("Invalid identifier in login submission");
      if (identifier["type"] !== "m.id.user") throw invalidParam("Unknown login identifier type");
      const user = identifier["user"];
      if (typeof user !== "string") throw invalidParam("Invalid user in identifier");
      const userId = user.startsWith("@") ? user : `@${user}:${core.serverName}`;
      if (!as.isInterestedInUser(userId)) throw forbidden("Invalid access_token");
      const account = core.users.get(userId);
      if (!account) throw forbidden(`Application service has not registered this user (${userId})`);
      if (account.deactivated && userId !== as.senderId) throw new MatrixError(403, "M_USER_DEACTIVATED", "This account has been deactivated");
      return loginResponse(core, userId, body);
    }
    if (type === "m.login.token" && core.opts.sso) {
      // CS API "Token-based login" (#token-based-login): a login token from SSO, used once.
      const token = body["token"];
      const entry = typeof token === "string" ? loginTokens.get(token) : undefined;
      if (typeof token === "string") loginTokens.delete(token);
      if (!entry || entry.expires < Date.now()) throw forbidden("Invalid login token");
      return loginResponse(core, entry.userId, body);
    }
    if (type !== "m.login.password") throw new MatrixError(400, "M_UNKNOWN", `Unknown login type ${String(type)}`);
    const password = body["password"];
    if (typeof password !== "string") throw new MatrixError(400, "M_UNKNOWN", "Bad parameter: password");
    const account = accountForLogin(core, body);
    if (account?.deactivated) throw new MatrixError(403, "M_USER_DEACTIVATED", "This account has been deactivated");
    if (!account || !core.users.checkPassword(account, password)) throw forbidden("Invalid username or password");
    return loginResponse(core, account.userId, body);
  });

  // CS API POST /_matrix/client/v3/logout (#post_matrixclientv3logout)
  router.add("POST", `${C}/logout`, (req) => {
    const requester = authenticate(core, req);
    if (!requester.appservice) {
      core.users.revokeToken(requester.accessToken);
      if (requester.deviceId !== undefined) core.deleteDevices(requester.userId, [requester.deviceId]);
    }
    return ok({});
  });

  // CS API POST /_matrix/client/v3/logout/all (#post_matrixclientv3logoutall)
  router.add("POST", `${C}/logout/all`, (req) => {
    const requester = authenticate(core, req);
    core.deleteDevices(requester.userId, [...(core.users.devices.get(requester.userId)?.keys() ?? [])]);
    core.users.revokeAll(requester.userId);
    return ok({});
  });

  // CS API GET /_matrix/client/v3/account/whoami (#get_matrixclientv3accountwhoami)
  router.add("GET", `${C}/account/whoami`, (req) => {
    const requester = authenticate(core, req);
    const body: JsonObject = { user_id: requester.userId, is_guest: false };
    if (requester.deviceId !== undefined) body["device_id"] = requester.deviceId;
    return ok(body);
  });

  // CS API POST /_matrix/client/v3/register (#post_matrixclientv3register): only appservice registration; a closed server refuses the rest.
  router.add("POST", `${C}/register`, async (req) => {
    const kind = req.query.get("kind") ?? "user";
    if (kind === "guest") throw forbidden("Guest access is disabled");
    if (kind !== "user") throw new MatrixError(400, "M_UNRECOGNIZED", `Do not understand membership kind: ${kind}`);
    const body = await req.json();
    const username = body["username"];
    if (username !== undefined && (typeof username !== "string" || username.length > 512)) {
      throw new MatrixError(400, "M_UNKNOWN", "Invalid username");
    }
    const token = extractToken(req);
    if (body["type"] !== "m.login.application_service") {
      if (token !== undefined) {
        throw new MatrixError(400, "M_UNKNOWN", "An access token should not be provided on requests to /register (except if type is m.login.application_service)");
      }
      throw forbidden("Registration has been disabled");
    }
    if (token === undefined) {
      throw new MatrixError(400, "M_UNKNOWN", "Appservice token must be provided when using a type of m.login.application_service");
    }
    if (typeof username !== "string") throw new MatrixError(400, "M_UNKNOWN", "Desired Username is missing or not a string");
    const as = core.appservices.byAsToken(token);
    if (!as) throw unknownToken();
    const userId = `@${username}:${core.serverName}`;
    if (!parseIdentifier(userId, "@")) throw new MatrixError(400, "M_INVALID_USERNAME", "Invalid user ID");
    if (!as.isInterestedInUser(userId)) throw exclusive("Invalid user localpart for this application service.");
    if (core.appservices.exclusiveUserOwner(userId, as)) throw exclusive("This user ID is reserved by an application service.");
    if (core.users.get(userId)) throw new MatrixError(400, "M_USER_IN_USE", "User ID already taken.");
    core.users.create(userId, { displayname: username, appserviceId: as.isExclusiveUser(userId) ? as.id : undefined });
    if (body["inhibit_login"] === true) return ok({ user_id: userId, home_server: core.serverName });
    return loginResponse(core, userId, body);
  });

  // CS API GET /_matrix/client/v3/register/available (#get_matrixclientv3registeravailable)
  router.add("GET", `${C}/register/available`, () => {
    throw forbidden("Registration has been disabled");
  });

  // CS API GET /_matrix/client/v3/devices (#get_matrixclientv3devices)
  router.add("GET", `${C}/devices`, (req) => {
    const requester = authenticate(core, req);
    const devices = [...(core.users.devices.get(requester.userId)?.values() ?? [])];
    return ok({
      devices: devices.map((d) => ({ device_id: d.deviceId, display_name: d.displayName ?? null, last_seen_ts: d.lastSeenTs, last_seen_ip: null })),
    });
  });

  // CS API GET /_matrix/client/v3/devices/{deviceId} (#get_matrixclientv3devicesdeviceid)
  router.add("GET", `${C}/devices/:deviceId`, (req) => {
    const requester = authenticate(core, req);
    const d = core.users.devices.get(requester.userId)?.get(req.params["deviceId"] ?? "");
    if (!d) throw notFound("No device found");
    return ok({ device_id: d.deviceId, display_name: d.displayName ?? null, last_seen_ts: d.lastSeenTs, last_seen_ip: null });
  });

  // CS API PUT /_matrix/client/v3/devices/{deviceId} (#put_matrixclientv3devicesdeviceid)
  router.add("PUT", `${C}/devices/:deviceId`, async (req) => {
    const requester = authenticate(core, req);
    const body = await req.json();
    const d = core.users.devices.get(requester.userId)?.get(req.params["deviceId"] ?? "");
    if (!d) throw notFound("No device found");
    if (typeof body["display_name"] === "string") d.displayName = body["display_name"];
    return ok({});
  });

  // CS API POST /_matrix/client/v3/logout (#post_matrixclientv3logout): the access token is
  // invalidated and its device deleted (Synapse deletes the device with its keys).
  router.add("POST", `${C}/logout`, async (req) => {
    const requester = authenticate(core, req);
    await req.json({ allowEmpty: true });
    if (requester.appservice) throw forbidden("Application services cannot log out this way");
    core.users.revokeToken(requester.accessToken);
    if (requester.deviceId) core.deleteDevices(requester.userId, [requester.deviceId]);
    return ok({});
  });

  // CS API POST /_matrix/client/v3/user/{userId}/openid/request_token (#post_matrixclientv3useruseridopenidrequest_token)
  router.add("POST", `${C}/user/:userId/openid/request_token`, async (req) => {
    const requester = authenticate(core, req);
    await req.json({ allowEmpty: true });
    if (req.params["userId"] !== requester.userId) throw forbidden("Cannot request tokens for other users.");
    const token = core.users.issueOpenidToken(requester.userId, 3600 * 1000);
    return ok({ access_token: token, token_type: "Bearer", matrix_server_name: core.serverName, expires_in: 3600 });
  });

  // SS API GET /_matrix/federation/v1/openid/userinfo (#get_matrixfederationv1openiduserinfo)
  router.add("GET", "/_matrix/federation/v1/openid/userinfo", (req) => {
    const token = req.query.get("access_token");
    if (!token) throw missingToken("Access Token required");
    const userId = core.users.openidUser(token);
    if (!userId) throw unknownToken("Access Token unknown or expired");
    return ok({ sub: userId });
  });

  if (core.opts.supportsAppservicePing) {
    // AS API POST /_matrix/client/v1/appservice/{appserviceId}/ping (#post_matrixclientv1appserviceappserviceidping)
    router.add("POST", "/_matrix/client/v1/appservice/:appserviceId/ping", async (req: Req) => {
      const requester = authenticate(core, req);
      const as = requester.appservice;
      if (!as) throw forbidden("Only application services can use the /appservice/ping endpoint");
      if (as.id !== req.params["appserviceId"]) throw forbidden("Mismatching application service ID in path");
      if (as.url === undefined) throw new MatrixError(400, "M_URL_NOT_SET", "The application service does not have a URL set");
      const body = await req.json();
      const txnId = typeof body["transaction_id"] === "string" ? body["transaction_id"] : undefined;
      const duration = await pingAppservice(as, txnId, core.opts.asRequestTimeoutMs, core.pusher.stopSignal);
      return ok({ duration_ms: duration });
    });
  }
}
