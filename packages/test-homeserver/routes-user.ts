import { type Requester, authenticate, authenticateOptional } from "./auth.ts";
import type { Core } from "./core.ts";
import { MatrixError, badJson, forbidden, invalidParam, missingParam, notFound } from "./errors.ts";
import { DEFAULT_ROOM_VERSION, SUPPORTED_ROOM_VERSIONS } from "./events.ts";
import { type Req, type Router, ok } from "./http.ts";
import { defaultPushRules } from "./push-rules.ts";
import { propagateProfile } from "./room-actions.ts";
import { type JsonObject, isJsonObject } from "./types.ts";
import type { Account } from "./users.ts";

const C = "/_matrix/client/v3";
const MAX_DISPLAYNAME_LEN = 256;
const MAX_AVATAR_URL_LEN = 1000;

const SPEC_VERSIONS = ["r0.0.1", "r0.1.0", "r0.2.0", "r0.3.0", "r0.4.0", "r0.5.0", "r0.6.0", "r0.6.1", "v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8", "v1.9", "v1.10", "v1.11", "v1.12"];

function ownUser(req: Req, requester: Requester, what: string): string {
  const userId = req.params["userId"] ?? "";
  if (userId !== requester.userId) throw forbidden(`Cannot ${what} for other users.`);
  return userId;
}

