// Brings an organisation's room in line with the database: creates it once, invites and removes
// people, posts the welcome once, keeps power levels, name and archive state.
// Every step checks the room first, so running it again after a crash changes nothing twice.
import { audit } from "../audit/audit.ts";
import { roomStaff, type KuvertConfig } from "../config/schema.ts";
import type { Database } from "../db/database.ts";
import { notice, texts } from "../i18n.ts";
import { logger, pseudonym } from "../log.ts";
import { HomeserverError, type Homeserver } from "../matrix/homeserver.ts";
import { Worker, WorkQueue, type QueueRow } from "../workers/queue.ts";
import { createRoomRequest, desiredPowerLevels, membershipPlan, roomAliasLocalpart, samePowerLevels, type RoomPeople } from "./room.ts";
import type { ClerkAccountHooks } from "./service.ts";
import * as store from "./store.ts";
import type { StaffRoom } from "../staff/staffroom.ts";

const log = logger("room-sync");

interface RoomSyncRow extends QueueRow {
  organisation_id: string;
  generation: string;
}

/** Answers that mean Kuvert cannot act in the room any more (it was kicked, or the room is gone). */
function roomLost(err: unknown): boolean {
  return err instanceof HomeserverError && (err.errcode === "M_FORBIDDEN" || err.status === 404) && !err.transient;
}

export class RoomSync {
  readonly #db: Database;
  readonly #hs: Homeserver;
  readonly #config: KuvertConfig;
  readonly queue: WorkQueue<RoomSyncRow>;
  readonly #staffRoom: StaffRoom | undefined;
  readonly #accounts: () => ClerkAccountHooks | undefined;

  /** `accounts`: the module that creates clerk accounts, if any (it starts after the room worker is made). */
  constructor(db: Database, hs: Homeserver, config: KuvertConfig, staffRoom?: StaffRoom, accounts: () => ClerkAccountHooks | undefined = () => undefined) {
    this.#accounts = accounts;
    this.#db = db;
    this.#hs = hs;
    this.#config = config;
    this.#staffRoom = staffRoom;
    this.queue = new WorkQueue<RoomSyncRow>(db, { table: "room_sync", key: "organisation_id", order: "q.requested_at", maxAttempts: 12, version: "generation" }, config.workers.leaseSeconds);
  }

  worker(): Worker<RoomSyncRow> {
    return new Worker<RoomSyncRow>({
      name: "room-sync",
      queue: this.queue,
      concurrency: this.#config.workers.concurrency,
      pollMilliseconds: this.#config.workers.pollMilliseconds,
      handle: async (row) => {
        await this.syncOrganisation(row.organisation_id);
        await this.queue.complete(row);
      },
      onGaveUp: async (row, err) => {
        log.error({ organisation: row.organisation_id, err }, "the organisation's room could not be brought in line");
      },
    });
  }

