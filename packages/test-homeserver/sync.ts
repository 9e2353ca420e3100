import { type Requester, authenticate, deviceKey } from "./auth.ts";
import type { Core } from "./core.ts";
import { MatrixError, forbidden, invalidParam, notFound } from "./errors.ts";
import { type StoredEvent, inviteRoomState, toClientEvent } from "./events.ts";
import { type Router, ok } from "./http.ts";
import { defaultPushRules } from "./push-rules.ts";
import type { Room } from "./rooms.ts";
import { type EventFilter, filterAccepts, membersOf, parseEventFilter, parseStreamToken, streamToken } from "./timeline.ts";
import { deviceListChanges } from "./routes-keys.ts";
import { type JsonObject, type JsonValue, asJson, isJsonObject } from "./types.ts";

const C = "/_matrix/client/v3";

interface SyncFilter {
  timeline: EventFilter;
  timelineLimit: number;
  includeLeave: boolean;
  rooms: string[] | undefined;
  notRooms: string[];
}

function parseSyncFilter(json: JsonObject): SyncFilter {
  const room = isJsonObject(json["room"]) ? json["room"] : {};
  const timeline = parseEventFilter(room["timeline"]);
  const state = parseEventFilter(room["state"]);
  const list = (value: JsonValue | undefined): string[] | undefined => (Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : undefined);
  return {
    timeline: { ...timeline, lazyLoadMembers: state.lazyLoadMembers },
    timelineLimit: Math.max(0, Math.min(timeline.limit ?? 10, 1000)),
    includeLeave: room["include_leave"] === true,
    rooms: list(room["rooms"]),
    notRooms: list(room["not_rooms"]) ?? [],
  };
}

interface SyncContext {
  core: Core;
  requester: Requester;
  since: number | undefined;
  upto: number;
  filter: SyncFilter;
  fullState: boolean;
}

function serialize(ctx: SyncContext, ev: StoredEvent): JsonObject {
  return asJson(toClientEvent(ev, { device: deviceKey(ctx.requester) }));
}

/**
 * Timeline and state for a room section: the newest visible events in (since, until], state at
 * their start. A room joined since the last sync gets its newest visible events whatever `since`
 * says, as Synapse does (`since_token=None if newly_joined` in SyncHandler), so a new member sees
 * the history that history_visibility lets them see.
 */
function roomTimeline(ctx: SyncContext, room: Room, until: number, withState: boolean, newlyJoined = false): { timeline: JsonObject; state: JsonObject; count: number } {
  const userId = ctx.requester.userId;
  const since = newlyJoined ? undefined : ctx.since;
  const candidates = room.events.filter((ev) => (since === undefined || ev.pos > since) && ev.pos <= until && filterAccepts(ctx.filter.timeline, ev) && room.visibleTo(ev, userId, false));
  const events = ctx.filter.timelineLimit === 0 ? [] : candidates.slice(-ctx.filter.timelineLimit);
  const limited = candidates.length > events.length;
  const first = events[0];
  const stateAtStart = first ? first.stateBefore : (room.events.filter((ev) => ev.pos <= until).at(-1)?.stateAfter ?? room.state);
  let state: StoredEvent[] = [];
  if (withState || limited) {
    state = [...stateAtStart.values()];
    if (ctx.filter.timeline.lazyLoadMembers) {
      const members = new Set(membersOf(stateAtStart, events).map((ev) => ev.eventId));
      state = state.filter((ev) => ev.type !== "m.room.member" || members.has(ev.eventId) || ev.stateKey === userId);
    }
  }
  return {
    timeline: {
      events: events.map((ev) => serialize(ctx, ev)),
      limited,
      prev_batch: streamToken(first ? first.pos - 1 : until),
    },
    state: { events: state.map((ev) => serialize(ctx, ev)) },
    count: candidates.length,
  };
}

function receiptsContent(ctx: SyncContext, room: Room): JsonObject | undefined {
  const latest = new Map<string, (typeof room.receipts)[number]>();
  for (const receipt of room.receipts) {
    if (receipt.receiptType === "m.read.private" && receipt.userId !== ctx.requester.userId) continue;
    if (ctx.since !== undefined && receipt.pos <= ctx.since) continue;
    latest.set(`${receipt.userId}|${receipt.receiptType}|${receipt.threadId ?? ""}`, receipt);
  }
  if (latest.size === 0) return undefined;
  const content: Record<string, Record<string, JsonObject>> = {};
  for (const r of latest.values()) {
    const byType = (content[r.eventId] ??= {});
    const byUser = (byType[r.receiptType] ??= {});
    byUser[r.userId] = r.threadId === undefined ? { ts: r.ts } : { ts: r.ts, thread_id: r.threadId };
  }
  return content;
}

