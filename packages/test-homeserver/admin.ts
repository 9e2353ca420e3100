import { type Requester, authenticateOptional, requireAdmin } from "./auth.ts";
import type { Core } from "./core.ts";
import { MatrixError, badJson, exclusive, notFound, requireString } from "./errors.ts";
import { type Req, type Router, ok } from "./http.ts";
import { checkNewLocalpart, parseIdentifier } from "./ids.ts";
import { propagateProfile, updateMembership } from "./room-actions.ts";
import { type JsonObject, isJsonObject } from "./types.ts";
import type { Account, Threepid } from "./users.ts";

const A = "/_synapse/admin";
export const SYNAPSE_VERSION = "1.120.0";

/** Synapse's `AdminHandler.get_user`. */
function userInfo(core: Core, account: Account): JsonObject {
  const info: JsonObject = {
    name: account.userId,
    displayname: account.displayname,
    avatar_url: account.avatarUrl,
    threepids: account.threepids.map((t) => ({ ...t })),
    is_guest: false,
    admin: account.admin,
    deactivated: account.deactivated,
    erased: account.erased,
    shadow_banned: false,
    creation_ts: Math.floor(account.createdTs / 1000),
    appservice_id: account.appserviceId ?? null,
    consent_server_notice_sent: null,
    consent_version: null,
    consent_ts: null,
    external_ids: account.externalIds.map((e) => ({ ...e })),
    user_type: account.userType,
    locked: account.locked,
    suspended: false,
    last_seen_ts: lastSeen(core, account.userId),
  };
  if (core.opts.legacyUserAdmin) delete info["external_ids"];
  return info;
}

/** Synapse's `UserRestServletV2._parse_external_ids`-style checks, then the store's uniqueness of (auth_provider, external_id). */
function parseExternalIds(core: Core, raw: unknown, userId: string): Array<{ auth_provider: string; external_id: string }> | undefined {
  if (raw === undefined || raw === null || core.opts.legacyUserAdmin) return undefined;
  if (!Array.isArray(raw)) throw new MatrixError(400, "M_UNKNOWN", "'external_ids' parameter is not of type list");
  const list = raw.map((e) => {
    if (!isJsonObject(e) || typeof e["auth_provider"] !== "string" || typeof e["external_id"] !== "string") {
      throw new MatrixError(400, "M_UNKNOWN", "external_ids must contain auth_provider and external_id");
    }
    return { auth_provider: e["auth_provider"], external_id: e["external_id"] };
  });
  for (const e of list) {
    for (const other of core.users.accounts.values()) {
      if (other.userId !== userId && other.externalIds.some((x) => x.auth_provider === e.auth_provider && x.external_id === e.external_id)) {
        throw new MatrixError(409, "M_UNKNOWN", "External id is already in use.");
      }
    }
  }
  return list;
}

function lastSeen(core: Core, userId: string): number | null {
  const devices = [...(core.users.devices.get(userId)?.values() ?? [])];
  return devices.length === 0 ? null : Math.max(...devices.map((d) => d.lastSeenTs));
}

function localUser(core: Core, req: Req, message: string): string {
  const userId = req.params["userId"] ?? "";
  const parsed = parseIdentifier(userId, "@");
  if (!parsed) throw new MatrixError(400, "M_INVALID_PARAM", `Invalid user_id: ${userId}`);
  if (parsed.domain !== core.serverName) throw new MatrixError(400, "M_UNKNOWN", message);
  return userId;
}

function canonicalThreepid(medium: string, address: string): string {
  return medium === "email" ? address.trim().toLowerCase() : address;
}

function setThreepids(core: Core, account: Account, list: Array<{ medium: string; address: string }>): void {
  const now = Date.now();
  const next: Threepid[] = [];
  for (const { medium, address } of list) {
    const canonical = canonicalThreepid(medium, address);
    if (next.some((t) => t.medium === medium && t.address === canonical)) continue;
    const existing = account.threepids.find((t) => t.medium === medium && t.address === canonical);
    next.push(existing ?? { medium, address: canonical, added_at: now, validated_at: now });
    // A third-party ID belongs to one account: Synapse's store upserts on (medium, address).
    for (const other of core.users.accounts.values()) {
      if (other !== account) other.threepids = other.threepids.filter((t) => !(t.medium === medium && t.address === canonical));
    }
  }
  account.threepids = next;
}

/** Synapse's `DeactivateAccountHandler.deactivate_account`. */
export function deactivateAccount(core: Core, requester: Requester, account: Account, erase: boolean): void {
  const asUser: Requester = { ...requester, userId: account.userId, appservice: undefined, isAdmin: account.admin };
  for (const room of core.rooms.roomsOf(account.userId)) {
    const membership = room.membership(account.userId);
    if (membership !== "join" && membership !== "invite" && membership !== "knock") continue;
    try {
      updateMembership(core, asUser, room, account.userId, "leave");
    } catch {
      // keep going: deactivation must not stop at one room
    }
  }
  core.deleteDevices(account.userId, [...(core.users.devices.get(account.userId)?.keys() ?? [])]);
  core.users.revokeAll(account.userId);
  account.password = undefined;
  account.threepids = [];
  account.deactivated = true;
  if (erase) {
    account.erased = true;
    account.displayname = null;
    account.avatarUrl = null;
  }
}