  async syncOrganisation(organisationId: string): Promise<void> {
    const org = await store.findOrganisation(this.#db, organisationId);
    if (!org) return;
    const removedStaff = (await store.staffMembers(this.#db)).filter((s) => s.status === "removed").map((s) => s.matrix_id);
    // Clerks whose accounts Kuvert is still creating (or could not create) are invited once they exist.
    const pendingAccounts = (await this.#accounts()?.notYetCreated(this.#db, organisationId)) ?? new Set<string>();
    const people: RoomPeople = {
      botUserId: this.#hs.botUserId,
      staff: roomStaff(this.#config),
      clerks: org.clerks.filter((c) => c.status === "active" && c.matrixId && !pendingAccounts.has(c.matrixId)).map((c) => c.matrixId!),
      archived: org.state === "archived",
    };
    const t = texts(this.#config.organisations.language);
    const name = `${this.#config.organisations.roomNamePrefix}${org.name}`;

    let roomId = org.roomId;
    if (!roomId) {
      roomId = await this.#createRoom(org.id, name, t.topic(org.name), people);
    }
    try {
      const refused = await this.#syncPowerLevels(
        roomId,
        people,
        org.clerks
          .filter((c) => c.status === "removed" && c.matrixId)
          .map((c) => c.matrixId!)
          .concat(removedStaff),
      );
      await this.#recordPowerLevels(org.id, roomId, refused);
      await this.#syncMembers(org, roomId, people, removedStaff);
      // After the invitations: in an encrypted room, the invited clerks get the key to it.
      if (!org.welcomeEventId) {
        const eventId = await this.#hs.send(roomId, "m.room.message", notice(t.welcome(org.name)), `welcome:${roomId}`);
        await store.setNoticeEvent(this.#db, org.id, "welcome_event_id", eventId);
      }
      const currentName = await this.#hs.stateEvent(roomId, "m.room.name");
      if (currentName?.name !== name) await this.#hs.sendState(roomId, "m.room.name", "", { name });
      if (people.archived && !org.archiveNoticeEventId) {
        const eventId = await this.#hs.send(roomId, "m.room.message", notice({ body: t.archived() }), `archived:${roomId}`);
        await store.setNoticeEvent(this.#db, org.id, "archive_notice_event_id", eventId);
      }
      if (org.roomState !== "ready") {
        await this.#db.transaction(async (tx) => {
          await store.setRoomState(tx, org.id, "ready", null);
          if (org.roomState === "lost") await audit(tx, { actor: "kuvert", action: "room.recovered", organisationId: org.id, object: roomId, outcome: "ok" });
        });
      }
    } catch (err) {
      if (!roomLost(err)) throw err;
      await this.markLost(org.id, roomId, `Kuvert can no longer act in the room: ${(err as Error).message}`);
    }
  }

  /** Records that Kuvert lost its room (kicked, banned, or the room is gone); reported, not ignored. */
  async markLost(organisationId: string, roomId: string, problem: string): Promise<void> {
    const changed = await this.#db.transaction(async (tx) => {
      const org = await store.findOrganisation(tx, organisationId, true);
      if (!org || org.roomState === "lost") return false;
      await store.setRoomState(tx, organisationId, "lost", problem);
      await audit(tx, { actor: "kuvert", action: "room.lost", organisationId, object: roomId, outcome: "failed", details: { problem } });
      return true;
    });
    if (changed) log.error({ organisation: organisationId, roomId, problem }, "organisation room lost");
  }

  async #createRoom(organisationId: string, name: string, topic: string, people: RoomPeople): Promise<string> {
    const aliasLocalpart = roomAliasLocalpart(this.#config.appservice.userPrefix, organisationId);
    let roomId: string;
    let adopted = false;
    try {
      roomId = await this.#hs.createRoom(createRoomRequest({ ...people, organisationId, name, topic, aliasLocalpart, encrypted: this.#config.organisations.encryption }));
    } catch (err) {
      // The alias is Kuvert's and names the organisation: if it exists, an earlier attempt made the room.
      if (!(err instanceof HomeserverError && err.errcode === "M_ROOM_IN_USE")) throw err;
      const existing = await this.#hs.resolveAlias(`#${aliasLocalpart}:${this.#config.homeserver.domain}`);
      if (!existing) throw err;
      roomId = existing;
      adopted = true;
    }
    await this.#db.transaction(async (tx) => {
      await store.setRoom(tx, organisationId, roomId);
      await audit(tx, { actor: "kuvert", action: "room.created", organisationId, object: roomId, outcome: "ok", details: adopted ? { adopted: true } : {} });
    });
    log.info({ organisation: organisationId, roomId, adopted }, "organisation room created");
    return roomId;
  }

  /**
   * Sets the power levels back to what Kuvert keeps. Answers null when they are right, or the
   * problem when the homeserver refuses (403: e.g. a hand edit left another member at Kuvert's
   * own level, which the auth rules forbid Kuvert to lower). Kuvert is still in the room then:
   * that is reported as exactly this, not as a lost room.
   */
  async #syncPowerLevels(roomId: string, people: RoomPeople, formerlyManaged: string[]): Promise<string | null> {
    const current = (await this.#hs.stateEvent(roomId, "m.room.power_levels")) ?? {};
    const wanted = desiredPowerLevels(current, people, formerlyManaged);
    if (samePowerLevels(current, wanted)) return null;
    try {
      await this.#hs.sendState(roomId, "m.room.power_levels", "", wanted);
      return null;
    } catch (err) {
      if (!(err instanceof HomeserverError && err.status === 403)) throw err;
      // Room Versions §"Authorization rules": no one may change the level of another user at or
      // above their own. Everything else is still set back; those entries stay as they are.
      const users = (current.users ?? {}) as Record<string, number>;
      const own = users[this.#hs.botUserId] ?? 0;
      const rivals = Object.entries(users).filter(([u, level]) => u !== this.#hs.botUserId && level >= own);
      const problem = `Kuvert cannot set the room's power levels back: the homeserver refused (${err.message}).` + (rivals.length > 0 ? ` ${rivals.length} other member${rivals.length === 1 ? " holds" : "s hold"} level ${own} (Kuvert's own), which only they can lower.` : "");
      if (rivals.length === 0) return problem;
      const partial = { ...wanted, users: { ...(wanted.users as Record<string, number>), ...Object.fromEntries(rivals) } };
      if (!samePowerLevels(current, partial)) {
        await this.#hs.sendState(roomId, "m.room.power_levels", "", partial).catch((again: unknown) => {
          if (!(again instanceof HomeserverError && again.status === 403)) throw again;
        });
      }
      return problem;
    }
  }

  /** Keeps the power-level problem on the organisation: audited and alerted when it appears, audited when it is gone. */
  async #recordPowerLevels(organisationId: string, roomId: string, problem: string | null): Promise<void> {
    const alert = await this.#db.transaction(async (tx) => {
      const { rows } = await tx.query<{ power_levels_problem: string | null }>("SELECT power_levels_problem FROM organisations WHERE id = $1 FOR UPDATE", [organisationId]);
      const before = rows[0]?.power_levels_problem ?? null;
      if (before === problem) return null;
      await tx.query("UPDATE organisations SET power_levels_problem = $2 WHERE id = $1", [organisationId, problem]);
      if (problem === null) {
        await audit(tx, { actor: "kuvert", action: "room.power-levels-restored", organisationId, object: roomId, outcome: "ok" });
        return null;
      }
      if (before !== null) return null;
      await audit(tx, { actor: "kuvert", action: "room.power-levels-refused", organisationId, object: roomId, outcome: "failed", details: { problem } });
      const a = { key: `power-levels:${organisationId}:${Date.now()}`, body: texts(this.#config.organisations.language).powerLevelsRefused(organisationId, problem) };
      await this.#staffRoom?.alertByMail(tx, { key: a.key, mail: a.body }, organisationId);
      return a;
    });
    if (alert) {
      log.warn({ organisation: organisationId, roomId }, "the homeserver refused the room's power levels");
      await this.#staffRoom?.post(alert).catch((err: unknown) => log.warn({ err }, "the staff room did not take the alert"));
    }
  }

