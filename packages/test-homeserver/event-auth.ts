import { MatrixError, forbidden } from "./errors.ts";
import { type RoomVersion, type StateMap, type StoredEvent, effectiveContent, stateMapKey } from "./events.ts";
import { isUserId } from "./ids.ts";
import { isJsonObject, type JsonObject } from "./types.ts";

/** An event about to be sent, checked against the room's current state. */
export interface DraftEvent {
  type: string;
  sender: string;
  stateKey?: string;
  content: JsonObject;
  redacts?: string;
}

const MEMBERSHIPS = ["join", "invite", "leave", "ban", "knock"];

export function stateContent(state: StateMap, type: string, stateKey = ""): JsonObject | undefined {
  const ev = state.get(stateMapKey(type, stateKey));
  return ev ? effectiveContent(ev) : undefined;
}

export function membershipOf(state: StateMap, userId: string): string | undefined {
  const membership = stateContent(state, "m.room.member", userId)?.["membership"];
  return typeof membership === "string" ? membership : undefined;
}

export function roomCreator(state: StateMap, version: RoomVersion): string | undefined {
  const create = state.get(stateMapKey("m.room.create", ""));
  if (!create) return undefined;
  if (version === "11") return create.sender;
  const creator = create.content["creator"];
  return typeof creator === "string" ? creator : undefined;
}

function toInt(value: unknown): number | undefined {
  if (typeof value === "number" && Number.isInteger(value)) return value;
  if (typeof value === "string" && /^\s*[+-]?\d+\s*$/.test(value)) return Number(value);
  return undefined;
}

/** `get_named_level`: a top-level power level, or its default (CS API §"m.room.power_levels"). */
export function namedLevel(state: StateMap, name: string, fallback: number): number {
  const pl = stateContent(state, "m.room.power_levels");
  if (!pl) return fallback;
  return toInt(pl[name]) ?? fallback;
}

export function userLevel(state: StateMap, userId: string, version: RoomVersion): number {
  const pl = stateContent(state, "m.room.power_levels");
  if (!pl) return roomCreator(state, version) === userId ? 100 : 0;
  const users = isJsonObject(pl["users"]) ? pl["users"] : {};
  return toInt(users[userId]) ?? toInt(pl["users_default"]) ?? 0;
}

/** The level needed to send an event of a type (`events`, else `state_default` / `events_default`). */
export function sendLevel(state: StateMap, type: string, isState: boolean): number {
  const pl = stateContent(state, "m.room.power_levels");
  if (!pl) return 0;
  const events = isJsonObject(pl["events"]) ? pl["events"] : {};
  const specific = toInt(events[type]);
  if (specific !== undefined) return specific;
  return isState ? (toInt(pl["state_default"]) ?? 50) : (toInt(pl["events_default"]) ?? 0);
}

function assertJoined(state: StateMap, userId: string, roomId: string): void {
  if (membershipOf(state, userId) !== "join") throw forbidden(`User ${userId} not in room ${roomId}`);
}

/**
 * The authorization rules of room versions 10 and 11 (Room Versions §"Authorization rules"), with
 * Synapse's error texts (`synapse/event_auth.py`). Throws a MatrixError when the event is refused.
 */
export function checkEventAuth(draft: DraftEvent, state: StateMap, roomId: string, version: RoomVersion, findEvent: (eventId: string) => StoredEvent | undefined): void {
  if (draft.type === "m.room.create") {
    if (state.size > 0) throw forbidden("Create event has prev events");
    return;
  }
  if (draft.type === "m.room.member") {
    if (draft.stateKey === undefined) throw forbidden("Membership events must have a state key");
    checkMembership(draft, state, roomId, version);
    return;
  }
  assertJoined(state, draft.sender, roomId);
  if (draft.type === "m.room.third_party_invite") {
    if (userLevel(state, draft.sender, version) < namedLevel(state, "invite", 0)) {
      throw forbidden("You don't have permission to invite users");
    }
    return;
  }
  const required = sendLevel(state, draft.type, draft.stateKey !== undefined);
  const level = userLevel(state, draft.sender, version);
  if (level < required) {
    throw forbidden(`You don't have permission to post that to the room. user_level (${level}) < send_level (${required})`);
  }
  if (draft.stateKey !== undefined && draft.stateKey.startsWith("@") && draft.stateKey !== draft.sender) {
    throw forbidden("You are not allowed to set others state");
  }
  if (draft.type === "m.room.power_levels") checkPowerLevels(draft, state, version);
  if (draft.type === "m.room.redaction" && level < namedLevel(state, "redact", 50)) {
    const target = draft.redacts === undefined ? undefined : findEvent(draft.redacts);
    if (target && target.sender !== draft.sender) throw forbidden("You don't have permission to redact events");
  }
}

