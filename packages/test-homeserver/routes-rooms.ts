import { type Requester, authenticate, authenticateOptional, deviceKey, transactionScope } from "./auth.ts";
import type { Core } from "./core.ts";
import { MatrixError, forbidden, invalidParam, missingParam, notFound, optionalString, requireString } from "./errors.ts";
import { sendLevel, userLevel } from "./event-auth.ts";
import { type StoredEvent, toClientEvent } from "./events.ts";
import { type Reply, type Req, type Router, ok } from "./http.ts";
import { parseIdentifier, requireRoomAlias } from "./ids.ts";
import { type MembershipAction, checkAliasCreation, createRoom, redact, requireRoom, resolveRoom, sendEvent, setState, updateMembership } from "./room-actions.ts";
import type { Room } from "./rooms.ts";
import { membersOf, paginate, parseEventFilter, parseFilterParam, parseStreamToken, roomAccess, streamToken } from "./timeline.ts";
import { type JsonObject, asJson } from "./types.ts";

const C = "/_matrix/client/v3";

/** Runs a request once per client transaction ID; a retry gets the first answer (CS API §"Transaction identifiers"). */
export function idempotent(core: Core, req: Req, requester: Requester, run: () => Promise<Reply>): Promise<Reply> {
  const key = `${transactionScope(requester)}|${req.rawPath}`;
  const cached = core.txnCache.get(key);
  if (cached) return cached;
  const result = run();
  core.txnCache.set(key, result);
  result.catch(() => core.txnCache.delete(key));
  return result;
}

function serialize(ev: StoredEvent, requester: Requester): JsonObject {
  return asJson(toClientEvent(ev, { device: deviceKey(requester) }));
}

function appserviceTs(req: Req, requester: Requester): number | undefined {
  const ts = req.query.get("ts");
  return requester.appservice && ts !== null && /^\d+$/.test(ts) ? Number(ts) : undefined;
}

/** Whether a user may publish the room or delete its aliases (Synapse's `check_can_change_room_list`). */
function canChangeRoomList(room: Room, userId: string): boolean {
  if (room.membership(userId) !== "join") return false;
  return userLevel(room.state, userId, room.version) >= sendLevel(room.state, "m.room.canonical_alias", true);
}

