import type { Requester } from "./auth.ts";
import type { Core } from "./core.ts";
import { forbidden, invalidParam, notJson } from "./errors.ts";
import type { StateMap, StoredEvent } from "./events.ts";
import { type Room, historyVisibility } from "./rooms.ts";
import { type JsonObject, type JsonValue, isJsonObject } from "./types.ts";

/** Stream tokens: `s<n>` sits after the event at stream position n (used by /sync and /messages). */
export const streamToken = (pos: number): string => `s${pos}`;

export function parseStreamToken(token: string | null | undefined, name: string): number | undefined {
  if (token === null || token === undefined || token === "") return undefined;
  const m = /^s(\d+)$/.exec(token);
  if (!m) throw invalidParam(`Invalid ${name} token: ${token}`);
  return Number(m[1]);
}

/** How far into a room's history a user may read (Synapse's `check_user_in_room_or_world_readable`). */
export interface Access {
  /** Events after this stream position are not served (the user's leave). */
  maxPos: number;
  isPeeking: boolean;
  /** The state the user may read: current, or as it was when they left. */
  state: StateMap;
}

export function roomAccess(core: Core, roomId: string, userId: string): { room: Room; access: Access } {
  const room = core.rooms.get(roomId);
  const denied = forbidden(`User ${userId} not in room ${roomId}, and room previews are disabled`);
  if (!room) throw denied;
  const member = room.memberEvent(userId);
  const membership = room.membership(userId);
  if (membership === "join") return { room, access: { maxPos: Infinity, isPeeking: false, state: room.state } };
  if ((membership === "leave" || membership === "ban") && member) {
    // A user who never joined (rejected invite, was banned before joining) only sees their membership.
    return { room, access: { maxPos: member.pos, isPeeking: false, state: member.stateAfter } };
  }
  if (historyVisibility(room.state) === "world_readable") {
    return { room, access: { maxPos: Infinity, isPeeking: true, state: room.state } };
  }
  throw denied;
}

/** The parts of a RoomEventFilter this server honours (CS API §"Filtering"). */
export interface EventFilter {
  limit?: number;
  types?: string[];
  notTypes?: string[];
  senders?: string[];
  notSenders?: string[];
  lazyLoadMembers?: boolean;
}

function stringList(value: JsonValue | undefined): string[] | undefined {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : undefined;
}

export function parseEventFilter(value: JsonValue | undefined): EventFilter {
  if (!isJsonObject(value)) return {};
  return {
    limit: typeof value["limit"] === "number" ? value["limit"] : undefined,
    types: stringList(value["types"]),
    notTypes: stringList(value["not_types"]),
    senders: stringList(value["senders"]),
    notSenders: stringList(value["not_senders"]),
    lazyLoadMembers: value["lazy_load_members"] === true,
  };
}

export function parseFilterParam(raw: string | null): JsonObject {
  if (raw === null || raw === "") return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw notJson("Invalid filter JSON");
  }
  return isJsonObject(parsed) ? parsed : {};
}

function typeMatches(pattern: string, type: string): boolean {
  return pattern.endsWith("*") ? type.startsWith(pattern.slice(0, -1)) : pattern === type;
}

export function filterAccepts(filter: EventFilter, ev: StoredEvent): boolean {
  if (filter.notTypes?.some((p) => typeMatches(p, ev.type))) return false;
  if (filter.types && !filter.types.some((p) => typeMatches(p, ev.type))) return false;
  if (filter.notSenders?.includes(ev.sender)) return false;
  if (filter.senders && !filter.senders.includes(ev.sender)) return false;
  return true;
}

export interface Page {
  events: StoredEvent[];
  /** Token after the last returned event, when more events lie beyond it. */
  end: string | undefined;
}

/** GET /messages semantics over a room's timeline. */
export function paginate(room: Room, requester: Requester, access: Access, dir: "b" | "f", from: number, to: number | undefined, limit: number, filter: EventFilter): Page {
  const candidates = dir === "b" ? room.events.filter((ev) => ev.pos <= from && ev.pos <= access.maxPos && (to === undefined || ev.pos > to)).reverse() : room.events.filter((ev) => ev.pos > from && ev.pos <= access.maxPos && (to === undefined || ev.pos <= to));
  const events: StoredEvent[] = [];
  let i = 0;
  for (; i < candidates.length && events.length < limit; i++) {
    const ev = candidates[i];
    if (ev && filterAccepts(filter, ev) && room.visibleTo(ev, requester.userId, access.isPeeking)) events.push(ev);
  }
  const last = events[events.length - 1];
  const more = i < candidates.length;
  const end = last === undefined || !more ? undefined : streamToken(dir === "b" ? last.pos - 1 : last.pos);
  return { events, end };
}

/** Membership events of the senders of some events, for lazy-loading filters. */
export function membersOf(state: StateMap, events: StoredEvent[]): StoredEvent[] {
  const senders = new Set(events.map((ev) => ev.sender));
  return [...state.values()].filter((ev) => ev.type === "m.room.member" && ev.stateKey !== undefined && senders.has(ev.stateKey));
}
