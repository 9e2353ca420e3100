// End-to-end encrypted organisation rooms, with Kuvert's bot as a device in them: clerks are
// matrix-js-sdk clients with its Rust crypto (what Element uses), Kuvert runs as a child process
// (to be killed with SIGKILL), on the test homeserver in pass 1 and on Synapse in pass 2 (with the
// experimental features the device needs: test/support/harness.ts's `encryption`).
//
// Shown here: the room is made encrypted; the clerk decrypts the welcome, every notice, a document
// (the event and the file, bytes equal) and the answers to her encrypted commands; the homeserver
// holds only ciphertext; EICAR sent encrypted by a clerk is redacted and quarantined; Kuvert killed
// with SIGKILL and restarted still encrypts for the clerk and decrypts what she sent while it was
// down; a clerk removed gets no key for what comes after; an existing unencrypted room is switched
// one way by the API; not one undecryptable event on either side.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { Attachment, EncryptedAttachment, initAsync } from "@matrix-org/matrix-sdk-crypto-wasm";
import { EventType, MatrixEvent, MsgType } from "matrix-js-sdk";
import type { EncryptedFile } from "matrix-js-sdk/lib/@types/media.js";
import { DecryptionFailureCode } from "matrix-js-sdk/lib/crypto-api/index.js";
import { VerificationPhase, VerifierEvent, type ShowSasCallbacks } from "matrix-js-sdk/lib/crypto-api/verification.js";
import { openDatabase } from "../../appservice/db/database.ts";
import { chromium } from "playwright-core";
import { EICAR } from "../support/clamd.ts";
import { chromiumOptions, ensureConsoleBuilt } from "../support/console.ts";
import { startStack, suitesOnSynapse, waitFor, type Stack } from "../support/harness.ts";
import type { TestUser } from "../support/matrix.ts";

type Json = Record<string, unknown>;

function decryptAttachment(ciphertext: Buffer, file: EncryptedFile): Buffer {
  const { url: _url, ...info } = file;
  return Buffer.from(Attachment.decrypt(new EncryptedAttachment(new Uint8Array(ciphertext), JSON.stringify(info))));
}