export function roomRoutes(router: Router, core: Core): void {
  // CS API POST /_matrix/client/v3/createRoom (#post_matrixclientv3createroom)
  router.add("POST", `${C}/createRoom`, async (req) => {
    const requester = authenticate(core, req);
    return ok(createRoom(core, requester, await req.json()));
  });

  const membership =
    (action: MembershipAction) =>
    async (req: Req): Promise<Reply> => {
      const requester = authenticate(core, req);
      const body = await req.json({ allowEmpty: action === "leave" });
      const reason = optionalString(body, "reason");
      if (action === "invite" && body["id_server"] !== undefined) {
        throw new MatrixError(400, "M_UNKNOWN", "Third-party invites are not supported by this test homeserver");
      }
      const target = action === "leave" ? requester.userId : requireString(body, "user_id");
      const room = core.rooms.get(req.params["roomId"] ?? "");
      if (!room) {
        if (action === "leave") throw notFound("Not a known room");
        throw forbidden(`User ${requester.userId} not in room ${req.params["roomId"] ?? ""}`);
      }
      updateMembership(core, requester, room, target, action, { reason });
      return ok({});
    };
  // CS API POST /_matrix/client/v3/rooms/{roomId}/invite (#post_matrixclientv3roomsroomidinvite)
  router.add("POST", `${C}/rooms/:roomId/invite`, membership("invite"));
  // CS API POST /_matrix/client/v3/rooms/{roomId}/leave (#post_matrixclientv3roomsroomidleave)
  router.add("POST", `${C}/rooms/:roomId/leave`, membership("leave"));
  // CS API POST /_matrix/client/v3/rooms/{roomId}/kick (#post_matrixclientv3roomsroomidkick)
  router.add("POST", `${C}/rooms/:roomId/kick`, membership("kick"));
  // CS API POST /_matrix/client/v3/rooms/{roomId}/ban (#post_matrixclientv3roomsroomidban)
  router.add("POST", `${C}/rooms/:roomId/ban`, membership("ban"));
  // CS API POST /_matrix/client/v3/rooms/{roomId}/unban (#post_matrixclientv3roomsroomidunban)
  router.add("POST", `${C}/rooms/:roomId/unban`, membership("unban"));

  const join =
    (param: string) =>
    async (req: Req): Promise<Reply> => {
      const requester = authenticate(core, req);
      const body = await req.json({ allowEmpty: true });
      const room = resolveRoom(core, req.params[param] ?? "");
      updateMembership(core, requester, room, requester.userId, "join", { reason: optionalString(body, "reason") });
      return ok({ room_id: room.roomId });
    };
  // CS API POST /_matrix/client/v3/rooms/{roomId}/join (#post_matrixclientv3roomsroomidjoin)
  router.add("POST", `${C}/rooms/:roomId/join`, join("roomId"));
  // CS API POST /_matrix/client/v3/join/{roomIdOrAlias} (#post_matrixclientv3joinroomidoralias)
  router.add("POST", `${C}/join/:roomIdOrAlias`, join("roomIdOrAlias"));

  // CS API POST /_matrix/client/v3/rooms/{roomId}/forget (#post_matrixclientv3roomsroomidforget)
  router.add("POST", `${C}/rooms/:roomId/forget`, async (req) => {
    const requester = authenticate(core, req);
    await req.json({ allowEmpty: true });
    const roomId = req.params["roomId"] ?? "";
    const room = core.rooms.get(roomId);
    const membership = room?.membership(requester.userId);
    if (!room || membership === undefined) throw notFound("Not a known room");
    if (membership === "join" || membership === "invite" || membership === "knock") {
      throw new MatrixError(400, "M_UNKNOWN", `User ${requester.userId} is in room ${roomId}`);
    }
    room.forgottenBy.add(requester.userId);
    return ok({});
  });

  // CS API PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId} (#put_matrixclientv3roomsroomidsendeventtypetxnid)
  router.add("PUT", `${C}/rooms/:roomId/send/:eventType/:txnId`, (req) => {
    const requester = authenticate(core, req);
    return idempotent(core, req, requester, async () => {
      const content = await req.json();
      const room = requireRoom(core, req.params["roomId"] ?? "", requester.userId);
      const draft = { type: req.params["eventType"] ?? "", sender: requester.userId, content };
      const ev = sendEvent(core, requester, room, draft, { txnId: req.params["txnId"], ts: appserviceTs(req, requester) });
      return ok({ event_id: ev.eventId });
    });
  });

  // CS API PUT /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey} (#put_matrixclientv3roomsroomidstateeventtypestatekey)
  router.add("PUT", `${C}/rooms/:roomId/state/:eventType/:stateKey?`, async (req) => {
    const requester = authenticate(core, req);
    const content = await req.json();
    const room = requireRoom(core, req.params["roomId"] ?? "", requester.userId);
    const ev = setState(core, requester, room, req.params["eventType"] ?? "", req.params["stateKey"] ?? "", content);
    return ok({ event_id: ev.eventId });
  });

  // CS API GET /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey} (#get_matrixclientv3roomsroomidstateeventtypestatekey)
  router.add("GET", `${C}/rooms/:roomId/state/:eventType/:stateKey?`, (req) => {
    const requester = authenticate(core, req);
    const { access } = roomAccess(core, req.params["roomId"] ?? "", requester.userId);
    const ev = [...access.state.values()].find((e) => e.type === req.params["eventType"] && e.stateKey === (req.params["stateKey"] ?? ""));
    if (!ev) throw notFound("Event not found.");
    const full = serialize(ev, requester);
    return ok(req.query.get("format") === "event" ? full : full["content"]);
  });

  // CS API GET /_matrix/client/v3/rooms/{roomId}/state (#get_matrixclientv3roomsroomidstate)
  router.add("GET", `${C}/rooms/:roomId/state`, (req) => {
    const requester = authenticate(core, req);
    const { access } = roomAccess(core, req.params["roomId"] ?? "", requester.userId);
    return ok([...access.state.values()].map((ev) => serialize(ev, requester)));
  });

  // CS API GET /_matrix/client/v3/rooms/{roomId}/event/{eventId} (#get_matrixclientv3roomsroomideventeventid)
  router.add("GET", `${C}/rooms/:roomId/event/:eventId`, (req) => {
    const requester = authenticate(core, req);
    const ev = core.rooms.findEvent(req.params["eventId"] ?? "");
    const room = core.rooms.get(req.params["roomId"] ?? "");
    if (!ev || !room || ev.roomId !== room.roomId) throw notFound("Event not found.");
    const isPeeking = room.membership(requester.userId) !== "join";
    const member = room.memberEvent(requester.userId);
    const departed = member && member.content["membership"] !== "join" && ev.pos > member.pos;
    if (departed || !room.visibleTo(ev, requester.userId, isPeeking)) {
      throw forbidden("You don't have permission to access that event.");
    }
    return ok(serialize(ev, requester));
  });

  // CS API GET /_matrix/client/v3/rooms/{roomId}/messages (#get_matrixclientv3roomsroomidmessages)
  router.add("GET", `${C}/rooms/:roomId/messages`, (req) => {
    const requester = authenticate(core, req);
    const { room, access } = roomAccess(core, req.params["roomId"] ?? "", requester.userId);
    const dir = req.query.get("dir") ?? "b";
    if (dir !== "b" && dir !== "f") throw invalidParam("Query parameter \"dir\" must be one of ['b', 'f']");
    const limit = Math.min(Math.max(req.queryInt("limit", 10), 0), 1000);
    const from = parseStreamToken(req.query.get("from"), "from") ?? (dir === "b" ? core.pos : 0);
    const to = parseStreamToken(req.query.get("to"), "to");
    const filter = parseEventFilter(parseFilterParam(req.query.get("filter")));
    const page = paginate(room, requester, access, dir, from, to, limit, filter);
    const body: JsonObject = {
      chunk: page.events.map((ev) => serialize(ev, requester)),
      start: streamToken(from),
      state: filter.lazyLoadMembers ? membersOf(access.state, page.events).map((ev) => serialize(ev, requester)) : [],
    };
    if (page.end !== undefined) body["end"] = page.end;
    return ok(body);
  });

  // CS API GET /_matrix/client/v3/rooms/{roomId}/context/{eventId} (#get_matrixclientv3roomsroomidcontexteventid)
  router.add("GET", `${C}/rooms/:roomId/context/:eventId`, (req) => {
    const requester = authenticate(core, req);
    const { room, access } = roomAccess(core, req.params["roomId"] ?? "", requester.userId);
    const ev = core.rooms.findEvent(req.params["eventId"] ?? "");
    if (!ev || ev.roomId !== room.roomId || ev.pos > access.maxPos) throw notFound("Event not found.");
    if (!room.visibleTo(ev, requester.userId, access.isPeeking)) throw forbidden("You don't have permission to access that event.");
    const limit = Math.min(Math.max(req.queryInt("limit", 10), 0), 100);
    const filter = parseEventFilter(parseFilterParam(req.query.get("filter")));
    const before = paginate(room, requester, access, "b", ev.pos - 1, undefined, Math.floor(limit / 2), filter);
    const after = paginate(room, requester, access, "f", ev.pos, undefined, limit - Math.floor(limit / 2), filter);
    const last = after.events[after.events.length - 1] ?? ev;
    return ok({
      event: serialize(ev, requester),
      events_before: before.events.map((e) => serialize(e, requester)),
      events_after: after.events.map((e) => serialize(e, requester)),
      state: [...last.stateAfter.values()].map((e) => serialize(e, requester)),
      start: before.end ?? streamToken(ev.pos - 1),
      end: streamToken(last.pos),
    });
  });

  // CS API GET /_matrix/client/v3/rooms/{roomId}/members (#get_matrixclientv3roomsroomidmembers)
  router.add("GET", `${C}/rooms/:roomId/members`, (req) => {
    const requester = authenticate(core, req);
    const { access } = roomAccess(core, req.params["roomId"] ?? "", requester.userId);
    const only = req.query.get("membership");
    const not = req.query.get("not_membership");
    const chunk = [...access.state.values()]
      .filter((ev) => ev.type === "m.room.member")
      .filter((ev) => (only === null || ev.content["membership"] === only) && (not === null || ev.content["membership"] !== not))
      .map((ev) => serialize(ev, requester));
    return ok({ chunk });
  });

  // CS API GET /_matrix/client/v3/rooms/{roomId}/joined_members (#get_matrixclientv3roomsroomidjoined_members)
  router.add("GET", `${C}/rooms/:roomId/joined_members`, (req) => {
    const requester = authenticate(core, req);
    const roomId = req.params["roomId"] ?? "";
    const room = core.rooms.get(roomId);
    const as = requester.appservice;
    const allowed = room && (as ? room.membership(requester.userId) === "join" || as.isInterestedInRoom(roomId, core.rooms.aliasesOf(roomId), room.members("join")) : room.membership(requester.userId) === "join");
    if (!room || !allowed) throw forbidden("Getting joined members while not being a current member of the room is forbidden.");
    const joined: JsonObject = {};
    for (const userId of room.members("join")) {
      const content = room.content("m.room.member", userId) ?? {};
      joined[userId] = { display_name: content["displayname"] ?? null, avatar_url: content["avatar_url"] ?? null };
    }
    return ok({ joined });
  });

  // CS API GET /_matrix/client/v3/joined_rooms (#get_matrixclientv3joined_rooms)
  router.add("GET", `${C}/joined_rooms`, (req) => {
    const requester = authenticate(core, req);
    const joined = core.rooms.roomsOf(requester.userId).filter((room) => room.membership(requester.userId) === "join");
    return ok({ joined_rooms: joined.map((room) => room.roomId) });
  });

  // CS API PUT /_matrix/client/v3/rooms/{roomId}/redact/{eventId}/{txnId} (#put_matrixclientv3roomsroomidredacteventidtxnid)
  router.add("PUT", `${C}/rooms/:roomId/redact/:eventId/:txnId`, (req) => {
    const requester = authenticate(core, req);
    return idempotent(core, req, requester, async () => {
      const body = await req.json({ allowEmpty: true });
      const room = requireRoom(core, req.params["roomId"] ?? "", requester.userId);
      const ev = redact(core, requester, room, req.params["eventId"] ?? "", optionalString(body, "reason"), req.params["txnId"] ?? "");
      return ok({ event_id: ev.eventId });
    });
  });

  directoryRoutes(router, core);
  ephemeralRoutes(router, core);
}