function joinedRoom(ctx: SyncContext, room: Room, member: StoredEvent): JsonObject | undefined {
  const newlyJoined = ctx.since === undefined || member.pos > ctx.since || ctx.fullState;
  const { timeline, state, count } = roomTimeline(ctx, room, ctx.upto, newlyJoined, ctx.since !== undefined && member.pos > ctx.since);
  const ephemeral: JsonObject[] = [];
  const typing = room.typingUsers();
  if ((ctx.since === undefined && typing.length > 0) || (ctx.since !== undefined && room.typingPos > ctx.since)) {
    ephemeral.push({ type: "m.typing", content: { user_ids: typing } });
  }
  const receipts = receiptsContent(ctx, room);
  if (receipts) ephemeral.push({ type: "m.receipt", content: receipts });
  const accountData = ctx.core.users.accountDataSince(ctx.requester.userId, room.roomId, ctx.since);
  if (!newlyJoined && count === 0 && ephemeral.length === 0 && accountData.length === 0) return undefined;
  const joined = room.members("join");
  const invited = room.members("invite");
  const heroes = [...joined, ...invited]
    .filter((u) => u !== ctx.requester.userId)
    .sort()
    .slice(0, 5);
  return {
    timeline,
    state,
    ephemeral: { events: ephemeral },
    account_data: { events: accountData },
    unread_notifications: { notification_count: 0, highlight_count: 0 },
    summary: { "m.heroes": heroes, "m.joined_member_count": joined.length, "m.invited_member_count": invited.length },
  };
}

/** CS API #get_matrixclientv3sync: one response, computed against the stream as it is now. */
function buildSync(ctx: SyncContext): { body: JsonObject; empty: boolean } {
  const { core, requester, since, filter } = ctx;
  const join: JsonObject = {};
  const invite: JsonObject = {};
  const leave: JsonObject = {};
  for (const room of core.rooms.roomsOf(requester.userId)) {
    if (filter.rooms && !filter.rooms.includes(room.roomId)) continue;
    if (filter.notRooms.includes(room.roomId)) continue;
    const member = room.memberEvent(requester.userId);
    if (!member || member.pos > ctx.upto) continue;
    const membership = member.content["membership"];
    const changed = since === undefined || member.pos > since;
    if (membership === "join") {
      const section = joinedRoom(ctx, room, member);
      if (section) join[room.roomId] = section;
    } else if (membership === "invite" || membership === "knock") {
      if (!changed) continue;
      const events = [...inviteRoomState(member).map(asJson), serialize(ctx, member)];
      if (membership === "invite") invite[room.roomId] = { invite_state: { events } };
    } else if (!room.forgottenBy.has(requester.userId) && (since === undefined ? filter.includeLeave : changed)) {
      const { timeline, state } = roomTimeline(ctx, room, member.pos, true);
      leave[room.roomId] = { timeline, state, account_data: { events: core.users.accountDataSince(requester.userId, room.roomId, since) } };
    }
  }
  const accountData = core.users.accountDataSince(requester.userId, "", since);
  if (since === undefined && !accountData.some((e) => e.type === "m.push_rules")) {
    accountData.push({ type: "m.push_rules", content: defaultPushRules(requester.userId) });
  }
  // CS API §"Extensions to sync" of end-to-end encryption: key counts of the requester's device
  // (always sent, as Synapse does; {} and [] for requests without a device), device lists on
  // incremental syncs, and the device's to-device messages (§"Send-to-Device messaging").
  const deviceId = requester.deviceId;
  const fallbackTypes = deviceId === undefined ? [] : core.keys.unusedFallbackKeyTypes(requester.userId, deviceId);
  const body: JsonObject = {
    next_batch: streamToken(ctx.upto),
    device_one_time_keys_count: deviceId === undefined ? {} : core.keys.oneTimeKeyCounts(requester.userId, deviceId),
    device_unused_fallback_key_types: fallbackTypes,
    "org.matrix.msc2732.device_unused_fallback_key_types": fallbackTypes,
  };
  const deviceLists = since === undefined ? { changed: [], left: [] } : deviceListChanges(core, requester.userId, since, ctx.upto);
  if (deviceLists.changed.length > 0 || deviceLists.left.length > 0) {
    body["device_lists"] = {
      ...(deviceLists.changed.length > 0 ? { changed: deviceLists.changed } : {}),
      ...(deviceLists.left.length > 0 ? { left: deviceLists.left } : {}),
    };
  }
  const toDevice = deviceId === undefined ? [] : core.keys.pending(requester.userId, deviceId, since, ctx.upto);
  if (toDevice.length > 0) body["to_device"] = { events: toDevice.map((m) => ({ sender: m.sender, type: m.type, content: m.content })) };
  const rooms: JsonObject = {};
  if (Object.keys(join).length > 0) rooms["join"] = join;
  if (Object.keys(invite).length > 0) rooms["invite"] = invite;
  if (Object.keys(leave).length > 0) rooms["leave"] = leave;
  if (Object.keys(rooms).length > 0) body["rooms"] = rooms;
  if (accountData.length > 0) body["account_data"] = { events: accountData };
  return { body, empty: Object.keys(rooms).length === 0 && accountData.length === 0 && toDevice.length === 0 && body["device_lists"] === undefined };
}

