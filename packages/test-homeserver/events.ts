import { type JsonObject, type RoomEvent, type StrippedStateEvent, asJson } from "./types.ts";

export type RoomVersion = "10" | "11";
export const SUPPORTED_ROOM_VERSIONS: readonly RoomVersion[] = ["10", "11"];
export const DEFAULT_ROOM_VERSION: RoomVersion = "10";

export type StateMap = ReadonlyMap<string, StoredEvent>;

export const stateMapKey = (type: string, stateKey: string): string => `${type}\u0000${stateKey}`;

/** An event as the server keeps it: original content, ordering, and the room state around it. */
export interface StoredEvent {
  readonly eventId: string;
  readonly roomId: string;
  readonly roomVersion: RoomVersion;
  readonly type: string;
  readonly sender: string;
  readonly content: JsonObject;
  readonly stateKey: string | undefined;
  readonly redacts: string | undefined;
  readonly originServerTs: number;
  /** Position in the server-wide stream (sync tokens, pagination tokens). */
  readonly pos: number;
  readonly stateBefore: StateMap;
  readonly stateAfter: StateMap;
  /** The state event this one replaced, if any. */
  readonly replaces: StoredEvent | undefined;
  /** Which client transaction created it: sync echoes `unsigned.transaction_id` to that device. */
  readonly txn: { txnId: string; device: string } | undefined;
  redactedBy: StoredEvent | undefined;
}

/** Content keys that survive redaction (CS API §"Redactions", room versions 10 and 11). */
function keptContentKeys(type: string, version: RoomVersion): string[] | "all" {
  switch (type) {
    case "m.room.member":
      return version === "11" ? ["membership", "join_authorised_via_users_server", "third_party_invite"] : ["membership", "join_authorised_via_users_server"];
    case "m.room.create":
      return version === "11" ? "all" : ["creator"];
    case "m.room.join_rules":
      return ["join_rule", "allow"];
    case "m.room.power_levels": {
      const keys = ["ban", "events", "events_default", "kick", "redact", "state_default", "users", "users_default"];
      return version === "11" ? [...keys, "invite"] : keys;
    }
    case "m.room.history_visibility":
      return ["history_visibility"];
    case "m.room.redaction":
      return version === "11" ? ["redacts"] : [];
    default:
      return [];
  }
}

export function prunedContent(type: string, content: JsonObject, version: RoomVersion): JsonObject {
  const kept = keptContentKeys(type, version);
  if (kept === "all") return { ...content };
  const out: JsonObject = {};
  for (const key of kept) {
    const value = content[key];
    if (value === undefined) continue;
    if (key === "third_party_invite") {
      const signed = typeof value === "object" && value !== null && !Array.isArray(value) ? value["signed"] : undefined;
      if (signed !== undefined) out[key] = { signed };
      continue;
    }
    out[key] = value;
  }
  return out;
}

/** The content as clients see it now: pruned once the event has been redacted. */
export function effectiveContent(ev: StoredEvent): JsonObject {
  return ev.redactedBy ? prunedContent(ev.type, ev.content, ev.roomVersion) : ev.content;
}

export interface SerializeOptions {
  now?: number;
  /** The requesting device: events it sent carry `unsigned.transaction_id`. */
  device?: string;
  /** Extra unsigned fields, e.g. `invite_room_state` for appservices. */
  unsigned?: JsonObject;
}

/** The client event format (CS API §"Room Event Format"), as Synapse serialises it. */
export function toClientEvent(ev: StoredEvent, opts: SerializeOptions = {}): RoomEvent {
  const now = opts.now ?? Date.now();
  const out: RoomEvent = {
    type: ev.type,
    content: effectiveContent(ev),
    event_id: ev.eventId,
    sender: ev.sender,
    origin_server_ts: ev.originServerTs,
    room_id: ev.roomId,
  };
  if (ev.stateKey !== undefined) out.state_key = ev.stateKey;
  if (ev.redacts !== undefined) out.redacts = ev.redacts;
  const unsigned: JsonObject = { age: Math.max(0, now - ev.originServerTs) };
  if (ev.replaces) {
    unsigned["replaces_state"] = ev.replaces.eventId;
    if (!ev.redactedBy) {
      unsigned["prev_content"] = effectiveContent(ev.replaces);
      unsigned["prev_sender"] = ev.replaces.sender;
    }
  }
  if (ev.redactedBy) {
    unsigned["redacted_by"] = ev.redactedBy.eventId;
    const because = toClientEvent(ev.redactedBy, { now });
    unsigned["redacted_because"] = asJson(because);
  }
  if (ev.txn && opts.device !== undefined && ev.txn.device === opts.device) {
    unsigned["transaction_id"] = ev.txn.txnId;
  }
  Object.assign(unsigned, opts.unsigned ?? {});
  out.unsigned = unsigned;
  return out;
}

export function toStrippedState(ev: StoredEvent): StrippedStateEvent {
  return { type: ev.type, state_key: ev.stateKey ?? "", sender: ev.sender, content: effectiveContent(ev) };
}

/** Synapse's default `room_prejoin_state` event types. */
const PREJOIN_STATE_TYPES = ["m.room.create", "m.room.join_rules", "m.room.canonical_alias", "m.room.avatar", "m.room.encryption", "m.room.name", "m.room.topic"];

/** Stripped state shown to an invitee (CS API §"Stripped state"): prejoin types plus the inviter's membership. */
export function inviteRoomState(invite: StoredEvent): StrippedStateEvent[] {
  const out: StrippedStateEvent[] = [];
  for (const type of PREJOIN_STATE_TYPES) {
    const ev = invite.stateBefore.get(stateMapKey(type, ""));
    if (ev) out.push(toStrippedState(ev));
  }
  const inviter = invite.stateBefore.get(stateMapKey("m.room.member", invite.sender));
  if (inviter) out.push(toStrippedState(inviter));
  return out;
}