function directoryRoutes(router: Router, core: Core): void {
  // CS API GET /_matrix/client/v3/directory/room/{roomAlias} (#get_matrixclientv3directoryroomroomalias)
  router.add("GET", `${C}/directory/room/:roomAlias`, (req) => {
    authenticateOptional(core, req);
    const alias = req.params["roomAlias"] ?? "";
    requireRoomAlias(alias);
    const entry = core.rooms.aliases.get(alias);
    if (!entry) throw notFound(`Room alias ${alias} not found`);
    return ok({ room_id: entry.roomId, servers: [core.serverName] });
  });

  // CS API PUT /_matrix/client/v3/directory/room/{roomAlias} (#put_matrixclientv3directoryroomroomalias)
  router.add("PUT", `${C}/directory/room/:roomAlias`, async (req) => {
    const requester = authenticate(core, req);
    const alias = req.params["roomAlias"] ?? "";
    const roomId = requireString(await req.json(), "room_id");
    if (!parseIdentifier(roomId, "!")) throw invalidParam(`Invalid room ID: ${roomId}`);
    checkAliasCreation(core, requester, alias);
    if (!requester.appservice && !requester.isAdmin && core.rooms.get(roomId)?.membership(requester.userId) !== "join") {
      throw forbidden("You must be in the room to create an alias for it");
    }
    if (core.rooms.aliases.has(alias)) throw new MatrixError(409, "M_UNKNOWN", `Room alias ${alias} already exists`);
    core.rooms.aliases.set(alias, { roomId, creator: requester.userId });
    return ok({});
  });

  // CS API DELETE /_matrix/client/v3/directory/room/{roomAlias} (#delete_matrixclientv3directoryroomroomalias)
  router.add("DELETE", `${C}/directory/room/:roomAlias`, (req) => {
    const requester = authenticate(core, req);
    const alias = req.params["roomAlias"] ?? "";
    requireRoomAlias(alias);
    const entry = core.rooms.aliases.get(alias);
    if (requester.appservice) {
      if (!requester.appservice.isAliasInNamespace(alias)) {
        throw new MatrixError(400, "M_EXCLUSIVE", "This application service has not reserved this kind of alias");
      }
    } else {
      if (!entry) throw notFound("Unknown room alias");
      const room = core.rooms.get(entry.roomId);
      const canDelete = entry.creator === requester.userId || requester.isAdmin || (room !== undefined && canChangeRoomList(room, requester.userId));
      if (!canDelete) throw forbidden("You don't have permission to delete the alias.");
      checkAliasCreation(core, requester, alias);
    }
    if (!entry) throw notFound("Unknown room alias");
    core.rooms.aliases.delete(alias);
    const room = core.rooms.get(entry.roomId);
    const canonical = room?.content("m.room.canonical_alias");
    if (room && canonical) {
      // Synapse's `_update_canonical_alias`: drop the alias from m.room.canonical_alias.
      const content: JsonObject = { ...canonical };
      let update = false;
      if (content["alias"] === alias) {
        delete content["alias"];
        update = true;
      }
      const alt = content["alt_aliases"];
      delete content["alt_aliases"];
      if (Array.isArray(alt)) {
        update = true;
        const rest = alt.filter((a) => a !== alias);
        if (rest.length > 0) content["alt_aliases"] = rest;
      }
      if (update) {
        try {
          sendEvent(core, requester, room, { type: "m.room.canonical_alias", sender: requester.userId, stateKey: "", content });
        } catch {
          // the alias is gone even when the user may not update the canonical alias
        }
      }
    }
    return ok({});
  });

  // CS API GET /_matrix/client/v3/rooms/{roomId}/aliases (#get_matrixclientv3roomsroomidaliases)
  router.add("GET", `${C}/rooms/:roomId/aliases`, (req) => {
    const requester = authenticate(core, req);
    const { room } = roomAccess(core, req.params["roomId"] ?? "", requester.userId);
    return ok({ aliases: core.rooms.aliasesOf(room.roomId) });
  });

  // CS API GET /_matrix/client/v3/directory/list/room/{roomId} (#get_matrixclientv3directorylistroomroomid)
  router.add("GET", `${C}/directory/list/room/:roomId`, (req) => {
    const room = core.rooms.get(req.params["roomId"] ?? "");
    if (!room) throw notFound("Unknown room");
    return ok({ visibility: room.directoryVisibility });
  });

  // CS API PUT /_matrix/client/v3/directory/list/room/{roomId} (#put_matrixclientv3directorylistroomroomid)
  router.add("PUT", `${C}/directory/list/room/:roomId`, async (req) => {
    const requester = authenticate(core, req);
    const body = await req.json({ allowEmpty: true });
    const room = core.rooms.get(req.params["roomId"] ?? "");
    if (!room) throw notFound("Unknown room");
    const visibility = body["visibility"] ?? "public";
    if (visibility !== "public" && visibility !== "private") throw invalidParam("Invalid visibility setting");
    if (!requester.isAdmin && !canChangeRoomList(room, requester.userId)) {
      throw forbidden("This user is not permitted to publish rooms to the room list");
    }
    room.directoryVisibility = visibility;
    return ok({});
  });
}