function resolveFilter(core: Core, requester: Requester, raw: string | null): SyncFilter {
  if (raw === null || raw === "") return parseSyncFilter({});
  if (raw.trim().startsWith("{")) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      throw new MatrixError(400, "M_NOT_JSON", "Invalid filter JSON");
    }
    return parseSyncFilter(isJsonObject(parsed) ? parsed : {});
  }
  const stored = core.users.getFilter(requester.userId, raw);
  if (!stored) throw invalidParam("No such filter");
  return parseSyncFilter(stored);
}

export function syncRoutes(router: Router, core: Core): void {
  // CS API GET /_matrix/client/v3/sync (#get_matrixclientv3sync)
  router.add("GET", `${C}/sync`, async (req) => {
    const requester = authenticate(core, req);
    // Synapse does not sync an appservice's own user (its sender_localpart): "We no longer support
    // AS users using /sync directly" (SyncHandler, 1.67 and current), a NotImplementedError: 500.
    if (core.appservices.all().some((as) => as.senderId === requester.userId)) throw new MatrixError(500, "M_UNKNOWN", "Internal server error");
    const filter = resolveFilter(core, requester, req.query.get("filter"));
    const sinceRaw = parseStreamToken(req.query.get("since"), "since");
    const since = sinceRaw === undefined ? undefined : Math.min(sinceRaw, core.pos);
    const fullState = req.query.get("full_state") === "true";
    const timeout = Math.max(0, req.queryInt("timeout", 0));
    const deadline = Date.now() + timeout;
    // A sync from a token acknowledges the to-device messages delivered up to it: they are deleted.
    if (since !== undefined && requester.deviceId !== undefined) core.keys.acknowledge(requester.userId, requester.deviceId, since);
    for (;;) {
      const result = buildSync({ core, requester, since, upto: core.pos, filter, fullState });
      const remaining = deadline - Date.now();
      if (!result.empty || since === undefined || fullState || remaining <= 0 || core.notifier.isStopped) return ok(result.body);
      await core.notifier.wait(remaining);
    }
  });

  // CS API POST /_matrix/client/v3/user/{userId}/filter (#post_matrixclientv3useruseridfilter)
  router.add("POST", `${C}/user/:userId/filter`, async (req) => {
    const requester = authenticate(core, req);
    if (req.params["userId"] !== requester.userId) throw forbidden("Cannot create filters for other users");
    const filter = await req.json();
    return ok({ filter_id: core.users.addFilter(requester.userId, filter) });
  });

  // CS API GET /_matrix/client/v3/user/{userId}/filter/{filterId} (#get_matrixclientv3useruseridfilterfilterid)
  router.add("GET", `${C}/user/:userId/filter/:filterId`, (req) => {
    const requester = authenticate(core, req);
    if (req.params["userId"] !== requester.userId) throw forbidden("Cannot get filters for other users");
    const filterId = req.params["filterId"] ?? "";
    if (!/^\d+$/.test(filterId)) throw invalidParam("Invalid filter_id");
    const filter = core.users.getFilter(requester.userId, filterId);
    if (!filter) throw notFound("No such filter");
    return ok(filter);
  });
}