  async #syncMembers(org: store.StoredOrganisation, roomId: string, people: RoomPeople, removedStaff: string[]): Promise<void> {
    const members = await this.#hs.members(roomId);
    const removedClerks = org.clerks.filter((c) => c.status === "removed" && c.matrixId).map((c) => c.matrixId!);
    const plan = membershipPlan(members, people.archived ? [] : [...people.clerks, ...people.staff], [...removedClerks, ...removedStaff]);
    const problems: string[] = [];
    for (const userId of plan.invite) {
      try {
        await this.#hs.invite(roomId, userId);
        members.set(userId, "invite");
        await this.#auditMembership(org.id, "member.invited", userId, roomId);
      } catch (err) {
        if (err instanceof HomeserverError && !err.transient) {
          // One unknown or refusing user must not hold up the others; the reason is kept on the organisation.
          problems.push(`${userId} could not be invited: ${err.message}`);
          log.warn({ organisation: org.id, user: pseudonym(userId), errcode: err.errcode }, "invite refused");
          continue;
        }
        throw err;
      }
    }
    for (const userId of plan.kick) {
      await this.#hs.kick(roomId, userId, texts(this.#config.organisations.language).removedReason);
      members.set(userId, "leave");
      await this.#auditMembership(org.id, "member.removed", userId, roomId);
    }
    for (const userId of plan.banned) problems.push(`${userId} is banned from the room; only a person can lift the ban`);
    for (const clerk of org.clerks) {
      if (!clerk.matrixId) continue;
      const membership = members.get(clerk.matrixId) ?? null;
      await store.setClerkMembership(this.#db, org.id, clerk.matrixId, membership, { keepJoin: membership === "invite" });
    }
    await this.#db.query("UPDATE organisations SET room_problem = $2 WHERE id = $1 AND room_state <> 'lost'", [org.id, problems.length ? problems.join("\n") : null]);
  }

  async #auditMembership(organisationId: string, action: string, userId: string, roomId: string): Promise<void> {
    await this.#db.transaction((tx) => audit(tx, { actor: "kuvert", action, organisationId, object: userId, outcome: "ok", details: { roomId } }));
  }
}