const RECEIPT_TYPES = ["m.read", "m.read.private", "m.fully_read"];

function ephemeralRoutes(router: Router, core: Core): void {
  const joinedRoom = (requester: Requester, roomId: string): Room => {
    const room = core.rooms.get(roomId);
    if (!room || room.membership(requester.userId) !== "join") throw forbidden(`User ${requester.userId} not in room ${roomId}`);
    return room;
  };

  // CS API PUT /_matrix/client/v3/rooms/{roomId}/typing/{userId} (#put_matrixclientv3roomsroomidtypinguserid)
  router.add("PUT", `${C}/rooms/:roomId/typing/:userId`, async (req) => {
    const requester = authenticate(core, req);
    const body = await req.json();
    if (req.params["userId"] !== requester.userId) throw new MatrixError(400, "M_FORBIDDEN", "Cannot set another user's typing state");
    const room = joinedRoom(requester, req.params["roomId"] ?? "");
    if (typeof body["typing"] !== "boolean") throw missingParam("Missing params: typing");
    const timeout = typeof body["timeout"] === "number" ? Math.min(body["timeout"], 120000) : 30000;
    if (body["typing"]) room.typing.set(requester.userId, Date.now() + timeout);
    else room.typing.delete(requester.userId);
    room.typingPos = core.bump();
    core.pushEphemeral(room, { type: "m.typing", room_id: room.roomId, content: { user_ids: room.typingUsers() } });
    return ok({});
  });

  const receipt = (room: Room, requester: Requester, receiptType: string, eventId: string, threadId: string | undefined): void => {
    if (receiptType === "m.fully_read") {
      core.users.setAccountData(requester.userId, room.roomId, "m.fully_read", { event_id: eventId }, core.bump());
      return;
    }
    const ts = Date.now();
    room.receipts.push({ pos: core.bump(), eventId, receiptType, userId: requester.userId, ts, threadId });
    if (receiptType === "m.read") {
      const data: JsonObject = threadId === undefined ? { ts } : { ts, thread_id: threadId };
      core.pushEphemeral(room, { type: "m.receipt", room_id: room.roomId, content: { [eventId]: { "m.read": { [requester.userId]: data } } } });
    }
  };

  // CS API POST /_matrix/client/v3/rooms/{roomId}/receipt/{receiptType}/{eventId} (#post_matrixclientv3roomsroomidreceiptreceipttypeeventid)
  router.add("POST", `${C}/rooms/:roomId/receipt/:receiptType/:eventId`, async (req) => {
    const requester = authenticate(core, req);
    const body = await req.json({ allowEmpty: true });
    const receiptType = req.params["receiptType"] ?? "";
    if (!RECEIPT_TYPES.includes(receiptType)) {
      throw invalidParam("Receipt type must be 'm.read', 'm.read.private' or 'm.fully_read'");
    }
    const room = joinedRoom(requester, req.params["roomId"] ?? "");
    receipt(room, requester, receiptType, req.params["eventId"] ?? "", optionalString(body, "thread_id"));
    return ok({});
  });

  // CS API POST /_matrix/client/v3/rooms/{roomId}/read_markers (#post_matrixclientv3roomsroomidread_markers)
  router.add("POST", `${C}/rooms/:roomId/read_markers`, async (req) => {
    const requester = authenticate(core, req);
    const body = await req.json();
    const room = joinedRoom(requester, req.params["roomId"] ?? "");
    for (const receiptType of RECEIPT_TYPES) {
      const eventId = body[receiptType];
      if (typeof eventId === "string") receipt(room, requester, receiptType, eventId, undefined);
    }
    return ok({});
  });
}
