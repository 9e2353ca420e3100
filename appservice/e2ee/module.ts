// End-to-end encryption as a Kuvert module: the bot's device (one owner process at a time), what
// transactions carry for it, encrypted sends from every process, decryption of clerks' encrypted
// events before they are handled (and scanned), the switch of an organisation's room to
// encryption (API, `kuvert encryption enable`, console), verifications of the bot by staff, and
// which rooms are encrypted.
import express from "express";
import { audit } from "../audit/audit.ts";
import { ErrCode, KuvertError } from "../errors.ts";
import { actorOf } from "../http/auth.ts";
import { notice } from "../i18n.ts";
import { logger } from "../log.ts";
import type { MatrixEvent } from "../matrix/events.ts";
import { defineModule, type ModuleContext } from "../module.ts";
import { encryptionState } from "../organisations/room.ts";
import { findOrganisation } from "../organisations/store.ts";
import { e2eeConfig } from "./config.ts";
import { Decryption, ENCRYPTED, UNDECRYPTABLE } from "./decrypt.ts";
import { E2eeErr } from "./errors.ts";
import { e2eeMetrics } from "./metrics.ts";
import { DeviceOwner } from "./owner.ts";
import { EncryptedRooms } from "./rooms.ts";
import { EncryptedSends } from "./sends.ts";
import { e2eeTexts } from "./texts.ts";
import { DeviceInbox } from "./transactions.ts";
import { isVerificationEvent } from "./device.ts";
import type { RoomEncryptionView } from "./views.ts";
import { decideVerification, findVerification, listVerifications } from "./verifications.ts";
import { roleHolders } from "../config/schema.ts";
import { e2eeCommands } from "./cli.ts";
import { e2eePaths, e2eeSchemas } from "./openapi.ts";

const log = logger("e2ee");

/** What other modules may ask of encryption. */
export interface E2ee {
  rooms: EncryptedRooms;
  /** Switches an organisation's room to end-to-end encryption (one way); answers whether it was encrypted before. */
  encryptOrganisation(organisationId: string, actor: string): Promise<{ roomId: string; already: boolean }>;
  status(): Promise<{ ok: boolean; detail: string }>;
}

declare module "../module.ts" {
  interface ModuleServices {
    e2ee: E2ee;
  }
}

/** Switches the organisation's room to encryption: the state event, the room told, the audit row. */
async function encryptOrganisation(ctx: ModuleContext, rooms: EncryptedRooms, organisationId: string, actor: string): Promise<{ roomId: string; already: boolean }> {
  const org = await findOrganisation(ctx.db, organisationId);
  if (!org) throw new KuvertError(ErrCode.NotFound, `No organisation ${organisationId}.`);
  if (!org.roomId) throw new KuvertError(E2eeErr.NoRoomYet, `The room of ${organisationId} is still being made; switch it to encryption once it is there.`);
  if (await rooms.isEncrypted(org.roomId)) return { roomId: org.roomId, already: true };
  await rooms.encrypt(org.roomId);
  await ctx.db.transaction((tx) => audit(tx, { actor, action: "organisation.encrypted", organisationId, object: org.roomId!, outcome: "ok", details: { algorithm: encryptionState.content.algorithm } }));
  await ctx.homeserver.send(org.roomId, "m.room.message", notice({ body: e2eeTexts(ctx.config.organisations.language).encryptedNow }), `encrypted:${org.roomId}`);
  log.info({ organisation: organisationId }, "the organisation's room is end-to-end encrypted now");
  return { roomId: org.roomId, already: false };
}

/** Switched off (no e2ee.secret): the room's state is still shown, the switch says why it is not there. */
function whenOff(ctx: ModuleContext): { adminRoutes: express.Router[] } {
  const admin = express.Router();
  admin.get("/organisations/:id/encryption", async (req, res) => {
    const org = await findOrganisation(ctx.db, String(req.params.id));
    if (!org) throw new KuvertError(ErrCode.NotFound, `No organisation ${String(req.params.id)}.`);
    const state = org.roomId ? await ctx.homeserver.stateEvent(org.roomId, "m.room.encryption") : null;
    const view: RoomEncryptionView = { organisation: org.id, roomId: org.roomId, encrypted: state !== null, available: false };
    res.json(view);
  });
  const off = () => {
    throw new KuvertError(ErrCode.ModuleNotLoaded, "End-to-end encryption is off: set e2ee.secret (KUVERT_E2EE_SECRET) and restart Kuvert.");
  };
  admin.post("/organisations/:id/encryption", off);
  admin.get("/encryption", off);
  return { adminRoutes: [admin] };
}

