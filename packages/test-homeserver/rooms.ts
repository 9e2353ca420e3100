import { type DraftEvent, membershipOf, roomCreator, stateContent } from "./event-auth.ts";
import { type RoomVersion, type StateMap, type StoredEvent, stateMapKey } from "./events.ts";
import { newEventId } from "./ids.ts";
import type { JsonObject } from "./types.ts";

export interface Receipt {
  pos: number;
  eventId: string;
  receiptType: string;
  userId: string;
  ts: number;
  threadId: string | undefined;
}

const VISIBILITY_PRIORITY = ["world_readable", "shared", "invited", "joined"];
const MEMBERSHIP_PRIORITY = ["join", "invite", "knock", "leave", "ban"];

export class Room {
  readonly roomId: string;
  readonly version: RoomVersion;
  readonly events: StoredEvent[] = [];
  state: StateMap = new Map();
  /** user → expiry (ms since epoch) */
  readonly typing = new Map<string, number>();
  typingPos = 0;
  readonly receipts: Receipt[] = [];
  directoryVisibility: "public" | "private" = "private";
  readonly forgottenBy = new Set<string>();

  constructor(roomId: string, version: RoomVersion) {
    this.roomId = roomId;
    this.version = version;
  }

  stateEvent(type: string, stateKey = ""): StoredEvent | undefined {
    return this.state.get(stateMapKey(type, stateKey));
  }

  content(type: string, stateKey = ""): JsonObject | undefined {
    return stateContent(this.state, type, stateKey);
  }

  membership(userId: string): string | undefined {
    return membershipOf(this.state, userId);
  }

  memberEvent(userId: string): StoredEvent | undefined {
    return this.stateEvent("m.room.member", userId);
  }

  members(membership?: string): string[] {
    const out: string[] = [];
    for (const ev of this.state.values()) {
      if (ev.type !== "m.room.member" || ev.stateKey === undefined) continue;
      if (membership === undefined || membershipOf(this.state, ev.stateKey) === membership) out.push(ev.stateKey);
    }
    return out;
  }

  get creator(): string | undefined {
    return roomCreator(this.state, this.version);
  }

  /** Appends an already-authorised event at the end of the room's timeline. */
  append(draft: DraftEvent, pos: number, txn: StoredEvent["txn"], findEvent: (id: string) => StoredEvent | undefined, ts = Date.now()): StoredEvent {
    const stateBefore = this.state;
    const isState = draft.stateKey !== undefined;
    const stateAfter = isState ? new Map(stateBefore) : stateBefore;
    const key = isState ? stateMapKey(draft.type, draft.stateKey ?? "") : undefined;
    const ev: StoredEvent = {
      eventId: newEventId(),
      roomId: this.roomId,
      roomVersion: this.version,
      type: draft.type,
      sender: draft.sender,
      content: structuredClone(draft.content),
      stateKey: draft.stateKey,
      redacts: draft.redacts,
      originServerTs: ts,
      pos,
      stateBefore,
      stateAfter,
      replaces: key === undefined ? undefined : stateBefore.get(key),
      txn,
      redactedBy: undefined,
    };
    if (key !== undefined) (stateAfter as Map<string, StoredEvent>).set(key, ev);
    this.events.push(ev);
    this.state = stateAfter;
    if (ev.type === "m.room.redaction" && ev.redacts !== undefined) {
      const target = findEvent(ev.redacts);
      if (target && target.roomId === this.roomId && !target.redactedBy) target.redactedBy = ev;
    }
    return ev;
  }

  /**
   * Whether a user may see an event, as Synapse's `filter_events_for_client` decides it from the
   * history visibility and the user's membership at that event (CS API §"History visibility").
   */
  visibleTo(ev: StoredEvent, userId: string, isPeeking: boolean): boolean {
    let visibility = historyVisibility(ev.stateBefore);
    if (ev.type === "m.room.history_visibility" && ev.stateKey === "") {
      const next = typeof ev.content["history_visibility"] === "string" ? ev.content["history_visibility"] : "shared";
      if (VISIBILITY_PRIORITY.indexOf(next) >= 0 && VISIBILITY_PRIORITY.indexOf(next) < VISIBILITY_PRIORITY.indexOf(visibility)) {
        visibility = next;
      }
    }
    let membership = membershipOf(ev.stateBefore, userId) ?? "leave";
    if (ev.type === "m.room.member" && ev.stateKey === userId) {
      const raw = ev.content["membership"];
      const current = typeof raw === "string" && MEMBERSHIP_PRIORITY.includes(raw) ? raw : "leave";
      if (current === "leave" && (membership === "join" || membership === "invite")) return true;
      if (MEMBERSHIP_PRIORITY.indexOf(current) < MEMBERSHIP_PRIORITY.indexOf(membership)) membership = current;
    }
    if (membership === "join") return true;
    if (visibility === "joined") return false;
    if (visibility === "invited") return membership === "invite";
    if (visibility === "shared" && isPeeking) return false;
    return true;
  }

  typingUsers(now = Date.now()): string[] {
    return [...this.typing.entries()].filter(([, expiry]) => expiry > now).map(([userId]) => userId);
  }
}

export function historyVisibility(state: StateMap): string {
  const value = stateContent(state, "m.room.history_visibility")?.["history_visibility"];
  return typeof value === "string" && VISIBILITY_PRIORITY.includes(value) ? value : "shared";
}

export interface AliasEntry {
  roomId: string;
  creator: string;
}

export class RoomStore {
  readonly rooms = new Map<string, Room>();
  readonly aliases = new Map<string, AliasEntry>();
  private readonly events = new Map<string, StoredEvent>();

  get(roomId: string): Room | undefined {
    return this.rooms.get(roomId);
  }

  add(room: Room): void {
    this.rooms.set(room.roomId, room);
  }

  findEvent = (eventId: string): StoredEvent | undefined => this.events.get(eventId);

  indexEvent(ev: StoredEvent): void {
    this.events.set(ev.eventId, ev);
  }

  /** Rooms in which the user has any membership event. */
  roomsOf(userId: string): Room[] {
    return [...this.rooms.values()].filter((room) => room.memberEvent(userId) !== undefined);
  }

  aliasesOf(roomId: string): string[] {
    return [...this.aliases.entries()].filter(([, entry]) => entry.roomId === roomId).map(([alias]) => alias);
  }
}