function optionalBool(body: JsonObject, key: string, message: string, fallback: boolean): boolean {
  const value = body[key] ?? fallback;
  if (typeof value !== "boolean") throw new MatrixError(400, key === "admin" ? "M_BAD_JSON" : "M_UNKNOWN", message);
  return value;
}

export function adminRoutes(router: Router, core: Core): void {
  // Synapse Admin API "Server Version": GET /_synapse/admin/v1/server_version
  router.add("GET", `${A}/v1/server_version`, (req) => {
    authenticateOptional(core, req);
    return ok({ server_version: SYNAPSE_VERSION });
  });

  // Synapse Admin API "Query User Account": GET /_synapse/admin/v2/users/<user_id>
  router.add("GET", `${A}/v2/users/:userId`, (req) => {
    requireAdmin(core, req);
    const userId = localUser(core, req, "Can only look up local users");
    const account = core.users.get(userId);
    if (!account) throw notFound("User not found");
    return ok(userInfo(core, account));
  });

  // Synapse Admin API "List Accounts": GET /_synapse/admin/v2/users
  router.add("GET", `${A}/v2/users`, (req) => {
    requireAdmin(core, req);
    const from = req.queryInt("from", 0);
    const limit = req.queryInt("limit", 100);
    const name = req.query.get("name")?.toLowerCase();
    const showDeactivated = req.query.get("deactivated") === "true";
    const all = [...core.users.accounts.values()]
      .filter((a) => showDeactivated || !a.deactivated)
      .filter((a) => !name || a.userId.toLowerCase().includes(name) || (a.displayname ?? "").toLowerCase().includes(name))
      .sort((a, b) => a.userId.localeCompare(b.userId));
    const page = all.slice(from, from + limit);
    const body: JsonObject = { users: page.map((a) => userInfo(core, a)), total: all.length };
    if (from + limit < all.length) body["next_token"] = String(from + limit);
    return ok(body);
  });

  // Synapse Admin API "Create or modify account": PUT /_synapse/admin/v2/users/<user_id>
  router.add("PUT", `${A}/v2/users/:userId`, async (req) => {
    const requester = requireAdmin(core, req);
    const body = await req.json();
    const userId = localUser(core, req, "This endpoint can only be used with local users");
    const threepidsRaw = body["threepids"];
    let threepids: Array<{ medium: string; address: string }> | undefined;
    if (threepidsRaw !== undefined && threepidsRaw !== null) {
      if (!Array.isArray(threepidsRaw)) throw badJson("threepids must be a list");
      threepids = threepidsRaw.map((t) => {
        if (!isJsonObject(t)) throw badJson("threepids must be objects");
        return { medium: requireString(t, "medium"), address: requireString(t, "address") };
      });
    }
    const admin = optionalBool(body, "admin", "Param 'admin' must be a boolean, if given", false);
    const password = body["password"];
    if (password !== undefined && password !== null && (typeof password !== "string" || password.length > 512)) {
      throw new MatrixError(400, "M_UNKNOWN", "Invalid password");
    }
    const logoutDevices = optionalBool(body, "logout_devices", "'logout_devices' parameter is not of type boolean", true);
    const deactivate = optionalBool(body, "deactivated", "'deactivated' parameter is not of type boolean", false);
    const lock = optionalBool(body, "locked", "'locked' parameter is not of type boolean", false);
    if (deactivate && lock) throw new MatrixError(400, "M_UNKNOWN", "An user can't be deactivated and locked");
    for (const key of ["displayname", "avatar_url"]) {
      if (body[key] !== undefined && body[key] !== null && typeof body[key] !== "string") {
        throw new MatrixError(400, "M_INVALID_PARAM", `'${key}' must be a string`);
      }
    }
    const account = core.users.get(userId);
    // Synapse records no auth provider check: "no error is raised if the provided value is not in the homeserver configuration".
    const externalIds = parseExternalIds(core, body["external_ids"], userId);

    if (!account) {
      const localpart = userId.slice(1, userId.indexOf(":"));
      checkNewLocalpart(localpart);
      if (core.appservices.exclusiveUserOwner(userId)) throw exclusive("This user ID is reserved by an application service.");
      if (core.users.findCaseInsensitive(userId)) throw new MatrixError(400, "M_USER_IN_USE", "User ID already taken.");
      const displayname = typeof body["displayname"] === "string" ? body["displayname"] : localpart;
      const created = core.users.create(userId, {
        password: typeof password === "string" ? password : undefined,
        admin,
        displayname,
        avatarUrl: typeof body["avatar_url"] === "string" ? body["avatar_url"] : null,
        userType: typeof body["user_type"] === "string" ? body["user_type"] : null,
      });
      if (threepids) setThreepids(core, created, threepids);
      if (externalIds) created.externalIds = externalIds;
      return ok(userInfo(core, created), 201);
    }

    let profileChanged = false;
    if ("displayname" in body) {
      const name = typeof body["displayname"] === "string" ? body["displayname"].trim() : "";
      account.displayname = name === "" ? null : name;
      profileChanged = true;
    }
    if (threepids) setThreepids(core, account, threepids);
    if (externalIds) account.externalIds = externalIds;
    if ("avatar_url" in body) {
      account.avatarUrl = typeof body["avatar_url"] === "string" && body["avatar_url"] !== "" ? body["avatar_url"] : null;
      profileChanged = true;
    }
    if ("admin" in body && admin !== account.admin) {
      if (userId === requester.userId && !admin) throw new MatrixError(400, "M_UNKNOWN", "You may not demote yourself.");
      account.admin = admin;
    }
    if (typeof password === "string") {
      account.password = password;
      if (logoutDevices) core.users.revokeAll(userId, userId === requester.userId ? requester.accessToken : undefined);
    }
    if ("deactivated" in body) {
      if (deactivate && !account.deactivated) deactivateAccount(core, requester, account, false);
      else if (!deactivate && account.deactivated) account.deactivated = false;
    }
    if ("locked" in body) account.locked = lock;
    if ("user_type" in body) account.userType = typeof body["user_type"] === "string" ? body["user_type"] : null;
    if (profileChanged && !account.deactivated) propagateProfile(core, requester, userId);
    return ok(userInfo(core, account));
  });

  // Synapse Admin API "Check username availability": GET /_synapse/admin/v1/username_available?username=<localpart>
  // (Synapse's RegistrationHandler.check_username: M_INVALID_USERNAME, M_USER_IN_USE, M_EXCLUSIVE; all 400).
  if (!core.opts.legacyUserAdmin) {
    router.add("GET", `${A}/v1/username_available`, (req) => {
      requireAdmin(core, req);
      const localpart = req.query.get("username");
      if (localpart === null) throw new MatrixError(400, "M_MISSING_PARAM", "Missing string query parameter 'username'");
      checkNewLocalpart(localpart);
      const userId = `@${localpart}:${core.serverName}`;
      if (core.appservices.exclusiveUserOwner(userId)) throw new MatrixError(400, "M_EXCLUSIVE", "This user ID is reserved by an application service.");
      if (core.users.findCaseInsensitive(userId)) throw new MatrixError(400, "M_USER_IN_USE", "User ID already taken.");
      return ok({ available: true });
    });
  }

  // Synapse Admin API "Deactivate Account": POST /_synapse/admin/v1/deactivate/<user_id>
  router.add("POST", `${A}/v1/deactivate/:userId`, async (req) => {
    const requester = requireAdmin(core, req);
    const body = await req.json({ allowEmpty: true });
    const userId = localUser(core, req, "Can only deactivate local users");
    const erase = body["erase"] ?? false;
    if (typeof erase !== "boolean") throw badJson("Param 'erase' must be a boolean, if given");
    const account = core.users.get(userId);
    if (!account) throw notFound("User not found");
    deactivateAccount(core, requester, account, erase);
    return ok({ id_server_unbind_result: "success" });
  });

  // Synapse Admin API "Reset password": POST /_synapse/admin/v1/reset_password/<user_id>
  router.add("POST", `${A}/v1/reset_password/:userId`, async (req) => {
    const requester = requireAdmin(core, req);
    const body = await req.json();
    const userId = localUser(core, req, "Can only reset passwords of local users");
    const password = requireString(body, "new_password");
    const logoutDevices = optionalBool(body, "logout_devices", "'logout_devices' parameter is not of type boolean", true);
    const account = core.users.get(userId);
    if (!account) throw notFound("User not found");
    account.password = password;
    if (logoutDevices) core.users.revokeAll(userId, userId === requester.userId ? requester.accessToken : undefined);
    return ok({});
  });

  const quarantine = (value: boolean) => (req: Req) => {
    requireAdmin(core, req);
    const item = core.media.get(req.params["serverName"] ?? "", req.params["mediaId"] ?? "");
    if (item) item.quarantined = value;
    return ok({});
  };
  // Synapse Admin API "Quarantining media by ID": POST /_synapse/admin/v1/media/quarantine/<server_name>/<media_id>
  router.add("POST", `${A}/v1/media/quarantine/:serverName/:mediaId`, quarantine(true));
  // Synapse Admin API "Remove media from quarantine by ID": POST /_synapse/admin/v1/media/unquarantine/<server_name>/<media_id>
  router.add("POST", `${A}/v1/media/unquarantine/:serverName/:mediaId`, quarantine(false));
}
