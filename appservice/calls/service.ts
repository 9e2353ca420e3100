// Video consultations: starting and ending calls in organisation rooms, their expiry, and
// guest links. A call is a row in `calls` (006_calls.sql) that is also a work item: the
// widget is posted at once when possible, else by the worker; it is removed when the call
// ends or at its expiry, by the worker, so neither a crash nor a restart leaves a widget behind.
import { randomUUID } from "node:crypto";
import { isDeepStrictEqual } from "node:util";
import { z } from "zod";
import { audit } from "../audit/audit.ts";
import { roomStaff, type KuvertConfig } from "../config/schema.ts";
import type { Database, Queryable } from "../db/database.ts";
import { ErrCode, KuvertError, parseInput } from "../errors.ts";
import { notice } from "../i18n.ts";
import { logger, pseudonym } from "../log.ts";
import { enqueueNotification } from "../mail/outbox.ts";
import type { Homeserver } from "../matrix/homeserver.ts";
import { findOrganisation, type StoredOrganisation } from "../organisations/store.ts";
import { Worker, WorkQueue, workerId } from "../workers/queue.ts";
import { JOIN_TOKEN_SECONDS, jitsiRoomName, signGuestLinkToken, signGuestToken, verifyGuestLinkToken } from "./guest-token.ts";
import { callTexts } from "./texts.ts";
import { conferenceIdFor, LAYOUT_EVENT, layoutWithCall, layoutWithoutCall, newWidgetId, OPENID_AUTH, permissionProblems, widgetContent, WIDGET_EVENT, type PermissionProblem, type PowerLevels } from "./widget.ts";
import { guestLinkMail } from "./mail.ts";
import { CallErr } from "./errors.ts";
import {
  endCall,
  findCall,
  findGuestLink,
  guestLinksOf,
  insertCall,
  insertGuestLink,
  listCalls,
  lockOpenCall,
  markExpired,
  markPosted,
  markPostedByWorker,
  markRemoved,
  markRemovedByWorker,
  organisationOfCall,
  revokeLink,
  runningCallOf,
  setLastError,
  setWidgetEvent,
  type CallFilter,
  type CallRow,
  type GuestLinkRow,
} from "./store.ts";

const log = logger("calls");

/** How long a started call waits for its first, immediate posting before the worker takes over. */
const INLINE_GRACE_SECONDS = 30;

/** A call as the API shows it. */
export interface Call {
  id: string;
  organisationId: string;
  roomId: string;
  widgetId: string;
  conferenceId: string;
  auth: string | null;
  startedBy: string;
  startedAt: string;
  expiresAt: string;
  running: boolean;
  /** Whether the widget is in the room (false while Kuvert still tries to post it). */
  widgetPosted: boolean;
  endedAt: string | null;
  endedBy: string | null;
  endReason: "ended" | "expired" | null;
}

export interface GuestLink {
  id: string;
  callId: string;
  name: string;
  email: string;
  createdBy: string;
  createdAt: string;
  expiresAt: string;
  revokedAt: string | null;
  revokedBy: string | null;
  state: "valid" | "expired" | "revoked";
}

export function presentCall(r: CallRow, now = new Date()): Call {
  return {
    id: r.id,
    organisationId: r.organisation_id,
    roomId: r.room_id,
    widgetId: r.widget_id,
    conferenceId: r.conference_id,
    auth: r.auth,
    startedBy: r.started_by,
    startedAt: r.started_at.toISOString(),
    expiresAt: r.expires_at.toISOString(),
    running: r.ended_at === null && r.expires_at > now,
    widgetPosted: r.widget_event_id !== null && !(r.phase === "remove" && r.state === "done"),
    endedAt: r.ended_at?.toISOString() ?? null,
    endedBy: r.ended_by,
    endReason: r.end_reason,
  };
}

function presentLink(r: GuestLinkRow, now = new Date()): GuestLink {
  return {
    id: r.id,
    callId: r.call_id,
    name: r.guest_name,
    email: r.email,
    createdBy: r.created_by,
    createdAt: r.created_at.toISOString(),
    expiresAt: r.expires_at.toISOString(),
    revokedAt: r.revoked_at?.toISOString() ?? null,
    revokedBy: r.revoked_by,
    state: r.revoked_at ? "revoked" : r.expires_at <= now ? "expired" : "valid",
  };
}