export function userRoutes(router: Router, core: Core): void {
  // CS API GET /_matrix/client/versions (#get_matrixclientversions)
  router.add("GET", "/_matrix/client/versions", (req) => {
    authenticateOptional(core, req);
    return ok({
      versions: SPEC_VERSIONS,
      unstable_features: {
        "org.matrix.label_based_filtering": true,
        "org.matrix.e2e_cross_signing": true,
        "org.matrix.msc2432": true,
        "uk.half-shot.msc2666.query_mutual_rooms": false,
        "io.element.e2ee_forced.public": false,
        "io.element.e2ee_forced.private": false,
        "io.element.e2ee_forced.trusted_private": false,
        "org.matrix.msc3026.busy_presence": false,
        "org.matrix.msc2285.stable": true,
        "org.matrix.msc3827.stable": true,
        "org.matrix.msc3440.stable": true,
        "org.matrix.msc3771": true,
        "org.matrix.msc3773": false,
        "fi.mau.msc2815": false,
        "fi.mau.msc2659.stable": core.opts.supportsAppservicePing,
        "org.matrix.msc3882": false,
        "org.matrix.msc3881": false,
        "org.matrix.msc3874": false,
        "org.matrix.msc3886": false,
        "org.matrix.msc3912": false,
        "org.matrix.msc3981": false,
        "org.matrix.msc3391": false,
        "org.matrix.msc4069": false,
        "org.matrix.msc4028": false,
        "org.matrix.msc4108": false,
        "org.matrix.msc4140": false,
        "org.matrix.simplified_msc3575": false,
        "org.matrix.msc3916.stable": true,
      },
    });
  });

  // CS API GET /_matrix/client/v3/capabilities (#get_matrixclientv3capabilities)
  router.add("GET", `${C}/capabilities`, (req) => {
    authenticate(core, req);
    return ok({
      capabilities: {
        "m.room_versions": { default: DEFAULT_ROOM_VERSION, available: Object.fromEntries(SUPPORTED_ROOM_VERSIONS.map((v) => [v, "stable"])) },
        "m.change_password": { enabled: true },
        "m.set_displayname": { enabled: true },
        "m.set_avatar_url": { enabled: true },
        "m.3pid_changes": { enabled: true },
        "m.get_login_token": { enabled: false },
      },
    });
  });

  // CS API GET /.well-known/matrix/client (#getwell-knownmatrixclient)
  router.add("GET", "/.well-known/matrix/client", (req) => {
    const host = req.header("host") ?? "127.0.0.1";
    return ok({ "m.homeserver": { base_url: `http://${host}` } });
  });

  profileRoutes(router, core);
  accountDataRoutes(router, core);

  // CS API GET /_matrix/client/v3/pushrules/ (#get_matrixclientv3pushrules)
  router.add("GET", `${C}/pushrules/`, (req) => {
    const requester = authenticate(core, req);
    return ok(core.users.getAccountData(requester.userId, "", "m.push_rules")?.content ?? defaultPushRules(requester.userId));
  });
  // CS API GET /_matrix/client/v3/pushrules/ (#get_matrixclientv3pushrules), asked without the slash
  router.add("GET", `${C}/pushrules`, (req) => {
    const requester = authenticate(core, req);
    return ok(core.users.getAccountData(requester.userId, "", "m.push_rules")?.content ?? defaultPushRules(requester.userId));
  });
  // CS API GET /_matrix/client/v3/pushrules/global/ (#get_matrixclientv3pushrulesglobal)
  router.add("GET", `${C}/pushrules/global/`, (req) => {
    const requester = authenticate(core, req);
    const rules = defaultPushRules(requester.userId)["global"];
    return ok(rules);
  });
  // Push rule changes are accepted, not applied.
  const acceptRule = async (req: Req) => {
    authenticate(core, req);
    await req.json({ allowEmpty: true });
    return ok({});
  };
  // CS API PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId} (#put_matrixclientv3pushrulesglobalkindruleid)
  router.add("PUT", `${C}/pushrules/global/:kind/:ruleId`, acceptRule);
  // CS API PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/enabled (#put_matrixclientv3pushrulesglobalkindruleidenabled)
  router.add("PUT", `${C}/pushrules/global/:kind/:ruleId/enabled`, acceptRule);
  // CS API PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/actions (#put_matrixclientv3pushrulesglobalkindruleidactions)
  router.add("PUT", `${C}/pushrules/global/:kind/:ruleId/actions`, acceptRule);
  // CS API DELETE /_matrix/client/v3/pushrules/global/{kind}/{ruleId} (#delete_matrixclientv3pushrulesglobalkindruleid)
  router.add("DELETE", `${C}/pushrules/global/:kind/:ruleId`, (req) => {
    authenticate(core, req);
    return ok({});
  });

  // CS API PUT /_matrix/client/v3/presence/{userId}/status (#put_matrixclientv3presenceuseridstatus)
  router.add("PUT", `${C}/presence/:userId/status`, async (req) => {
    const requester = authenticate(core, req);
    if (req.params["userId"] !== requester.userId) throw forbidden("Can only set your own presence state");
    const body = await req.json();
    const presence = body["presence"];
    if (presence !== "online" && presence !== "offline" && presence !== "unavailable") throw invalidParam("Invalid presence state");
    const statusMsg = typeof body["status_msg"] === "string" ? body["status_msg"] : undefined;
    core.users.presence.set(requester.userId, { presence, statusMsg, lastActiveTs: Date.now() });
    return ok({});
  });

  // CS API GET /_matrix/client/v3/presence/{userId}/status (#get_matrixclientv3presenceuseridstatus)
  router.add("GET", `${C}/presence/:userId/status`, (req) => {
    authenticate(core, req);
    const userId = req.params["userId"] ?? "";
    if (!core.users.get(userId)) throw notFound("Unknown user");
    const p = core.users.presence.get(userId);
    const body: JsonObject = { presence: p?.presence ?? "offline" };
    if (p) body["last_active_ago"] = Date.now() - p.lastActiveTs;
    if (p?.statusMsg !== undefined) body["status_msg"] = p.statusMsg;
    if (p?.presence === "online") body["currently_active"] = true;
    return ok(body);
  });

  // CS API GET /_matrix/client/v3/voip/turnServer (#get_matrixclientv3voipturnserver): no TURN server configured: Synapse answers {}
  router.add("GET", `${C}/voip/turnServer`, (req) => {
    authenticate(core, req);
    return ok({});
  });

  // CS API GET /_matrix/client/v3/room_keys/version (#get_matrixclientv3room_keysversion)
  router.add("GET", `${C}/room_keys/version`, (req) => {
    authenticate(core, req);
    throw notFound("No backup found");
  });
  // CS API GET /_matrix/client/v3/thirdparty/protocols (#get_matrixclientv3thirdpartyprotocols)
  router.add("GET", `${C}/thirdparty/protocols`, (req) => {
    authenticate(core, req);
    return ok({});
  });
}

