// The shape of an organisation room, as plain functions: what to create, which power
// levels it must have, who must be invited or removed. No I/O here.
import type { Membership } from "../matrix/homeserver.ts";

export const ORGANISATION_STATE_EVENT = "de.kuvert.organisation";

export const POWER = { bot: 100, staff: 50, clerk: 0 } as const;

/** Events only Kuvert may send: they would open the room, encrypt it (no scanning then), or change who may do what. */
const lockedEvents = ["m.room.power_levels", "m.room.join_rules", "m.room.guest_access", "m.room.history_visibility", "m.room.encryption", "m.room.tombstone", "m.room.server_acl", "m.room.canonical_alias", ORGANISATION_STATE_EVENT];

export interface RoomPeople {
  botUserId: string;
  staff: string[];
  clerks: string[];
  archived: boolean;
}

export function roomAliasLocalpart(userPrefix: string, organisationId: string): string {
  return `${userPrefix}org_${organisationId}`;
}

/** Power levels for a new room (CS API §"m.room.power_levels"). */
export function initialPowerLevels(people: RoomPeople): Record<string, unknown> {
  return desiredPowerLevels(
    {
      users_default: POWER.clerk,
      events_default: 0,
      state_default: POWER.staff,
      ban: POWER.staff,
      kick: POWER.staff,
      redact: POWER.staff,
      invite: POWER.staff,
      notifications: { room: POWER.staff },
      events: {
        "m.room.name": POWER.staff,
        "m.room.topic": POWER.staff,
        "m.room.avatar": POWER.staff,
        "m.room.pinned_events": POWER.staff,
        "im.vector.modular.widgets": POWER.staff,
        "io.element.widgets.layout": POWER.staff,
        "m.reaction": 0,
        "m.room.redaction": 0,
      },
      users: {},
    },
    people,
    [],
  );
}

/**
 * The power levels the room must have, starting from its current ones: Kuvert 100, staff 50,
 * clerks at the default 0 (they may post messages and files), archived rooms read-only.
 * Entries of people Kuvert does not manage are kept; `formerlyManaged` are reset.
 */
export function desiredPowerLevels(current: Record<string, unknown>, people: RoomPeople, formerlyManaged: string[]): Record<string, unknown> {
  const users: Record<string, number> = { ...((current.users as Record<string, number> | undefined) ?? {}) };
  for (const userId of [...formerlyManaged, ...people.clerks]) delete users[userId];
  for (const userId of people.staff) users[userId] = POWER.staff;
  users[people.botUserId] = POWER.bot;
  const events: Record<string, number> = { ...((current.events as Record<string, number> | undefined) ?? {}) };
  for (const type of lockedEvents) events[type] = POWER.bot;
  return {
    ...current,
    users: sortKeys(users),
    users_default: POWER.clerk,
    events: sortKeys(events),
    events_default: people.archived ? POWER.bot : 0,
    invite: people.archived ? POWER.bot : POWER.staff,
  };
}

function sortKeys<T>(record: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

export function samePowerLevels(a: Record<string, unknown>, b: Record<string, unknown>): boolean {
  const canonical = (v: unknown): unknown =>
    v && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>)
            .sort(([x], [y]) => (x < y ? -1 : 1))
            .map(([k, w]) => [k, canonical(w)]),
        )
      : v;
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
}

export interface CreateRoomParams extends RoomPeople {
  organisationId: string;
  name: string;
  topic: string;
  aliasLocalpart: string;
  /** End-to-end encrypted from its creation (organisations.encryption). */
  encrypted?: boolean;
}

/** CS API §"m.room.encryption", with the spec's one room algorithm: the state that makes a room end-to-end encrypted. */
export const encryptionState = { type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } } as const;

/** The createRoom request (CS API §"POST /_matrix/client/v3/createRoom"). Invitations follow separately, one by one. */
export function createRoomRequest(p: CreateRoomParams): Record<string, unknown> {
  return {
    preset: "private_chat",
    visibility: "private",
    name: p.name,
    topic: p.topic,
    room_alias_name: p.aliasLocalpart,
    power_level_content_override: initialPowerLevels(p),
    initial_state: [
      { type: "m.room.join_rules", state_key: "", content: { join_rule: "invite" } },
      { type: "m.room.guest_access", state_key: "", content: { guest_access: "forbidden" } },
      { type: "m.room.history_visibility", state_key: "", content: { history_visibility: "shared" } },
      { type: ORGANISATION_STATE_EVENT, state_key: "", content: { organisation_id: p.organisationId } },
      ...(p.encrypted ? [encryptionState] : []),
    ],
  };
}

export interface MembershipPlan {
  invite: string[];
  kick: string[];
  /** Wanted in the room but banned there: only a person can lift a ban. */
  banned: string[];
}

/** Who must be invited and who removed, given the room's current memberships. */
export function membershipPlan(members: Map<string, Membership>, wanted: string[], removed: string[]): MembershipPlan {
  const want = new Set(wanted);
  const plan: MembershipPlan = { invite: [], kick: [], banned: [] };
  for (const userId of want) {
    const m = members.get(userId);
    if (m === "ban") plan.banned.push(userId);
    else if (m !== "join" && m !== "invite") plan.invite.push(userId);
  }
  for (const userId of new Set(removed)) {
    if (want.has(userId)) continue;
    const m = members.get(userId);
    if (m === "join" || m === "invite" || m === "knock") plan.kick.push(userId);
  }
  return plan;
}