function checkMembership(draft: DraftEvent, state: StateMap, roomId: string, version: RoomVersion): void {
  const membership = draft.content["membership"];
  if (typeof membership !== "string" || !MEMBERSHIPS.includes(membership)) {
    throw new MatrixError(400, "M_BAD_JSON", "Invalid membership key");
  }
  const target = draft.stateKey ?? "";
  const creator = roomCreator(state, version);
  if (membership === "join" && state.size === 1 && creator === target && draft.sender === target) return;

  const caller = membershipOf(state, draft.sender);
  const targetMembership = membershipOf(state, target);
  const callerInRoom = caller === "join";
  const targetBanned = targetMembership === "ban";
  const joinRule = stateContent(state, "m.room.join_rules")?.["join_rule"] ?? "invite";
  const level = userLevel(state, draft.sender, version);
  const targetLevel = userLevel(state, target, version);
  const inviteLevel = namedLevel(state, "invite", 0);
  const banLevel = namedLevel(state, "ban", 50);

  if (membership !== "join" && membership !== "knock") {
    if ((caller === "invite" || caller === "knock") && membership === "leave" && target === draft.sender) return;
    if (!callerInRoom) throw forbidden(`${draft.sender} not in room ${roomId}.`);
  }
  switch (membership) {
    case "invite":
      if (targetBanned) throw forbidden(`${target} is banned from the room`);
      if (targetMembership === "join") throw forbidden(`${target} is already in the room.`);
      if (level < inviteLevel) throw forbidden("You don't have permission to invite users");
      return;
    case "join":
      if (draft.sender !== target) throw forbidden("Cannot force another user to join.");
      if (targetBanned) throw forbidden("You are banned from this room");
      if (joinRule === "public") return;
      if (joinRule === "invite" || joinRule === "knock" || joinRule === "restricted" || joinRule === "knock_restricted") {
        if (!callerInRoom && caller !== "invite") throw forbidden("You are not invited to this room.");
        return;
      }
      throw forbidden("You are not allowed to join this room");
    case "leave":
      if (targetBanned && level < banLevel) throw forbidden(`You cannot unban user ${target}.`);
      if (target !== draft.sender) {
        const kickLevel = namedLevel(state, "kick", 50);
        if (level < kickLevel || level <= targetLevel) throw forbidden(`You cannot kick user ${target}.`);
      }
      return;
    case "ban":
      if (level < banLevel) throw forbidden("You don't have permission to ban");
      if (level <= targetLevel) throw forbidden("You don't have permission to ban this user");
      return;
    case "knock":
      if (joinRule !== "knock" && joinRule !== "knock_restricted") throw forbidden("You don't have permission to knock");
      if (target !== draft.sender) throw forbidden("You cannot knock for other users");
      if (targetMembership === "join") throw forbidden("You cannot knock on a room you are already in");
      if (caller === "invite") throw forbidden("You are already invited to this room");
      if (targetBanned) throw forbidden("You are banned from this room");
      return;
  }
}

const INT_LEVEL_KEYS = ["users_default", "events_default", "state_default", "ban", "redact", "kick", "invite"];
const MAP_LEVEL_KEYS = ["events", "notifications", "users"];

function checkPowerLevels(draft: DraftEvent, state: StateMap, version: RoomVersion): void {
  const content = draft.content;
  const users = isJsonObject(content["users"]) ? content["users"] : {};
  for (const [userId, value] of Object.entries(users)) {
    if (!isUserId(userId)) throw new MatrixError(400, "M_UNKNOWN", `Not a valid user_id: ${userId}`);
    if (toInt(value) === undefined) throw new MatrixError(400, "M_UNKNOWN", `Not a valid power level: ${JSON.stringify(value)}`);
  }
  for (const key of INT_LEVEL_KEYS) {
    const value = content[key];
    if (value !== undefined && !(typeof value === "number" && Number.isInteger(value))) {
      throw new MatrixError(400, "M_UNKNOWN", `${JSON.stringify(value)} must be an integer.`);
    }
  }
  for (const key of MAP_LEVEL_KEYS) {
    const value = content[key];
    if (value === undefined) continue;
    if (!isJsonObject(value) || !Object.values(value).every((v) => typeof v === "number" && Number.isInteger(v))) {
      throw new MatrixError(400, "M_UNKNOWN", `${JSON.stringify(value)} must be a dict wherein all the values are integers.`);
    }
  }
  const current = stateContent(state, "m.room.power_levels");
  if (!current) return;
  const level = userLevel(state, draft.sender, version);
  const checks: Array<[string, string | undefined]> = INT_LEVEL_KEYS.map((key) => [key, undefined]);
  for (const dir of ["users", "events", "notifications"]) {
    const oldMap = isJsonObject(current[dir]) ? current[dir] : {};
    const newMap = isJsonObject(content[dir]) ? content[dir] : {};
    for (const key of new Set([...Object.keys(oldMap), ...Object.keys(newMap)])) checks.push([key, dir]);
  }
  for (const [key, dir] of checks) {
    const oldLoc = dir ? (isJsonObject(current[dir]) ? current[dir] : {}) : current;
    const newLoc = dir ? (isJsonObject(content[dir]) ? content[dir] : {}) : content;
    const oldLevel = key in oldLoc ? toInt(oldLoc[key]) : undefined;
    const newLevel = key in newLoc ? toInt(newLoc[key]) : undefined;
    if (oldLevel === newLevel) continue;
    if (dir === "users" && key !== draft.sender && oldLevel === level) {
      throw forbidden("You don't have permission to remove ops level equal to your own");
    }
    if ((oldLevel !== undefined && oldLevel > level) || (newLevel !== undefined && newLevel > level)) {
      throw forbidden("You don't have permission to add ops level greater than your own");
    }
  }
}