function profileBody(account: Account): JsonObject {
  const body: JsonObject = {};
  if (account.displayname !== null) body["displayname"] = account.displayname;
  if (account.avatarUrl !== null) body["avatar_url"] = account.avatarUrl;
  return body;
}

function profileRoutes(router: Router, core: Core): void {
  const target = (req: Req): Account => {
    const account = core.users.get(req.params["userId"] ?? "");
    if (!account) throw notFound("Profile was not found");
    return account;
  };
  // CS API GET /_matrix/client/v3/profile/{userId} (#get_matrixclientv3profileuserid)
  router.add("GET", `${C}/profile/:userId`, (req) => {
    authenticateOptional(core, req);
    return ok(profileBody(target(req)));
  });

  for (const field of ["displayname", "avatar_url"] as const) {
    // CS API GET /_matrix/client/v3/profile/{userId}/displayname (#get_matrixclientv3profileuseriddisplayname)
    // CS API GET /_matrix/client/v3/profile/{userId}/avatar_url (#get_matrixclientv3profileuseridavatar_url)
    router.add("GET", `${C}/profile/:userId/${field}`, (req) => {
      authenticateOptional(core, req);
      const body = profileBody(target(req));
      return ok(field in body ? { [field]: body[field] ?? null } : {});
    });

    // CS API PUT /_matrix/client/v3/profile/{userId}/displayname (#put_matrixclientv3profileuseriddisplayname)
    // CS API PUT /_matrix/client/v3/profile/{userId}/avatar_url (#put_matrixclientv3profileuseridavatar_url)
    router.add("PUT", `${C}/profile/:userId/${field}`, async (req) => {
      const requester = authenticate(core, req);
      const userId = req.params["userId"] ?? "";
      if (!core.isLocalUser(userId)) throw new MatrixError(400, "M_UNKNOWN", "User is not hosted on this homeserver");
      if (userId !== requester.userId && !requester.isAdmin) {
        throw new MatrixError(400, "M_FORBIDDEN", `Cannot set another user's ${field}`);
      }
      const body = await req.json();
      if (!(field in body)) throw missingParam(`Missing key '${field}'`);
      const value = body[field];
      if (value !== null && typeof value !== "string") throw invalidParam(`'${field}' must be a string`);
      const max = field === "displayname" ? MAX_DISPLAYNAME_LEN : MAX_AVATAR_URL_LEN;
      if (typeof value === "string" && value.length > max) {
        throw new MatrixError(400, "M_UNKNOWN", `${field === "displayname" ? "Displayname" : "Avatar URL"} is too long (max ${max})`);
      }
      const account = target(req);
      const trimmed = typeof value === "string" ? value.trim() : "";
      if (field === "displayname") account.displayname = trimmed === "" ? null : trimmed;
      else account.avatarUrl = trimmed === "" ? null : trimmed;
      if (req.query.get("propagate") !== "false") propagateProfile(core, requester, userId);
      return ok({});
    });
  }
}