function notConfigured(): KuvertError {
  return new KuvertError(CallErr.NotConfigured, "Video consultations need calls.jitsiDomain, the Jitsi server that Element and the guest page use.");
}

/** Refused because someone lacks a power level; `problems` say who and what. */
export class PowerLevelRefusal extends KuvertError {
  readonly problems: PermissionProblem[];
  constructor(problems: PermissionProblem[]) {
    super(
      CallErr.PowerLevelMissing,
      problems.map((p) => `${p.who === "bot" ? "Kuvert's bot" : "the sender"} needs power level ${p.required} for ${p.type} but has ${p.has}`).join("; "),
      problems.map((p) => ({ path: p.who, message: `needs power level ${p.required} for ${p.type}, has ${p.has}` })),
    );
    this.problems = problems;
  }
}

export const guestLinkInput = z
  .object({
    name: z
      .string()
      .trim()
      .min(1)
      .max(100)
      .regex(/^[^\u0000-\u001f\u007f<>]+$/, "a name without control characters or angle brackets")
      .describe("The guest's name, shown in the conference."),
    email: z
      .string()
      .trim()
      .max(254)
      .regex(/^[^@\s,;<>"]+@[^@\s,;<>"]+\.[^@\s,;<>"]+$/, "one e-mail address")
      .describe("Where the link is sent."),
    validMinutes: z.number().int().min(5).optional().describe("How long the link is valid (default calls.guestLinkMinutes, at most calls.maxGuestLinkMinutes, never beyond the call's end)."),
  })
  .strict();

export interface StartOptions {
  /** The Matrix user who asked (the `!video` sender); null for API tokens. */
  sender: string | null;
  /** Post a notice in the room (calls started or ended from the API; commands reply themselves). */
  announce: boolean;
}

export interface GuestSession {
  domain: string;
  scriptUrl: string;
  roomName: string;
  jwt: string;
  displayName: string;
  organisationName: string;
  expiresAt: string;
}

export class Calls {
  readonly queue: WorkQueue<CallRow>;
  readonly #db: Database;
  readonly #hs: Homeserver;
  readonly #config: KuvertConfig;
  /** Wakes the calls' worker when a call starts or ends. */
  readonly #wake: () => void;

  constructor(db: Database, hs: Homeserver, config: KuvertConfig, onWork: () => void) {
    this.#db = db;
    this.#hs = hs;
    this.#config = config;
    this.#wake = onWork;
    this.queue = new WorkQueue<CallRow>(db, { table: "calls", key: "id", order: "q.run_after", maxAttempts: 20 }, config.workers.leaseSeconds);
  }

  get #texts() {
    return callTexts(this.#config.organisations.language);
  }

  /** Whether a Jitsi domain is configured (without one, calls cannot be started). */
  get configured(): boolean {
    return this.#config.calls.jitsiDomain !== undefined;
  }

  /** The Jitsi domain, or a clear refusal when none is configured. */
  get #domain(): string {
    const domain = this.#config.calls.jitsiDomain;
    if (!domain) throw notConfigured();
    return domain;
  }

  /** Where browsers load Jitsi from. */
  get jitsiUrl(): string {
    return (this.#config.calls.jitsiUrl ?? `https://${this.#domain}`).replace(/\/$/, "");
  }

  /**
   * The browser link for members (Element X has no Jitsi widgets): the console's call link page,
   * where a member signs in and Kuvert checks the membership. Null when it cannot work here (no
   * console, or no calls.appSecret to sign join tokens with).
   */
  memberLinkUrl(callId: string): string | null {
    if (!this.#config.modules.console || !this.#config.calls.appSecret) return null;
    return `${this.#config.publicApi.baseUrl.replace(/\/$/, "")}/console/join.html?call=${callId}`;
  }

  worker(): Worker<CallRow> {
    return new Worker<CallRow>({
      name: "calls",
      queue: this.queue,
      concurrency: this.#config.workers.concurrency,
      pollMilliseconds: this.#config.workers.pollMilliseconds,
      handle: (row) => this.#handle(row),
      onGaveUp: async (row, err) => {
        log.error({ call: row.id, phase: row.phase, err }, "the call's widget could not be changed; given up");
      },
    });
  }

  async #organisation(q: Queryable, id: string, forUpdate = false): Promise<StoredOrganisation> {
    const org = await findOrganisation(q, id, forUpdate);
    if (!org) throw new KuvertError(ErrCode.NotFound, `There is no organisation with the id ${id}.`);
    if (org.state === "archived") throw new KuvertError(ErrCode.Archived, `The organisation ${id} is archived; calls are no longer possible in its room.`);
    if (!org.roomId || org.roomState !== "ready") throw new KuvertError(CallErr.RoomNotReady, `The room of ${id} is not ready (${org.roomState}${org.roomProblem ? `: ${org.roomProblem}` : ""}).`);
    return org;
  }

  /** Whether Kuvert starts calls on this person's behalf: an active clerk of the organisation, or configured staff. */
  #managed(org: StoredOrganisation, userId: string): boolean {
    return org.clerks.some((c) => c.status === "active" && c.matrixId === userId) || roomStaff(this.#config).includes(userId);
  }

  /** Starts a call in the organisation's room, or returns the one running there. */
  async start(organisationId: string, actor: string, opts: StartOptions): Promise<{ call: Call; reused: boolean }> {
    if (!this.configured) throw notConfigured();
    const org = await this.#organisation(this.#db, organisationId);
    const roomId = org.roomId!;
    const pl = (await this.#hs.stateEvent(roomId, "m.room.power_levels")) as PowerLevels | null;
    const problems = permissionProblems(pl, this.#hs.botUserId, opts.sender, opts.sender ? this.#managed(org, opts.sender) : true);
    if (problems.length > 0) {
      await this.#db.transaction((tx) => audit(tx, { actor, action: "call.start", organisationId, object: roomId, outcome: "refused", details: { reason: "power level", problems } }));
      throw new PowerLevelRefusal(problems);
    }
    const auth = this.#config.calls.membershipCheck ? OPENID_AUTH : null;
    const { row, reused } = await this.#db.transaction(async (tx) => {
      // The organisation row serialises starts: two !video at once give one call.
      await findOrganisation(tx, organisationId, true);
      const open = await lockOpenCall(tx, organisationId);
      if (open && open.expires_at > new Date()) return { row: open, reused: true };
      if (open) await this.#closeExpired(tx, open);
      const id = randomUUID();
      const created = await insertCall(tx, {
        id,
        organisationId,
        roomId,
        widgetId: newWidgetId(),
        conferenceId: conferenceIdFor(roomId, auth),
        roomName: `${this.#config.organisations.roomNamePrefix}${org.name}`,
        auth,
        startedBy: actor,
        minutes: this.#config.calls.callMinutes,
        postWithinSeconds: INLINE_GRACE_SECONDS,
      });
      await audit(tx, {
        actor,
        action: "call.started",
        organisationId,
        object: id,
        outcome: "ok",
        details: { room: roomId, widget: created.widget_id, auth, expiresAt: created.expires_at.toISOString() },
      });
      return { row: created, reused: false };
    });

    if (reused) {
      // Someone may have closed the widget in Element meanwhile: putting it back is the same state.
      await this.#post(row).catch((err: unknown) => log.warn({ call: row.id, err }, "re-posting the running call's widget failed"));
      return { call: presentCall(await this.#get(row.id)), reused: true };
    }
    try {
      await this.#post(row);
      await markPosted(this.#db, row.id);
      log.info({ call: row.id, organisation: organisationId }, "call started");
      if (opts.announce) await this.#say(row, `call-started:${row.id}`, this.#texts.started(row.expires_at, this.memberLinkUrl(row.id)).body);
    } catch (err) {
      log.warn({ call: row.id, err }, "posting the call's widget failed; the worker tries again");
      await setLastError(this.#db, row.id, (err as Error).message.slice(0, 2000));
    }
    this.#wake();
    return { call: presentCall(await this.#get(row.id)), reused: false };
  }

  /** Ends the running call of the organisation; its widget is removed. */
  async end(organisationId: string, actor: string, opts: { announce: boolean }): Promise<Call> {
    const org = await findOrganisation(this.#db, organisationId);
    if (!org) throw new KuvertError(ErrCode.NotFound, `There is no organisation with the id ${organisationId}.`);
    const row = await this.#db.transaction(async (tx) => {
      const open = await lockOpenCall(tx, organisationId);
      if (!open) throw new KuvertError(CallErr.NoCall, `No call is running in the room of ${organisationId}.`);
      if (open.expires_at <= new Date()) {
        // Its time is up: the worker removes it (and records the expiry) at once.
        this.#wake();
        throw new KuvertError(CallErr.NoCall, `No call is running in the room of ${organisationId}: it expired at ${open.expires_at.toISOString()}.`);
      }
      const updated = await endCall(tx, open.id, actor);
      await audit(tx, { actor, action: "call.ended", organisationId, object: open.id, outcome: "ok", details: { room: open.room_id, widget: open.widget_id } });
      return updated;
    });
    try {
      await this.#remove(row);
      await markRemoved(this.#db, row.id);
      if (opts.announce) await this.#say(row, `call-ended:${row.id}`, this.#texts.ended);
    } catch (err) {
      log.warn({ call: row.id, err }, "removing the call's widget failed; the worker tries again");
      this.#wake();
    }
    log.info({ call: row.id, organisation: organisationId }, "call ended");
    return presentCall(await this.#get(row.id));
  }

  /** Marks an open call whose time is up as expired; the worker removes its widget. */
  async #closeExpired(tx: Queryable, open: CallRow): Promise<void> {
    await markExpired(tx, open.id);
    await audit(tx, { actor: "kuvert", action: "call.expired", organisationId: open.organisation_id, object: open.id, outcome: "ok", details: { room: open.room_id, widget: open.widget_id } });
  }

  async #handle(row: CallRow): Promise<void> {
    if (row.phase === "post") {
      await this.#post(row);
      await markPostedByWorker(this.#db, row.id, workerId);
      log.info({ call: row.id }, "call widget posted by the worker");
      return;
    }
    await this.#remove(row);
    const expired = await this.#db.transaction(async (tx) => {
      const current = await findCall(tx, row.id, true);
      if (!current || current.leased_by !== workerId) return false;
      if (current.ended_at === null) await this.#closeExpired(tx, current);
      await markRemovedByWorker(tx, row.id);
      return current.ended_at === null || current.end_reason === "expired";
    });
    if (expired) {
      await this.#say(row, `call-expired:${row.id}`, this.#texts.expired);
      log.info({ call: row.id }, "call expired; widget removed");
    }
  }

  /**
   * Puts the widget into the room, and its entry into the room's layout, unless they are there
   * already. Element keeps each person's own arrangement of widgets only while the room's layout
   * event is the one it was made for, so a layout event goes out only when Kuvert's widget is
   * added (and, in #remove, removed), never again for a call that is already shown.
   */
  async #post(row: CallRow): Promise<void> {
    const content = widgetContent({ elementBaseUrl: this.#config.calls.widgetBaseUrl, domain: this.#domain, conferenceId: row.conference_id, roomName: row.room_name, auth: row.auth === OPENID_AUTH ? OPENID_AUTH : null });
    const current = await this.#hs.stateEvent(row.room_id, WIDGET_EVENT, row.widget_id);
    const present = current !== null && isDeepStrictEqual(current, content);
    if (!present || row.widget_event_id === null) {
      const eventId = await this.#hs.sendState(row.room_id, WIDGET_EVENT, row.widget_id, content);
      await setWidgetEvent(this.#db, row.id, eventId);
    }
    const layout = await this.#hs.stateEvent(row.room_id, LAYOUT_EVENT, "");
    if (!(layout?.widgets as Record<string, unknown> | undefined)?.[row.widget_id]) {
      await this.#hs.sendState(row.room_id, LAYOUT_EVENT, "", layoutWithCall(layout, row.widget_id));
    }
  }

  /** Removes the widget (empty content, as Element does) and its layout entry, if they are still there. */
  async #remove(row: CallRow): Promise<void> {
    const widget = await this.#hs.stateEvent(row.room_id, WIDGET_EVENT, row.widget_id);
    if (widget && Object.keys(widget).length > 0) await this.#hs.sendState(row.room_id, WIDGET_EVENT, row.widget_id, {});
    const layout = await this.#hs.stateEvent(row.room_id, LAYOUT_EVENT, "");
    if (layout && (layout.widgets as Record<string, unknown> | undefined)?.[row.widget_id]) {
      await this.#hs.sendState(row.room_id, LAYOUT_EVENT, "", layoutWithoutCall(layout, row.widget_id));
    }
  }

  async #say(row: CallRow, workKey: string, body: string): Promise<void> {
    await this.#hs.send(row.room_id, "m.room.message", notice({ body }), workKey).catch((err: unknown) => log.warn({ call: row.id, err }, "telling the room about the call failed"));
  }

  async #get(id: string): Promise<CallRow> {
    const row = await findCall(this.#db, id);
    if (!row) throw new KuvertError(ErrCode.NotFound, `There is no call with the id ${id}.`);
    return row;
  }

  async get(id: string): Promise<Call> {
    if (!/^[0-9a-f-]{36}$/.test(id)) throw new KuvertError(ErrCode.NotFound, `There is no call with the id ${id}.`);
    return presentCall(await this.#get(id));
  }

  /** The running call of an organisation, or null. */
  async current(organisationId: string): Promise<Call | null> {
    const org = await findOrganisation(this.#db, organisationId);
    if (!org) throw new KuvertError(ErrCode.NotFound, `There is no organisation with the id ${organisationId}.`);
    const row = await runningCallOf(this.#db, organisationId);
    return row ? presentCall(row) : null;
  }

  async list(filter: CallFilter): Promise<Call[]> {
    const rows = await listCalls(this.#db, filter);
    return rows.map((r) => presentCall(r));
  }

  #secret(): string {
    const secret = this.#config.calls.appSecret;
    if (!secret) throw new KuvertError(CallErr.NotConfigured, "Guest links need calls.appSecret (KUVERT_JITSI_APP_SECRET), the secret shared with Jitsi's token authentication.");
    return secret;
  }

  /** Issues a guest link for a running call and e-mails it to the guest (through the outbox). */
  async issueGuestLink(callId: string, body: unknown, actor: string): Promise<{ id: string; url: string; expiresAt: string }> {
    const secret = this.#secret();
    const input = parseInput(guestLinkInput, body);
    const calls = this.#config.calls;
    if (input.validMinutes !== undefined && input.validMinutes > calls.maxGuestLinkMinutes) {
      throw new KuvertError(ErrCode.InvalidInput, `validMinutes: expected at most ${calls.maxGuestLinkMinutes}`, [{ path: "validMinutes", message: `expected at most ${calls.maxGuestLinkMinutes}` }]);
    }
    await this.get(callId);
    return this.#db.transaction(async (tx) => {
      const call = (await findCall(tx, callId, true))!;
      const now = new Date();
      if (call.ended_at !== null || call.expires_at <= now) {
        throw new KuvertError(CallErr.CallNotRunning, `The call ${callId} has ended (${call.end_reason ?? "expired"}); guest links are only for running calls.`);
      }
      const org = (await findOrganisation(tx, call.organisation_id))!;
      const wanted = new Date(now.getTime() + (input.validMinutes ?? calls.guestLinkMinutes) * 60_000);
      const expiresAt = new Date(Math.min(wanted.getTime(), call.expires_at.getTime()));
      const id = randomUUID();
      await insertGuestLink(tx, { id, callId, guestName: input.name, email: input.email.toLowerCase(), createdBy: actor, createdAt: now, expiresAt });
      const token = await signGuestLinkToken(secret, { linkId: id, appId: calls.appId, domain: this.#domain, conferenceId: call.conference_id, guestName: input.name, notBefore: now, expiresAt });
      const url = `${this.#config.publicApi.baseUrl.replace(/\/$/, "")}/call/#${token}`;
      await enqueueNotification(tx, {
        kind: guestLinkMail,
        to: input.email,
        organisationId: org.id,
        organisationName: org.name,
        items: [{ title: this.#texts.guestItem(org.name, expiresAt), link: url }],
        dedupeKey: `guest-link:${id}`,
      });
      await audit(tx, {
        actor,
        action: "call.guest_link.issued",
        organisationId: org.id,
        object: id,
        outcome: "ok",
        details: { call: callId, email: input.email.toLowerCase(), expiresAt: expiresAt.toISOString() },
      });
      log.info({ call: callId, link: id, to: pseudonym(input.email.toLowerCase()) }, "guest link issued");
      return { id, url, expiresAt: expiresAt.toISOString() };
    });
  }

  async guestLinks(callId: string): Promise<GuestLink[]> {
    await this.get(callId);
    const rows = await guestLinksOf(this.#db, callId);
    return rows.map((r) => presentLink(r));
  }

  async revokeGuestLink(id: string, actor: string): Promise<{ outcome: "revoked" | "unchanged"; link: GuestLink }> {
    if (!/^[0-9a-f-]{36}$/.test(id)) throw new KuvertError(ErrCode.NotFound, `There is no guest link with the id ${id}.`);
    return this.#db.transaction(async (tx) => {
      const link = await findGuestLink(tx, id, true);
      if (!link) throw new KuvertError(ErrCode.NotFound, `There is no guest link with the id ${id}.`);
      if (link.revoked_at) return { outcome: "unchanged" as const, link: presentLink(link) };
      const updated = await revokeLink(tx, id, actor);
      const organisationId = await organisationOfCall(tx, link.call_id);
      await audit(tx, { actor, action: "call.guest_link.revoked", organisationId, object: id, outcome: "ok", details: { call: link.call_id } });
      return { outcome: "revoked" as const, link: presentLink(updated) };
    });
  }

  /** The running call with this id, for someone about to join it; a clear refusal otherwise. */
  async runningCall(callId: string): Promise<CallRow> {
    const row = /^[0-9a-f-]{36}$/.test(callId) ? await findCall(this.#db, callId) : null;
    if (!row) throw new KuvertError(CallErr.NoCall, "There is no such video consultation; open the link from the room again.");
    if (row.ended_at !== null || row.expires_at <= new Date()) throw new KuvertError(CallErr.CallEnded, "The video consultation has ended.");
    return row;
  }

  /** A join token for a room member (the caller checked the membership), like a guest's; staff become moderators. */
  async memberSession(call: CallRow, member: { userId: string; displayName: string; moderator: boolean; organisationName: string }): Promise<GuestSession> {
    const secret = this.#secret();
    const now = new Date();
    const expiresAt = new Date(Math.min(call.expires_at.getTime(), now.getTime() + JOIN_TOKEN_SECONDS * 1000));
    const jwt = await signGuestToken(secret, {
      linkId: randomUUID(),
      appId: this.#config.calls.appId,
      domain: this.#domain,
      conferenceId: call.conference_id,
      guestName: member.displayName,
      userId: member.userId,
      moderator: member.moderator,
      notBefore: now,
      expiresAt,
    });
    return {
      domain: this.#domain,
      scriptUrl: `${this.jitsiUrl}/external_api.js`,
      roomName: jitsiRoomName(call.conference_id),
      jwt,
      displayName: member.displayName,
      organisationName: member.organisationName,
      expiresAt: call.expires_at.toISOString(),
    };
  }

  /** What the guest page needs to join, if the link is still good; a clear refusal otherwise. */
  async guestSession(token: unknown): Promise<GuestSession> {
    const secret = this.#secret();
    if (typeof token !== "string" || token.length === 0 || token.length > 8192) {
      throw new KuvertError(ErrCode.InvalidInput, "token: missing, expected the guest link's token", [{ path: "token", message: "missing, expected a string" }]);
    }
    const calls = this.#config.calls;
    const check = await verifyGuestLinkToken(secret, calls.appId, this.#domain, token);
    if (!check.ok && check.reason === "expired") throw new KuvertError(CallErr.GuestLinkExpired, "This guest link has expired.");
    if (!check.ok || !check.payload.jti) throw new KuvertError(CallErr.GuestLinkInvalid, "This guest link is not valid (it was changed or is not from Kuvert).");
    const link = await findGuestLink(this.#db, check.payload.jti);
    if (!link) throw new KuvertError(CallErr.GuestLinkInvalid, "This guest link is not valid (unknown link).");
    if (link.revoked_at) throw new KuvertError(CallErr.GuestLinkRevoked, "This guest link was withdrawn.");
    if (link.expires_at <= new Date()) throw new KuvertError(CallErr.GuestLinkExpired, "This guest link has expired.");
    const call = await this.#get(link.call_id);
    if (call.ended_at !== null || call.expires_at <= new Date()) throw new KuvertError(CallErr.CallEnded, "The video consultation has ended.");
    const org = await findOrganisation(this.#db, call.organisation_id);
    // A fresh join token for Prosody, valid a few minutes and never beyond the link: a revoked
    // link gets none, and the one handed out here is kept nowhere.
    const now = new Date();
    const joinUntil = new Date(Math.min(link.expires_at.getTime(), now.getTime() + JOIN_TOKEN_SECONDS * 1000));
    const jwt = await signGuestToken(secret, { linkId: link.id, appId: calls.appId, domain: this.#domain, conferenceId: call.conference_id, guestName: link.guest_name, notBefore: now, expiresAt: joinUntil });
    return {
      domain: this.#domain,
      scriptUrl: `${this.jitsiUrl}/external_api.js`,
      roomName: jitsiRoomName(call.conference_id),
      jwt,
      displayName: link.guest_name,
      organisationName: org?.name ?? "",
      expiresAt: link.expires_at.toISOString(),
    };
  }
}
