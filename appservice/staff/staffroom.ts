// The staff room: one room for the operating body's staff, where Kuvert posts alerts
// (infected files, dead e-mails, unroutable drops, lost rooms) and takes staff commands.
import { roomStaff, type KuvertConfig } from "../config/schema.ts";
import type { Database, Queryable } from "../db/database.ts";
import { notice } from "../i18n.ts";
import { logger } from "../log.ts";
import { HomeserverError, type Homeserver } from "../matrix/homeserver.ts";
import { enqueueNotification } from "../mail/outbox.ts";
import { desiredPowerLevels, encryptionState, initialPowerLevels, membershipPlan, samePowerLevels } from "../organisations/room.ts";

const log = logger("staff-room");

export interface Alert {
  /** Names what the alert is about; the same key never alerts twice. */
  key: string;
  body: string;
  html?: string;
}

/**
 * An alert for the staff mailbox. E-mail leaves Kuvert's hands, so its text names no file and
 * no document content: what happened, the document, circular or account id to look it up by,
 * the organisation and the reason (a virus signature name, a limit); the staff room has the rest.
 */
export interface MailAlert {
  key: string;
  mail: string;
}

export class StaffRoom {
  readonly #db: Database;
  readonly #hs: Homeserver;
  readonly #config: KuvertConfig;
  #roomId: string | null = null;

  constructor(db: Database, hs: Homeserver, config: KuvertConfig) {
    this.#db = db;
    this.#hs = hs;
    this.#config = config;
  }

  get roomId(): string | null {
    return this.#roomId;
  }

  /** Finds or makes the staff room and brings staff membership and power levels in line. */
  async ensure(): Promise<string> {
    const stored = await this.#db.query<{ room_id: string }>("SELECT room_id FROM service_rooms WHERE purpose = 'staff'");
    let roomId = stored.rows[0]?.room_id;
    const people = { botUserId: this.#hs.botUserId, staff: roomStaff(this.#config), clerks: [], archived: false };
    if (!roomId) {
      const aliasLocalpart = `${this.#config.appservice.userPrefix}staff`;
      try {
        roomId = await this.#hs.createRoom({
          preset: "private_chat",
          visibility: "private",
          name: this.#config.organisations.language === "en" ? "Kuvert: staff" : "Kuvert: Mitarbeitende",
          topic: this.#config.organisations.language === "en" ? "Alerts and commands for staff" : "Meldungen und Befehle für Mitarbeitende",
          room_alias_name: aliasLocalpart,
          power_level_content_override: initialPowerLevels(people),
          initial_state: [
            { type: "m.room.join_rules", state_key: "", content: { join_rule: "invite" } },
            { type: "m.room.guest_access", state_key: "", content: { guest_access: "forbidden" } },
            { type: "m.room.history_visibility", state_key: "", content: { history_visibility: "shared" } },
            // Encrypted like the organisations' rooms (alerts name organisations and files).
            ...(this.#config.organisations.encryption ? [encryptionState] : []),
          ],
        });
      } catch (err) {
        if (!(err instanceof HomeserverError && err.errcode === "M_ROOM_IN_USE")) throw err;
        const existing = await this.#hs.resolveAlias(`#${aliasLocalpart}:${this.#config.homeserver.domain}`);
        if (!existing) throw err;
        roomId = existing;
      }
      await this.#db.query("INSERT INTO service_rooms (purpose, room_id) VALUES ('staff', $1) ON CONFLICT (purpose) DO NOTHING", [roomId]);
    }
    const current = (await this.#hs.stateEvent(roomId, "m.room.power_levels")) ?? {};
    const removed = (await this.#db.query<{ matrix_id: string }>("SELECT matrix_id FROM staff_members WHERE status = 'removed'")).rows.map((r) => r.matrix_id);
    const wanted = desiredPowerLevels(current, people, removed);
    if (!samePowerLevels(current, wanted)) await this.#hs.sendState(roomId, "m.room.power_levels", "", wanted);
    const plan = membershipPlan(await this.#hs.members(roomId), people.staff, removed);
    for (const userId of plan.invite) await this.#hs.invite(roomId, userId).catch((err: unknown) => log.warn({ err }, "inviting staff to the staff room failed"));
    for (const userId of plan.kick) await this.#hs.kick(roomId, userId, "No longer staff in Kuvert's configuration");
    this.#roomId = roomId;
    return roomId;
  }

  /** Writes the alert e-mail to the staff mailbox inside the caller's transaction (durable with the change). */
  async alertByMail(tx: Queryable, alert: MailAlert, organisationId?: string): Promise<void> {
    const mailbox = this.#config.mail.staffMailbox;
    if (!mailbox) return;
    await enqueueNotification(tx, {
      kind: "alert",
      to: mailbox,
      ...(organisationId ? { organisationId } : {}),
      items: [{ title: alert.mail }],
      dedupeKey: `alert:${alert.key}`,
    });
  }

  /** Posts the alert in the staff room; the key makes a repeated call the same message. */
  async post(alert: Alert): Promise<void> {
    const roomId = this.#roomId ?? (await this.ensure());
    await this.#hs.send(roomId, "m.room.message", notice(alert), `alert:${alert.key}`);
  }
}

export async function isStaffRoom(db: Queryable, roomId: string): Promise<boolean> {
  const res = await db.query("SELECT 1 FROM service_rooms WHERE purpose = 'staff' AND room_id = $1", [roomId]);
  return res.rows.length > 0;
}
