import { type Requester, deviceKey } from "./auth.ts";
import type { Core } from "./core.ts";
import { MatrixError, badJson, exclusive, forbidden, invalidParam, notFound, tooLarge } from "./errors.ts";
import { type DraftEvent, checkEventAuth } from "./event-auth.ts";
import { DEFAULT_ROOM_VERSION, type RoomVersion, SUPPORTED_ROOM_VERSIONS, type StoredEvent, effectiveContent, stateMapKey } from "./events.ts";
import { isUserId, newRoomId, parseIdentifier } from "./ids.ts";
import { Room } from "./rooms.ts";
import { type JsonObject, type JsonValue, canonicalJson, isJsonObject } from "./types.ts";

/** Synapse's MAX_PDU_SIZE. */
const MAX_EVENT_BYTES = 65536;
const MAX_DISPLAYNAME_LEN = 256;
const MAX_AVATAR_URL_LEN = 1000;

export interface SendOptions {
  txnId?: string;
  /** Appservices may set origin_server_ts with `?ts=` (AS API §"Timestamp massaging"). */
  ts?: number;
}

export function requireRoom(core: Core, roomId: string, userId: string): Room {
  const room = core.rooms.get(roomId);
  if (!room) throw forbidden(`User ${userId} not in room ${roomId}`);
  return room;
}

/**
 * Authorises and persists one event. A state event identical to the current one (same sender, same
 * content) is not sent again: its existing ID is returned (Synapse's `deduplicate_state_event`).
 */
export function sendEvent(core: Core, requester: Requester, room: Room, draft: DraftEvent, opts: SendOptions = {}): StoredEvent {
  if (draft.type.length > 255) throw tooLarge("'type' too large");
  if (draft.stateKey !== undefined && draft.stateKey.length > 255) throw tooLarge("'state_key' too large");
  const size = Buffer.byteLength(JSON.stringify({ type: draft.type, content: draft.content, sender: draft.sender, room_id: room.roomId, state_key: draft.stateKey }));
  // Leave room for the fields a real PDU carries (hashes, signatures, auth and prev events).
  if (size + 512 > MAX_EVENT_BYTES) throw tooLarge("event too large");
  if (draft.stateKey !== undefined) {
    const current = room.state.get(stateMapKey(draft.type, draft.stateKey));
    if (current && current.sender === draft.sender && canonicalJson(effectiveContent(current)) === canonicalJson(draft.content)) {
      return current;
    }
  }
  checkEventAuth(draft, room.state, room.roomId, room.version, core.rooms.findEvent);
  const txn = opts.txnId === undefined ? undefined : { txnId: opts.txnId, device: deviceKey(requester) };
  return core.persist(room, draft, txn, opts.ts);
}

export type MembershipAction = "invite" | "join" | "leave" | "kick" | "ban" | "unban" | "knock";

/** Synapse's `RoomMemberHandler.update_membership` for a local room. */
export function updateMembership(core: Core, requester: Requester, room: Room, target: string, action: MembershipAction, opts: { reason?: string; content?: JsonObject; txnId?: string } = {}): StoredEvent {
  if (!isUserId(target)) throw invalidParam(`Invalid user_id: ${target}`);
  const effective = action === "kick" || action === "unban" ? "leave" : action;
  const content: JsonObject = { ...(opts.content ?? {}) };
  delete content["join_authorised_via_users_server"];
  if (typeof content["displayname"] === "string" && content["displayname"].length > MAX_DISPLAYNAME_LEN) {
    throw badJson(`Displayname is too long (max ${MAX_DISPLAYNAME_LEN})`);
  }
  if (typeof content["avatar_url"] === "string" && content["avatar_url"].length > MAX_AVATAR_URL_LEN) {
    throw badJson(`Avatar URL is too long (max ${MAX_AVATAR_URL_LEN})`);
  }
  if (opts.reason !== undefined) content["reason"] = opts.reason;
  const old = room.membership(target);
  if (old !== undefined) {
    if (action === "unban" && old !== "ban") {
      throw new MatrixError(403, "M_BAD_STATE", `Cannot unban user who was not banned (membership=${old})`);
    }
    if (old === "ban" && action !== "ban" && action !== "unban" && action !== "leave") {
      throw new MatrixError(403, "M_BAD_STATE", `Cannot ${action} user who was banned`);
    }
    if (action === "kick" && (old === "ban" || old === "leave")) throw forbidden("The target user is not in the room");
  } else if (action === "kick") {
    throw forbidden("The target user is not in the room");
  }
  content["membership"] = effective;
  if (effective === "join" || effective === "invite" || effective === "knock") {
    // Synapse's event creation handler adds the target's global profile when the content lacks it.
    const profile = core.users.get(target);
    if (!("displayname" in content) && profile?.displayname) content["displayname"] = profile.displayname;
    if (!("avatar_url" in content) && profile?.avatarUrl) content["avatar_url"] = profile.avatarUrl;
  }
  return sendEvent(core, requester, room, { type: "m.room.member", sender: requester.userId, stateKey: target, content }, { txnId: opts.txnId });
}