export const e2eeModule = defineModule({
  name: "e2ee",
  config: e2eeConfig,
  errors: E2eeErr,
  queues: { encrypted_sends: "e2ee_sends" },
  openApi: { schemas: () => e2eeSchemas, paths: () => e2eePaths },
  cli: e2eeCommands,
  // On with a secret for the device's state: needed for encrypted rooms (config.ts's check asks for it).
  enabled: (config) => config.e2ee.secret !== undefined,
  whenOff,
  retention: [{ count: "encryptedSends", run: async (q, cut) => (await q.query("DELETE FROM e2ee_sends WHERE state IN ('done', 'failed') AND created_at < $1", [cut.operational])).rowCount }],
  start(ctx) {
    const { db, homeserver, config } = ctx;
    const secret = config.e2ee.secret!;
    const rooms = new EncryptedRooms(db, homeserver);
    const sends = new EncryptedSends(db, config.workers.leaseSeconds);
    const deviceInbox = new DeviceInbox(db, homeserver.botUserId, config.e2ee.deviceId, () => owner.wake());
    const texts = e2eeTexts(config.organisations.language);
    const mayVerify = (userId: string) => roleHolders(config, ["staff"]).includes(userId);

    // Fail-closed: what cannot be decrypted cannot be scanned, so in an organisation room it goes.
    // Each step is the same again when the inbox retries it (fixed transaction ids), the audit row last.
    const undecryptable = async (event: MatrixEvent, organisationId: string | null): Promise<void> => {
      if (organisationId) {
        await homeserver.request("PUT", `${homeserver.room(event.room_id)}/redact/${encodeURIComponent(event.event_id)}/${encodeURIComponent(`kuvert.undecryptable.${event.event_id}`)}`, undefined, { reason: texts.undecryptableReason });
        await homeserver.send(event.room_id, "m.room.message", notice({ body: texts.undecryptableInRoom }), `undecryptable:${event.event_id}`);
      }
      await db.transaction((tx) =>
        audit(tx, { actor: "kuvert", action: "event.undecryptable", organisationId, object: event.event_id, outcome: "refused", details: { roomId: event.room_id, sender: event.sender, redacted: organisationId !== null, reason: String(event.content["reason"] ?? "") } }),
      );
      e2eeMetrics.undecryptable.inc({ room: organisationId ? "organisation" : "other" });
    };
    const decryption = new Decryption(db, {
      attempts: config.e2ee.decryptAttempts,
      leaseSeconds: config.workers.leaseSeconds,
      concurrency: 1,
      pollMilliseconds: config.workers.pollMilliseconds,
      decrypted: () => e2eeMetrics.decrypted.inc(),
      ready: () => ctx.wakeInbox(),
    });

    const owner: DeviceOwner = new DeviceOwner(
      db,
      homeserver,
      deviceInbox,
      { deviceId: config.e2ee.deviceId, secret, pollMilliseconds: config.workers.pollMilliseconds, isEncrypted: (roomId) => rooms.isEncrypted(roomId) },
      {
        workers: (device) => [
          sends.worker(
            async (row) => {
              const encrypted = await (await device()).encrypt(row.room_id, row.event_type, row.content);
              e2eeMetrics.encrypted.inc();
              return homeserver.sendAsIs(row.room_id, ENCRYPTED, encrypted, row.work_key);
            },
            config.workers.concurrency,
            config.workers.pollMilliseconds,
          ),
          decryption.worker(device),
        ],
        released: () => sends.detach(),
        mayVerify,
      },
    );

    const service: E2ee = {
      rooms,
      encryptOrganisation: (organisationId, actor) => encryptOrganisation(ctx, rooms, organisationId, actor),
      status: () => owner.status(),
    };
    const admin = express.Router();
    admin.post("/organisations/:id/encryption", async (req, res) => {
      const result = await service.encryptOrganisation(String(req.params.id), actorOf(req));
      const view: RoomEncryptionView = { organisation: String(req.params.id), roomId: result.roomId, encrypted: true, available: true, switchedNow: !result.already };
      res.status(result.already ? 200 : 201).json(view);
    });
    // Interactive verifications staff started in Element: the emoji to compare, and the decision.
    admin.get("/encryption/verifications", async (_req, res) => {
      res.json({ verifications: await listVerifications(db) });
    });
    admin.post("/encryption/verifications/:flowId", async (req, res) => {
      const body = (req.body ?? {}) as { match?: unknown };
      if (typeof body.match !== "boolean") throw new KuvertError(ErrCode.InvalidInput, "match: expected true (the emoji are the same as in Element) or false", [{ path: "match", message: "expected a boolean" }]);
      const flowId = String(req.params.flowId);
      const decided = await decideVerification(db, flowId, body.match, actorOf(req));
      if (!decided) {
        const found = await findVerification(db, flowId);
        if (!found) throw new KuvertError(ErrCode.NotFound, `No verification ${flowId}.`);
        throw new KuvertError(E2eeErr.VerificationNotComparing, `The verification ${flowId} is ${found.state}${found.decision ? `, decided already (${found.decision})` : ""}: there is nothing to compare now.`);
      }
      await db.transaction((tx) => audit(tx, { actor: actorOf(req), action: "encryption.verification-decided", object: flowId, outcome: "ok", details: { match: body.match, userId: decided.userId, deviceId: decided.deviceId } }));
      owner.wake();
      res.json(decided);
    });
    admin.get("/organisations/:id/encryption", async (req, res) => {
      const org = await findOrganisation(db, String(req.params.id));
      if (!org) throw new KuvertError(ErrCode.NotFound, `No organisation ${String(req.params.id)}.`);
      const view: RoomEncryptionView = { organisation: org.id, roomId: org.roomId, encrypted: org.roomId ? await rooms.isEncrypted(org.roomId) : false, available: true };
      res.json(view);
    });
    admin.get("/encryption", async (_req, res) => {
      const status = await owner.status();
      // What clients see of the bot: its device's keys and whether it is cross-signed (CS API §"POST /_matrix/client/v3/keys/query").
      const keys = await homeserver.request<{ device_keys?: Record<string, Record<string, { keys?: Record<string, string> }>>; master_keys?: Record<string, unknown> }>("POST", "/_matrix/client/v3/keys/query", undefined, {
        device_keys: { [homeserver.botUserId]: [config.e2ee.deviceId] },
      });
      const published = keys.device_keys?.[homeserver.botUserId]?.[config.e2ee.deviceId]?.keys ?? {};
      res.json({
        deviceId: config.e2ee.deviceId,
        userId: homeserver.botUserId,
        ready: status.ok,
        detail: status.detail,
        ed25519: published[`ed25519:${config.e2ee.deviceId}`] ?? null,
        crossSigned: keys.master_keys?.[homeserver.botUserId] !== undefined,
        newRoomsEncrypted: config.organisations.encryption,
      });
    });

    return {
      service,
      adminRoutes: [admin],
      transactionParts: [deviceInbox.part()],
      heldEventTypes: [ENCRYPTED],
      roomEncryption: { isEncrypted: (roomId) => rooms.isEncrypted(roomId), send: (roomId, type, content, workKey) => sends.send(roomId, type, content, workKey) },
      roomHandlers: [
        {
          name: "e2ee-rooms",
          // A room switched to encryption in Element (staff may): from now on Kuvert encrypts there too.
          async onEvent(event, context) {
            if (event.type === UNDECRYPTABLE) return undecryptable(event, context.organisation?.id ?? null);
            if (event.type === "m.room.encryption" && event.state_key === "" && typeof event.content["algorithm"] === "string") await rooms.learn(db, event.room_id, event.content["algorithm"]);
            if (event.type === "m.room.member" && event.state_key && event.state_key !== homeserver.botUserId && event.content["membership"] === "join" && (await rooms.isEncrypted(event.room_id))) {
              await deviceInbox.memberJoined(db, event.state_key);
              owner.wake();
            }
            // Element verifies another user in a direct message room: staff invite the bot to one and
            // send the verification there. The bot joins such a room only for staff, and only a
            // room that is no organisation's; its verification events go to the device.
            if (context.organisation || context.staffRoom || !mayVerify(event.sender)) return;
            if (event.type === "m.room.member" && event.state_key === homeserver.botUserId && event.content["membership"] === "invite" && event.content["is_direct"] === true) {
              await homeserver.request("POST", `/_matrix/client/v3/join/${encodeURIComponent(event.room_id)}`, undefined, {});
              log.info({ room: event.room_id }, "joined a direct message room staff opened, for verifying the bot");
            } else if (isVerificationEvent(event as unknown as Record<string, unknown>)) {
              await deviceInbox.verificationEvent(db, event as unknown as Record<string, unknown>);
              owner.wake();
            }
          },
        },
      ],
      readiness: { encryption: () => owner.status() },
      start: () => owner.start(),
      stop: () => owner.stop(),
    };
  },
});