describe(`end-to-end encrypted organisation rooms (${suitesOnSynapse() ? "Synapse" : "test homeserver"})`, () => {
  let stack: Stack;
  let anna: TestUser;
  let ben: TestUser;
  let roomId: string;
  /** The event of the test of the fail-closed rule: undecryptable on purpose. */
  let bogusEventId = "";

  const cryptoUser = async (prefix: string): Promise<TestUser> => {
    const user = await stack.user(prefix);
    await user.client.initRustCrypto({ useIndexedDB: false });
    await user.start();
    return user;
  };

  /** The event as `user`'s client has it, once decrypted; fails on a decryption failure (of an event sent at `since` or later). */
  const decrypted = async (user: TestUser, room: string, what: string, predicate: (e: MatrixEvent) => boolean, timeoutMs = 30_000, since = 0): Promise<MatrixEvent> => {
    const event = await user.until(what, () => user.timeline(room).find((e) => e.getId() !== bogusEventId && e.getTs() >= since && !e.isBeingDecrypted() && !e.shouldAttemptDecryption() && (e.isDecryptionFailure() || predicate(e))), timeoutMs);
    assert.equal(event.isDecryptionFailure(), false, `${user.userId} decrypts ${event.getId()} of ${event.getSender()} at ${event.getTs()}: ${event.decryptionFailureReason ?? ""}`);
    assert.equal(event.getWireType(), EventType.RoomMessageEncrypted, "the homeserver holds only ciphertext");
    return event;
  };
  const fromBot = (e: MatrixEvent) => e.getSender() === stack.botUserId;
  const undecryptable = (user: TestUser, room: string): string[] =>
    user
      .timeline(room)
      .filter((e) => e.isDecryptionFailure() && e.getId() !== bogusEventId)
      .map((e) => `${e.getId()} (${e.decryptionFailureReason})`);

  const sendDocument = async (org: string, body: Buffer, filename: string, reference: string): Promise<string> => {
    const res = await fetch(`${stack.publicUrl}/api/v1/organisations/${org}/documents?${new URLSearchParams({ filename, kind: "Bescheid", reference })}`, {
      method: "POST",
      headers: { authorization: `Bearer ${stack.adminToken}`, "content-type": "application/octet-stream" },
      body: new Uint8Array(body),
    });
    const answer = (await res.json()) as { id: string };
    assert.equal(res.status, 202, JSON.stringify(answer));
    return answer.id;
  };

  /** The clerk receives a document as Element would: the event decrypted, the file downloaded and decrypted. */
  const receiveDocument = async (user: TestUser, room: string, filename: string): Promise<Buffer> => {
    const event = await decrypted(user, room, `the document ${filename}`, (e) => fromBot(e) && e.getContent().msgtype === MsgType.File && e.getContent().body === filename);
    const content = event.getContent<{ file?: EncryptedFile; url?: string }>();
    assert.equal(content.url, undefined, "no clear media URL");
    assert.ok(content.file, "an encrypted attachment");
    const download = await user.download(content.file.url);
    assert.equal(download.status, 200);
    return decryptAttachment(download.body, content.file);
  };

  before(async () => {
    await initAsync();
    // A few tries only before an event counts as undecryptable (1 s, 2 s, 4 s), so the test of that rule is short.
    stack = await startStack({ name: "e2ee-rooms", encryption: true, childProcess: true, configure: (c) => void (c.e2ee = { ...(c.e2ee as Json), decryptAttempts: 4 }) });
    anna = await cryptoUser("anna");
    ben = await cryptoUser("ben");
    const created = await stack.api("POST", "/api/v1/organisations", {
      id: "kreis-nord",
      name: "Kreis Nord",
      clerks: [
        { matrixId: anna.userId, email: "anna@kreis-nord.example", name: "Anna" },
        { matrixId: ben.userId, email: "ben@kreis-nord.example", name: "Ben" },
      ],
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    roomId = await stack.roomOf("kreis-nord");
    for (const clerk of [anna, ben]) {
      await clerk.waitForInvite(roomId, 30_000);
      await clerk.join(roomId);
      await waitFor(`${clerk.userId} to know the room is encrypted`, () => clerk.client.getCrypto()!.isEncryptionEnabledInRoom(roomId));
    }
  });

  after(async () => {
    await stack?.stop();
  });

  it("makes the organisation's room encrypted, and the bot's device is ready", async () => {
    const encryption = (await stack.roomState(roomId)).find((e) => e.type === "m.room.encryption");
    assert.deepEqual(encryption?.content, { algorithm: "m.megolm.v1.aes-sha2" });
    let status = await stack.api<{ deviceId: string; ready: boolean; newRoomsEncrypted: boolean }>("GET", "/api/v1/encryption");
    await waitFor("the bot's device to be ready", async () => (status = await stack.api("GET", "/api/v1/encryption")).body.ready);
    assert.equal(status.status, 200);
    assert.deepEqual([status.body.deviceId, status.body.ready, status.body.newRoomsEncrypted], ["KUVERT", true, true]);
    const devices = await anna.client.getCrypto()!.getUserDeviceInfo([stack.botUserId], true);
    const device = devices.get(stack.botUserId)?.get("KUVERT");
    assert.ok(device, "clerks see the bot's device KUVERT with its keys");
    const published = await stack.api<{ ed25519: string; crossSigned: boolean }>("GET", "/api/v1/encryption");
    assert.equal(device.getFingerprint(), published.body.ed25519, "the session key the API shows is the one clients see");
    // Cross-signed where the homeserver lets an appservice publish its first keys without interactive auth (current Synapse, MSC3967).
    const verification = await anna.client.getCrypto()!.getDeviceVerificationStatus(stack.botUserId, "KUVERT");
    assert.equal(published.body.crossSigned, !suitesOnSynapse());
    assert.equal(verification?.signedByOwner, !suitesOnSynapse(), "the device is signed by the bot's self-signing key");
  });

  it("a document reaches the clerks encrypted: the event and the file decrypt, bytes equal", async () => {
    const document = Buffer.from(`Beitragsbescheid ${randomBytes(8).toString("hex")}\n`.repeat(3000), "utf8");
    await sendDocument("kreis-nord", document, "bescheid-2026.txt", "AZ-1");
    for (const clerk of [anna, ben]) assert.deepEqual(await receiveDocument(clerk, roomId, "bescheid-2026.txt"), document, `${clerk.userId} has the document, bytes equal`);
    const announcement = await decrypted(anna, roomId, "the announcement", (e) => fromBot(e) && e.getContent().msgtype === MsgType.Notice && String(e.getContent().body).includes("AZ-1"));
    assert.match(String(announcement.getContent().body), /AZ-1/);
    // The homeserver's media store holds ciphertext only.
    const event = anna.timeline(roomId).find((e) => fromBot(e) && e.getContent().body === "bescheid-2026.txt")!;
    const stored = await stack.download(event.getContent<{ file: EncryptedFile }>().file.url);
    assert.ok(stored && stored.length === document.length && !stored.equals(document), "the homeserver stores the ciphertext");
  });

  it("a circular reaches the encrypted room encrypted, its attachment as an encrypted file, and no clear copy is uploaded", async () => {
    const attachment = Buffer.from(`Beitragsordnung ${randomBytes(8).toString("hex")}\n`.repeat(400), "utf8");
    const form = new FormData();
    form.append("text", "Neue Beitragsordnung, siehe Anlage.");
    form.append("targets", JSON.stringify({ all: true }));
    form.append("attachment", new Blob([new Uint8Array(attachment)], { type: "text/plain" }), "beitragsordnung.txt");
    const res = await fetch(`${stack.publicUrl}/api/v1/circulars`, { method: "POST", headers: { authorization: `Bearer ${stack.adminToken}` }, body: form });
    const circular = (await res.json()) as { id: string };
    assert.equal(res.status, 201, JSON.stringify(circular));
    const text = await decrypted(anna, roomId, "the circular", (e) => fromBot(e) && String(e.getContent().body).includes("Neue Beitragsordnung"), 60_000);
    assert.equal(text.getContent().msgtype, MsgType.Text);
    assert.deepEqual(await receiveDocument(anna, roomId, "beitragsordnung.txt"), attachment, "the attachment decrypts, bytes equal");
    const status = await stack.api<{ attachments: { mxcUri: string | null }[] }>("GET", `/api/v1/circulars/${circular.id}`);
    assert.equal(status.body.attachments[0]!.mxcUri, null, "only the encrypted copy went to the homeserver");
  });

  it("a file staff post in the encrypted staff room goes with their !circular: decrypted, checked, scanned and encrypted again for the room", async () => {
    const db = await openDatabase({ ...stack.config.database, poolSize: 1 });
    const staffRoomId = await db.query<{ room_id: string }>("SELECT room_id FROM service_rooms WHERE purpose = 'staff'").finally(() => db.close());
    const staffRoom = staffRoomId.rows[0]!.room_id;
    const staff = stack.staff;
    await staff.client.initRustCrypto({ useIndexedDB: false });
    await staff.start();
    await staff.waitForInvite(staffRoom, 30_000);
    await staff.join(staffRoom);
    await waitFor("staff to know the staff room is encrypted", () => staff.client.getCrypto()!.isEncryptionEnabledInRoom(staffRoom));
    // Staff's device is new: what Kuvert said in the staff room before it learnt of the device (the
    // last circular's progress, say) was never shared with it, as in Element after a new login.
    const since = Date.now();
    const merkblatt = Buffer.from(`Merkblatt ${randomBytes(8).toString("hex")}\n`.repeat(300), "utf8");
    const encrypted = Attachment.encrypt(new Uint8Array(merkblatt));
    const upload = await staff.client.uploadContent(new Uint8Array(encrypted.encryptedData), { type: "application/octet-stream", includeFilename: false });
    await staff.client.sendEvent(staffRoom, EventType.RoomMessage, {
      msgtype: MsgType.File,
      body: "merkblatt.txt",
      info: { mimetype: "text/plain", size: merkblatt.length },
      file: { ...(JSON.parse(encrypted.mediaEncryptionInfo!) as Omit<EncryptedFile, "url">), url: upload.content_uri },
    });
    const command = await staff.say(staffRoom, "!circular org:kreis-nord\nBitte beachten Sie das Merkblatt.");
    // The answer, found by its relation, which Megolm leaves in the clear: it must decrypt.
    const reply = await staff.until(
      "the answer to !circular",
      () => staff.timeline(staffRoom).find((e) => fromBot(e) && !e.isBeingDecrypted() && !e.shouldAttemptDecryption() && (e.getWireContent()["m.relates_to"] as { "m.in_reply_to"?: { event_id?: string } } | undefined)?.["m.in_reply_to"]?.event_id === command),
      60_000,
    );
    assert.equal(reply.isDecryptionFailure(), false, `staff decrypt the answer: ${reply.decryptionFailureReason ?? ""}`);
    assert.match(String(reply.getContent().body), /mit 1 Anlage/);
    await decrypted(anna, roomId, "the circular from the staff room", (e) => fromBot(e) && String(e.getContent().body).includes("Merkblatt"), 60_000);
    assert.deepEqual(await receiveDocument(anna, roomId, "merkblatt.txt"), merkblatt, "the attachment reaches the room encrypted, bytes equal");
    const sent = anna.timeline(roomId).find((e) => fromBot(e) && e.getContent().body === "merkblatt.txt")!;
    assert.notEqual(sent.getContent<{ file: EncryptedFile }>().file.url, upload.content_uri, "encrypted again with a key of its own, not the staff room's");
    assert.deepEqual(
      undecryptable(staff, staffRoom).filter((e) => (staff.room(staffRoom)?.findEventById(e.split(" ")[0]!)?.getTs() ?? 0) >= since),
      [],
    );
  });

  it("staff verify the bot's device from their client (emoji, SAS): an admin compares the emoji Kuvert shows, and both devices trust each other", async () => {
    // Staff have a crypto device since the test before. They start "Verify session" on the bot's KUVERT, as in Element.
    const staff = stack.staff;
    const crypto = staff.client.getCrypto()!;
    const request = await crypto.requestDeviceVerification(stack.botUserId, "KUVERT");
    await waitFor("Kuvert to accept the request", () => request.phase === VerificationPhase.Ready, 30_000);
    const verifier = await request.startVerification("m.sas.v1");
    const shown = new Promise<ShowSasCallbacks>((resolve) => verifier.once(VerifierEvent.ShowSas, resolve));
    const verified = verifier.verify();
    const sas = await shown;
    const emoji = sas.sas.emoji!.map(([symbol]) => symbol);
    assert.equal(emoji.length, 7);

    // The admin sees the same seven emoji through the API (kuvert encryption verifications) and says they match.
    let pending: { flowId: string; state: string; userId: string; emoji: { symbol: string }[] | null } | undefined;
    await waitFor("the emoji in Kuvert's API", async () => {
      const list = await stack.api<{ verifications: NonNullable<typeof pending>[] }>("GET", "/api/v1/encryption/verifications");
      pending = list.body.verifications.find((v) => v.flowId === request.transactionId && v.state === "comparing");
      return pending !== undefined;
    });
    assert.deepEqual(
      pending!.emoji!.map((e) => e.symbol),
      emoji,
      "Kuvert shows the emoji Element shows",
    );
    assert.equal(pending!.userId, staff.userId);
    const early = await stack.api<{ errcode: string }>("POST", "/api/v1/encryption/verifications/no-such-flow", { match: true });
    assert.deepEqual([early.status, early.body.errcode], [404, "KUVERT_NOT_FOUND"]);
    const decided = await stack.api("POST", `/api/v1/encryption/verifications/${encodeURIComponent(pending!.flowId)}`, { match: true });
    assert.equal(decided.status, 200, JSON.stringify(decided.body));
    const twice = await stack.api<{ errcode: string }>("POST", `/api/v1/encryption/verifications/${encodeURIComponent(pending!.flowId)}`, { match: true });
    assert.deepEqual([twice.status, twice.body.errcode], [409, "KUVERT_VERIFICATION_NOT_COMPARING"]);
    await sas.confirm();
    await verified;
    const status = await crypto.getDeviceVerificationStatus(stack.botUserId, "KUVERT");
    assert.equal(status?.localVerified, true, "the staff member's client trusts the bot's device");
    await waitFor("Kuvert to record the verification as done", async () => {
      const list = await stack.api<{ verifications: { flowId: string; state: string }[] }>("GET", "/api/v1/encryption/verifications");
      return list.body.verifications.some((v) => v.flowId === pending!.flowId && v.state === "verified");
    });
  });

  it("staff verify the bot as Element verifies another user, in a direct message room (where the bot is cross-signed; on Synapse 1.67 it has no identity for that, and Element verifies its session as in the test before)", async () => {
    const staff = stack.staff;
    const crypto = staff.client.getCrypto()!;
    // Element sets up cross-signing at a user's first sign-in; verifying a user needs it on both sides.
    await staff.bootstrapCrossSigning();
    const { room_id: dm } = await staff.client.createRoom({ is_direct: true, invite: [stack.botUserId], initial_state: [{ type: EventType.RoomEncryption, state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } }] });
    await staff.until("the bot to join the direct message room", () => staff.room(dm)?.getMember(stack.botUserId)?.membership === "join", 30_000);
    await waitFor("staff to know the room is encrypted", () => crypto.isEncryptionEnabledInRoom(dm));
    if (suitesOnSynapse()) {
      await assert.rejects(crypto.requestVerificationDM(stack.botUserId, dm), /unknown userId/, "no cross-signing identity of the bot to verify");
      return;
    }
    const request = await crypto.requestVerificationDM(stack.botUserId, dm);
    await waitFor("Kuvert to accept the request", () => request.phase === VerificationPhase.Ready, 30_000);
    const verifier = await request.startVerification("m.sas.v1");
    const shown = new Promise<ShowSasCallbacks>((resolve) => verifier.once(VerifierEvent.ShowSas, resolve));
    const verified = verifier.verify();
    const sas = await shown;
    let flowId = "";
    await waitFor("the emoji in Kuvert's API", async () => {
      const list = await stack.api<{ verifications: { flowId: string; state: string; emoji: { symbol: string }[] | null }[] }>("GET", "/api/v1/encryption/verifications");
      const found = list.body.verifications.find((v) => v.flowId === request.transactionId && v.state === "comparing");
      if (found) {
        assert.deepEqual(
          found.emoji!.map((e) => e.symbol),
          sas.sas.emoji!.map(([symbol]) => symbol),
        );
        flowId = found.flowId;
      }
      return flowId !== "";
    });
    assert.equal((await stack.api("POST", `/api/v1/encryption/verifications/${encodeURIComponent(flowId)}`, { match: true })).status, 200);
    await sas.confirm();
    await verified;
    const device = await crypto.getDeviceVerificationStatus(stack.botUserId, "KUVERT");
    assert.equal(device?.isVerified(), true, "the staff member's client trusts the bot's device");
    // Where the bot is cross-signed (current Synapse), the staff member has verified the bot as a user.
    await waitFor("staff to trust the bot as a user", async () => (await crypto.getUserVerificationStatus(stack.botUserId)).isCrossSigningVerified(), 10_000);
  });

  it("a verification from someone who is not staff is refused", async () => {
    const request = await anna.client.getCrypto()!.requestDeviceVerification(stack.botUserId, "KUVERT");
    await waitFor("Kuvert to refuse the request", () => request.phase === VerificationPhase.Cancelled, 30_000);
  });

  it("an encrypted event Kuvert cannot decrypt is redacted after its tries, and the room told why (fail-closed)", async () => {
    // Megolm ciphertext of a session Kuvert never got a key for: nothing in it could be scanned.
    const crypto = anna.client.getCrypto()!;
    const keys = await crypto.getOwnDeviceKeys();
    const res = await fetch(`${stack.access.url}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.encrypted/bogus-${randomBytes(4).toString("hex")}`, {
      method: "PUT",
      headers: { authorization: `Bearer ${anna.client.getAccessToken()}`, "content-type": "application/json" },
      body: JSON.stringify({ algorithm: "m.megolm.v1.aes-sha2", sender_key: keys.curve25519, device_id: anna.client.getDeviceId(), session_id: randomBytes(32).toString("base64").replace(/=+$/, ""), ciphertext: randomBytes(120).toString("base64").replace(/=+$/, "") }),
    });
    assert.equal(res.status, 200);
    bogusEventId = ((await res.json()) as { event_id: string }).event_id;
    await anna.until(
      "the undecryptable event to be redacted",
      () =>
        anna
          .timeline(roomId)
          .find((e) => e.getId() === bogusEventId)
          ?.isRedacted(),
      60_000,
    );
    const told = await decrypted(anna, roomId, "the room told why", (e) => fromBot(e) && /nicht entschlüsseln/.test(String(e.getContent().body)), 30_000);
    assert.match(String(told.getContent().body), /noch einmal/);
  });

  it("a clerk's encrypted command is decrypted and answered, encrypted", async () => {
    const commandId = await anna.say(roomId, "!help");
    const reply = await decrypted(anna, roomId, "the answer to !help", (e) => fromBot(e) && e.replyEventId === commandId, 60_000);
    assert.ok(String(reply.getContent().body).length > 20, "a real answer");
  });

  it("EICAR sent encrypted by a clerk is redacted, its media quarantined, and the room told why", async () => {
    const encrypted = Attachment.encrypt(new Uint8Array(EICAR));
    const file = JSON.parse(encrypted.mediaEncryptionInfo!) as Omit<EncryptedFile, "url">;
    const upload = await anna.client.uploadContent(new Uint8Array(encrypted.encryptedData), { type: "application/octet-stream", includeFilename: false });
    const { event_id: eventId } = await anna.client.sendEvent(roomId, EventType.RoomMessage, {
      msgtype: MsgType.File,
      body: "rechnung.pdf",
      info: { mimetype: "application/pdf", size: EICAR.length },
      file: { ...file, url: upload.content_uri },
    });
    await anna.until(
      "the infected upload to be redacted",
      () =>
        anna
          .timeline(roomId)
          .find((e) => e.getId() === eventId)
          ?.isRedacted(),
      60_000,
    );
    const told = await decrypted(anna, roomId, "the room told why", (e) => fromBot(e) && e.getContent().msgtype === MsgType.Notice && /rechnung\.pdf/.test(String(e.getContent().body)), 30_000);
    assert.match(String(told.getContent().body), /rechnung\.pdf/);
    await waitFor("the ciphertext to be quarantined", async () => (await stack.download(upload.content_uri)) === undefined, 30_000);
  });

  it("Kuvert killed with SIGKILL mid-conversation: restarted, it decrypts what was sent while it was down, and the clerk decrypts all it sends", async () => {
    // Something the device encrypts right before the kill (so its state changes just then).
    const before = await anna.say(roomId, "!help");
    await decrypted(anna, roomId, "the answer before the kill", (e) => fromBot(e) && e.replyEventId === before, 60_000);
    await stack.killKuvert();
    const whileDown = await anna.say(roomId, "!help");
    await stack.startKuvert(true);
    await decrypted(anna, roomId, "the answer to what was sent while Kuvert was down", (e) => fromBot(e) && e.replyEventId === whileDown, 90_000);
    const document = Buffer.from(`Nach dem Neustart ${randomBytes(8).toString("hex")}\n`.repeat(50), "utf8");
    await sendDocument("kreis-nord", document, "nach-neustart.txt", "AZ-2");
    assert.deepEqual(await receiveDocument(ben, roomId, "nach-neustart.txt"), document);
  });

  it("a clerk removed from the organisation gets no key for what comes after", async () => {
    const lastForBen = anna
      .timeline(roomId)
      .filter((e) => fromBot(e))
      .at(-1)!;
    const sessionBefore = lastForBen.getWireContent().session_id as string;
    const removed = await stack.api("DELETE", `/api/v1/organisations/kreis-nord/clerks/${encodeURIComponent(ben.userId)}`);
    assert.equal(removed.status, 200, JSON.stringify(removed.body));
    await anna.until("ben to be removed from the room", () => anna.room(roomId)?.getMember(ben.userId)?.membership === "leave", 30_000);
    await sendDocument("kreis-nord", Buffer.from("Nur für Anna\n"), "nur-anna.txt", "AZ-3");
    await receiveDocument(anna, roomId, "nur-anna.txt");
    const after = await decrypted(anna, roomId, "the document after the removal", (e) => fromBot(e) && e.getContent().body === "nur-anna.txt");
    assert.notEqual(after.getWireContent().session_id, sessionBefore, "the bot's Megolm session was replaced when Ben was removed");
    // Had Ben kept the ciphertext (a homeserver or its backups can hand it out), his crypto has no key for it.
    const ciphertext = new MatrixEvent({ ...after.event });
    await ben.client.decryptEventIfNeeded(ciphertext);
    assert.equal(ciphertext.isDecryptionFailure(), true, "Ben cannot decrypt what was sent after his removal");
    assert.equal(ciphertext.decryptionFailureReason, DecryptionFailureCode.MEGOLM_UNKNOWN_INBOUND_SESSION_ID);
  });

  it("an unencrypted room is switched to encryption, one way, in the console (or by the API); from then on everything in it is encrypted", async () => {
    // Kuvert as it was before organisations.encryption: its new rooms are unencrypted.
    await stack.stopKuvert();
    (stack.rawConfig.organisations as Json).encryption = false;
    await stack.startKuvert(true);
    const clara = await cryptoUser("clara");
    const created = await stack.api("POST", "/api/v1/organisations", { id: "kreis-sued", name: "Kreis Süd", clerks: [{ matrixId: clara.userId, email: "clara@kreis-sued.example" }] });
    assert.equal(created.status, 201);
    const sued = await stack.roomOf("kreis-sued");
    await clara.waitForInvite(sued, 30_000);
    await clara.join(sued);
    assert.equal(
      (await stack.roomState(sued)).find((e) => e.type === "m.room.encryption"),
      undefined,
      "made unencrypted",
    );
    await sendDocument("kreis-sued", Buffer.from("Noch unverschlüsselt\n"), "vorher.txt", "AZ-4");
    const plain = await clara.waitForEvent(sued, "the document in the clear", (e) => fromBot(e) && e.getContent().body === "vorher.txt", 30_000);
    assert.equal(plain.getWireType(), EventType.RoomMessage);

    const before = await stack.api<{ encrypted: boolean; available: boolean }>("GET", "/api/v1/organisations/kreis-sued/encryption");
    assert.deepEqual([before.status, before.body.encrypted, before.body.available], [200, false, true]);
    // An admin switches it in the console: the organisation's page offers it, after a confirmation.
    ensureConsoleBuilt();
    const browser = await chromium.launch(chromiumOptions);
    try {
      const page = await (await browser.newContext({ locale: "de-DE" })).newPage();
      await page.goto(`${stack.publicUrl}/console/`);
      await page.locator("#user").fill(stack.staff.userId.slice(1).split(":")[0]!);
      await page.locator("#password").fill(stack.staff.password);
      await page.keyboard.press("Enter");
      await page.getByRole("button", { name: "kreis-sued" }).click();
      await page.getByText("Ende-zu-Ende-Verschlüsselung: aus").waitFor();
      page.once("dialog", (d) => void d.accept());
      await page.getByRole("button", { name: "Verschlüsseln" }).click();
      await page.getByText("Der Raum ist jetzt Ende-zu-Ende-verschlüsselt.").waitFor();
      assert.ok(await page.getByText("Ende-zu-Ende-Verschlüsselung: an").isVisible());
      assert.equal(await page.getByRole("button", { name: "Verschlüsseln" }).count(), 0, "no switch for an encrypted room");
    } finally {
      await browser.close();
    }
    assert.deepEqual((await stack.roomState(sued)).find((e) => e.type === "m.room.encryption")?.content, { algorithm: "m.megolm.v1.aes-sha2" });
    await waitFor("Clara to know the room is encrypted", () => clara.client.getCrypto()!.isEncryptionEnabledInRoom(sued));
    await decrypted(clara, sued, "the room told it is encrypted now", (e) => fromBot(e) && e.getContent().msgtype === MsgType.Notice && /verschlüsselt/.test(String(e.getContent().body)));
    const document = Buffer.from("Für Kreis Süd, verschlüsselt\n");
    await sendDocument("kreis-sued", document, "nachher.txt", "AZ-5");
    assert.deepEqual(await receiveDocument(clara, sued, "nachher.txt"), document);
    // Once more (by the API) changes nothing: there is no way back.
    const again = await stack.api<{ switchedNow: boolean }>("POST", "/api/v1/organisations/kreis-sued/encryption");
    assert.deepEqual([again.status, again.body.switchedNow], [200, false]);
    const missing = await stack.api<{ errcode: string }>("POST", "/api/v1/organisations/no-such-org/encryption");
    assert.deepEqual([missing.status, missing.body.errcode], [404, "KUVERT_NOT_FOUND"]);
    assert.deepEqual(undecryptable(clara, sued), []);
  });

  it("no undecryptable event on either side", async () => {
    assert.deepEqual(undecryptable(anna, roomId), [], "Anna decrypts everything");
    const db = await openDatabase({ ...stack.config.database, poolSize: 1 });
    try {
      const { rows } = await db.query<{ object: string }>("SELECT object FROM audit_log WHERE action = 'event.undecryptable'");
      assert.deepEqual(
        rows.map((r) => r.object),
        [bogusEventId],
        "Kuvert decrypted every event but the one made undecryptable",
      );
      const decryptedEvents = await db.query<{ n: string }>("SELECT count(*) AS n FROM inbound_events WHERE event->'unsigned' ? 'io.kuvert.encrypted' AND state = 'done'");
      assert.ok(Number(decryptedEvents.rows[0]!.n) >= 4, "Kuvert decrypted the clerks' commands and files");
    } finally {
      await db.close();
    }
  });
});