/** POST /join/{roomIdOrAlias}: aliases are resolved locally only. */
export function resolveRoom(core: Core, roomIdOrAlias: string): Room {
  if (roomIdOrAlias.startsWith("#")) {
    const entry = core.rooms.aliases.get(roomIdOrAlias);
    if (!entry) throw notFound(`Room alias ${roomIdOrAlias} not found`);
    const room = core.rooms.get(entry.roomId);
    if (!room) throw notFound(`Room alias ${roomIdOrAlias} not found`);
    return room;
  }
  if (!parseIdentifier(roomIdOrAlias, "!")) throw invalidParam(`${roomIdOrAlias} was not legal room ID or room alias`);
  const room = core.rooms.get(roomIdOrAlias);
  if (!room) throw notFound("No known servers");
  return room;
}

/** Whether a requester may point an alias at a room (Synapse's DirectoryHandler.create_association). */
export function checkAliasCreation(core: Core, requester: Requester, alias: string): void {
  const parsed = parseIdentifier(alias, "#");
  if (!parsed) throw invalidParam(`Invalid room alias: ${alias}`);
  if (parsed.domain !== core.serverName) throw invalidParam("Room alias must be local");
  if (requester.appservice) {
    if (!requester.appservice.isAliasInNamespace(alias)) {
      throw exclusive("This application service has not reserved this kind of alias.");
    }
    return;
  }
  for (const as of core.appservices.all()) {
    if (!as.isAliasInNamespace(alias)) continue;
    if (requester.userId === as.senderId) return;
    if (as.isExclusiveAlias(alias)) throw exclusive("This alias is reserved by an application service.");
  }
}

const PRESETS: Record<string, { joinRule: string; history: string; invitees100: boolean; guestCanJoin: boolean; plOverride: JsonObject }> = {
  private_chat: { joinRule: "invite", history: "shared", invitees100: false, guestCanJoin: true, plOverride: { invite: 0 } },
  trusted_private_chat: { joinRule: "invite", history: "shared", invitees100: true, guestCanJoin: true, plOverride: { invite: 0 } },
  public_chat: { joinRule: "public", history: "shared", invitees100: false, guestCanJoin: false, plOverride: {} },
};

function defaultPowerLevels(creator: string): JsonObject {
  return {
    users: { [creator]: 100 },
    users_default: 0,
    events: {
      "m.room.name": 50,
      "m.room.power_levels": 100,
      "m.room.history_visibility": 100,
      "m.room.canonical_alias": 50,
      "m.room.avatar": 50,
      "m.room.tombstone": 100,
      "m.room.server_acl": 100,
      "m.room.encryption": 100,
    },
    events_default: 0,
    state_default: 50,
    ban: 50,
    kick: 50,
    redact: 50,
    invite: 50,
    historical: 100,
  };
}

interface InitialState {
  type: string;
  stateKey: string;
  content: JsonObject;
}