function accountDataRoutes(router: Router, core: Core): void {
  const checkType = (type: string, roomId: string): void => {
    if (type === "m.push_rules") {
      throw badJson("Cannot set m.push_rules through this API. Please use /pushrules instead");
    }
    if (roomId !== "" && type === "m.fully_read") {
      throw new MatrixError(405, "M_BAD_JSON", `Cannot set m.fully_read through this API. Use /rooms/${roomId}/read_markers instead.`);
    }
  };

  // CS API PUT /_matrix/client/v3/user/{userId}/account_data/{type} (#put_matrixclientv3useruseridaccount_datatype)
  router.add("PUT", `${C}/user/:userId/account_data/:type`, async (req) => {
    const requester = authenticate(core, req);
    const userId = ownUser(req, requester, "add account data");
    const type = req.params["type"] ?? "";
    checkType(type, "");
    const content = await req.json();
    core.users.setAccountData(userId, "", type, content, core.bump());
    return ok({});
  });

  // CS API GET /_matrix/client/v3/user/{userId}/account_data/{type} (#get_matrixclientv3useruseridaccount_datatype)
  router.add("GET", `${C}/user/:userId/account_data/:type`, (req) => {
    const requester = authenticate(core, req);
    const userId = ownUser(req, requester, "get account data");
    const entry = core.users.getAccountData(userId, "", req.params["type"] ?? "");
    if (!entry) throw notFound("Account data not found");
    return ok(entry.content);
  });

  // CS API PUT /_matrix/client/v3/user/{userId}/rooms/{roomId}/account_data/{type} (#put_matrixclientv3useruseridroomsroomidaccount_datatype)
  router.add("PUT", `${C}/user/:userId/rooms/:roomId/account_data/:type`, async (req) => {
    const requester = authenticate(core, req);
    const userId = ownUser(req, requester, "add account data");
    const roomId = req.params["roomId"] ?? "";
    const type = req.params["type"] ?? "";
    checkType(type, roomId);
    const content = await req.json();
    core.users.setAccountData(userId, roomId, type, content, core.bump());
    return ok({});
  });

  // CS API GET /_matrix/client/v3/user/{userId}/rooms/{roomId}/account_data/{type} (#get_matrixclientv3useruseridroomsroomidaccount_datatype)
  router.add("GET", `${C}/user/:userId/rooms/:roomId/account_data/:type`, (req) => {
    const requester = authenticate(core, req);
    const userId = ownUser(req, requester, "get account data");
    const entry = core.users.getAccountData(userId, req.params["roomId"] ?? "", req.params["type"] ?? "");
    if (!entry) throw notFound("Room account data not found");
    return ok(entry.content);
  });

  // CS API GET /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags (#get_matrixclientv3useruseridroomsroomidtags)
  router.add("GET", `${C}/user/:userId/rooms/:roomId/tags`, (req) => {
    const requester = authenticate(core, req);
    const userId = ownUser(req, requester, "get tags");
    const tags = core.users.getAccountData(userId, req.params["roomId"] ?? "", "m.tag")?.content["tags"];
    return ok({ tags: isJsonObject(tags) ? tags : {} });
  });

  const editTag = async (req: Req, add: boolean) => {
    const requester = authenticate(core, req);
    const userId = ownUser(req, requester, "add tags");
    const roomId = req.params["roomId"] ?? "";
    const body = add ? await req.json() : {};
    const current = core.users.getAccountData(userId, roomId, "m.tag")?.content["tags"];
    const tags: JsonObject = isJsonObject(current) ? { ...current } : {};
    if (add) tags[req.params["tag"] ?? ""] = body;
    else delete tags[req.params["tag"] ?? ""];
    core.users.setAccountData(userId, roomId, "m.tag", { tags }, core.bump());
    return ok({});
  };
  // CS API PUT /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag} (#put_matrixclientv3useruseridroomsroomidtagstag)
  router.add("PUT", `${C}/user/:userId/rooms/:roomId/tags/:tag`, (req) => editTag(req, true));
  // CS API DELETE /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag} (#delete_matrixclientv3useruseridroomsroomidtagstag)
  router.add("DELETE", `${C}/user/:userId/rooms/:roomId/tags/:tag`, (req) => editTag(req, false));
}