/** CS API §"POST /_matrix/client/v3/createRoom", in the order and with the defaults of Synapse's RoomCreationHandler. */
export function createRoom(core: Core, requester: Requester, body: JsonObject): { room_id: string; room_alias?: string } {
  const creator = requester.userId;
  const versionRaw = body["room_version"] ?? DEFAULT_ROOM_VERSION;
  if (typeof versionRaw !== "string") throw new MatrixError(400, "M_BAD_JSON", "room_version must be a string");
  if (!SUPPORTED_ROOM_VERSIONS.includes(versionRaw as RoomVersion)) {
    throw new MatrixError(400, "M_UNSUPPORTED_ROOM_VERSION", "Your homeserver does not support this room version");
  }
  const version = versionRaw as RoomVersion;
  const visibility = body["visibility"] ?? "private";
  if (visibility !== "public" && visibility !== "private") throw invalidParam("'visibility' must be 'public' or 'private'");

  let alias: string | undefined;
  const aliasName = body["room_alias_name"];
  if (aliasName !== undefined) {
    if (typeof aliasName !== "string") throw badJson("room_alias_name must be a string");
    if (/\s/.test(aliasName)) throw new MatrixError(400, "M_UNKNOWN", "Invalid characters in room alias");
    if (aliasName.includes(":")) {
      throw new MatrixError(400, "M_UNKNOWN", "':' is not permitted in the room alias name. Please note this expects a local part — 'wombat', not '#wombat:example.com'.");
    }
    alias = `#${aliasName}:${core.serverName}`;
    if (core.rooms.aliases.has(alias)) throw new MatrixError(400, "M_ROOM_IN_USE", "Room alias already taken");
    checkAliasCreation(core, requester, alias);
  }

  const inviteRaw = body["invite"] ?? [];
  if (!Array.isArray(inviteRaw)) throw badJson("invite must be a list of user IDs");
  const invites = inviteRaw.map((i) => {
    if (typeof i !== "string" || !isUserId(i)) throw new MatrixError(400, "M_UNKNOWN", `Invalid user_id: ${String(i)}`);
    return i;
  });

  const plOverride = body["power_level_content_override"];
  if (plOverride !== undefined && !isJsonObject(plOverride)) throw badJson("power_level_content_override must be an object");
  if (plOverride && isJsonObject(plOverride["users"]) && !(creator in plOverride["users"])) {
    throw new MatrixError(400, "M_UNKNOWN", `Not a valid power_level_content_override: 'users' did not contain ${creator}`);
  }

  const presetName = body["preset"] ?? (visibility === "private" ? "private_chat" : "public_chat");
  const preset = typeof presetName === "string" ? PRESETS[presetName] : undefined;
  if (!preset) throw badJson(`'${String(presetName)}' is not a valid preset`);

  const initialRaw = body["initial_state"] ?? [];
  if (!Array.isArray(initialRaw)) throw badJson("initial_state must be a list");
  const initial = new Map<string, InitialState>();
  for (const item of initialRaw) {
    if (!isJsonObject(item) || typeof item["type"] !== "string" || !isJsonObject(item["content"])) {
      throw badJson("initial_state events need a string 'type' and an object 'content'");
    }
    const stateKey = item["state_key"] ?? "";
    if (typeof stateKey !== "string") throw badJson("state_key must be a string");
    if (item["type"] === "m.room.member") throw badJson("initial_state may not contain m.room.member events");
    initial.set(stateMapKey(item["type"], stateKey), { type: item["type"], stateKey, content: item["content"] });
  }
  const creationContent = body["creation_content"] ?? {};
  if (!isJsonObject(creationContent)) throw badJson("creation_content must be an object");
  for (const key of ["name", "topic"]) {
    if (body[key] !== undefined && typeof body[key] !== "string") throw badJson(`${key} must be a string`);
  }

  const roomId = newRoomId(core.serverName);
  const room = new Room(roomId, version);
  room.directoryVisibility = visibility;
  core.rooms.add(room);
  if (alias) core.rooms.aliases.set(alias, { roomId, creator });

  const send = (type: string, content: JsonObject, stateKey = ""): void => {
    sendEvent(core, requester, room, { type, sender: creator, stateKey, content });
  };
  const create: JsonObject = { ...creationContent, room_version: version };
  if (version === "10") create["creator"] = creator;
  send("m.room.create", create);
  updateMembership(core, requester, room, creator, "join");

  const initialPl = initial.get(stateMapKey("m.room.power_levels", ""));
  initial.delete(stateMapKey("m.room.power_levels", ""));
  if (initialPl) {
    send("m.room.power_levels", initialPl.content);
  } else {
    const pl = defaultPowerLevels(creator);
    if (preset.invitees100) for (const invitee of invites) (pl["users"] as JsonObject)[invitee] = 100;
    Object.assign(pl, preset.plOverride, plOverride ?? {});
    send("m.room.power_levels", pl);
  }
  if (alias && !initial.has(stateMapKey("m.room.canonical_alias", ""))) send("m.room.canonical_alias", { alias });
  if (!initial.has(stateMapKey("m.room.join_rules", ""))) send("m.room.join_rules", { join_rule: preset.joinRule });
  if (!initial.has(stateMapKey("m.room.history_visibility", ""))) send("m.room.history_visibility", { history_visibility: preset.history });
  if (preset.guestCanJoin && !initial.has(stateMapKey("m.room.guest_access", ""))) send("m.room.guest_access", { guest_access: "can_join" });
  for (const item of initial.values()) send(item.type, item.content, item.stateKey);
  if (typeof body["name"] === "string") send("m.room.name", { name: body["name"] });
  if (typeof body["topic"] === "string") send("m.room.topic", { topic: body["topic"] });
  const inviteContent: JsonObject = body["is_direct"] === true ? { is_direct: true } : {};
  for (const invitee of invites) updateMembership(core, requester, room, invitee, "invite", { content: inviteContent });

  return alias ? { room_id: roomId, room_alias: alias } : { room_id: roomId };
}

/** PUT /state: membership goes through update_membership; canonical aliases must point at the room. */
export function setState(core: Core, requester: Requester, room: Room, type: string, stateKey: string, content: JsonObject): StoredEvent {
  if (type === "m.room.member") {
    const membership = content["membership"];
    if (typeof membership !== "string" || !["invite", "join", "leave", "ban", "knock"].includes(membership)) {
      throw badJson("Invalid membership key");
    }
    return updateMembership(core, requester, room, stateKey, membership as MembershipAction, { content });
  }
  if (type === "m.room.canonical_alias" && stateKey === "") {
    const aliases: JsonValue[] = [];
    if (content["alias"] !== undefined && content["alias"] !== null) aliases.push(content["alias"]);
    const alt = content["alt_aliases"];
    if (alt !== undefined) {
      if (!Array.isArray(alt)) throw badJson("alt_aliases must be a list");
      aliases.push(...alt);
    }
    for (const alias of aliases) {
      if (typeof alias !== "string" || !parseIdentifier(alias, "#")) throw invalidParam(`Invalid alias: ${String(alias)}`);
      if (core.rooms.aliases.get(alias)?.roomId !== room.roomId) {
        throw new MatrixError(400, "M_BAD_ALIAS", `Room alias ${alias} does not point to the room`);
      }
    }
  }
  return sendEvent(core, requester, room, { type, sender: requester.userId, stateKey, content });
}

/** PUT /redact: the redaction algorithm itself runs when the event is served (events.ts). */
export function redact(core: Core, requester: Requester, room: Room, eventId: string, reason: string | undefined, txnId: string): StoredEvent {
  const target = core.rooms.findEvent(eventId);
  if (target && target.roomId !== room.roomId) throw new MatrixError(400, "M_UNKNOWN", "Cannot redact event from a different room");
  if (target?.type === "m.room.create") throw forbidden("Redacting create events is not permitted");
  const content: JsonObject = {};
  if (reason !== undefined) content["reason"] = reason;
  if (room.version === "11") content["redacts"] = eventId;
  return sendEvent(core, requester, room, { type: "m.room.redaction", sender: requester.userId, content, redacts: eventId }, { txnId });
}

/** A profile change is reflected in a new membership event in every joined room (Synapse's `_update_join_states`). */
export function propagateProfile(core: Core, requester: Requester, userId: string): void {
  for (const room of core.rooms.roomsOf(userId)) {
    if (room.membership(userId) !== "join") continue;
    const current = room.content("m.room.member", userId) ?? {};
    const content: JsonObject = { ...current };
    delete content["displayname"];
    delete content["avatar_url"];
    delete content["reason"];
    try {
      updateMembership(core, { ...requester, userId }, room, userId, "join", { content });
    } catch {
      // as Synapse: a room where the update is refused keeps the old profile
    }
  }
}
