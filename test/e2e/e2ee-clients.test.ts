// End-to-end encryption between real clients, no Kuvert: three matrix-js-sdk clients with its Rust
// crypto (@matrix-org/matrix-sdk-crypto-wasm) in an encrypted room, on the test homeserver in
// pass 1 and on a real Synapse in pass 2. It shows that the homeserver carries what Olm and Megolm
// need (device and one-time keys, to-device messages, device-list changes, cross-signing keys) so
// that every message and an encrypted attachment decrypt, and that a member who leaves gets no key
// for what is sent after (the sender's Megolm session is rotated).
//
// The crypto store is the wasm's in-memory store (`useIndexedDB: false`): Node has no IndexedDB,
// and these clients live for one suite, so nothing needs to survive a restart. (The sdk leaves
// request and decryption timers behind after stopClient; npm test runs with --test-force-exit.)
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { TestHomeserver } from "@kuvert/test-homeserver";
import { Attachment, EncryptedAttachment, initAsync } from "@matrix-org/matrix-sdk-crypto-wasm";
import { EventType, MatrixEvent, MsgType } from "matrix-js-sdk";
import type { EncryptedFile } from "matrix-js-sdk/lib/@types/media.js";
import { DecryptionFailureCode } from "matrix-js-sdk/lib/crypto-api/index.js";
import { artifactsDir, suitesOnSynapse, testServerName, waitFor } from "../support/harness.ts";
import { TestUser, type HomeserverAccess } from "../support/matrix.ts";
import { startSynapse, type Synapse } from "../support/synapse.ts";
import { tempDir } from "../support/tmp.ts";

/**
 * CS API §"Sending encrypted attachments", as Element's own crypto does it
 * (matrix-sdk-crypto-wasm's Attachment): the file as AES-256-CTR ciphertext, and the JWK, IV and
 * SHA-256 that decrypt and check it.
 */
function encryptAttachment(plain: Buffer): { ciphertext: Buffer; file: Omit<EncryptedFile, "url"> } {
  const encrypted = Attachment.encrypt(new Uint8Array(plain));
  return { ciphertext: Buffer.from(encrypted.encryptedData), file: JSON.parse(encrypted.mediaEncryptionInfo!) as Omit<EncryptedFile, "url"> };
}

/** Decrypts a downloaded attachment; throws when the ciphertext lacks the hash the event names. */
function decryptAttachment(ciphertext: Buffer, file: EncryptedFile): Buffer {
  const { url: _url, ...info } = file;
  return Buffer.from(Attachment.decrypt(new EncryptedAttachment(new Uint8Array(ciphertext), JSON.stringify(info))));
}

describe(`end-to-end encryption between matrix-js-sdk clients (${suitesOnSynapse() ? "Synapse" : "test homeserver"})`, () => {
  let hs: TestHomeserver | undefined;
  let synapse: Synapse | undefined;
  let access: HomeserverAccess;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  let roomId: string;

  /** A client with Rust crypto, syncing. */
  const cryptoUser = async (prefix: string): Promise<TestUser> => {
    const user = await TestUser.create(access, prefix);
    await user.client.initRustCrypto({ useIndexedDB: false });
    await user.start();
    return user;
  };

  /** Waits until `user` has the event decrypted (or its decryption failed) and answers it. */
  const decrypted = async (user: TestUser, eventId: string): Promise<MatrixEvent> => {
    const event = await user.waitForEvent(roomId, `event ${eventId}`, (e) => e.getId() === eventId);
    await user.until(`${eventId} decrypted`, () => !event.isBeingDecrypted() && !event.shouldAttemptDecryption() && event.getClearContent() !== null, 20_000);
    assert.equal(event.isDecryptionFailure(), false, `${user.userId} decrypts ${eventId}: ${event.decryptionFailureReason ?? ""}`);
    return event;
  };

  const undecryptable = (user: TestUser): string[] =>
    user
      .timeline(roomId)
      .filter((e) => e.isDecryptionFailure())
      .map((e) => `${e.getId()} (${e.decryptionFailureReason})`);

  before(async () => {
    await initAsync();
    if (suitesOnSynapse()) {
      mkdirSync(join(artifactsDir, "logs"), { recursive: true });
      synapse = await startSynapse({ dir: tempDir("e2ee-clients-"), logFile: join(artifactsDir, "logs", "e2ee-clients.synapse.log") });
      access = synapse;
    } else {
      const adminToken = `admin-${randomBytes(16).toString("hex")}`;
      hs = new TestHomeserver({ serverName: testServerName(), adminToken });
      await hs.start();
      access = { url: hs.url, serverName: hs.serverName, adminToken };
    }
    [alice, bob, carol] = await Promise.all([cryptoUser("alice"), cryptoUser("bob"), cryptoUser("carol")]);
  });

  after(async () => {
    for (const user of [alice, bob, carol]) user?.stop();
    await hs?.stop();
    await synapse?.stop();
  });

  it("cross-signs a device as Element does at setup, and the others see the identity", async () => {
    const crypto = alice.client.getCrypto()!;
    await alice.bootstrapCrossSigning();
    const status = await crypto.getCrossSigningStatus();
    assert.deepEqual(status, { publicKeysOnDevice: true, privateKeysInSecretStorage: false, privateKeysCachedLocally: { masterKey: true, selfSigningKey: true, userSigningKey: true } });
    const own = await crypto.getDeviceVerificationStatus(alice.userId, alice.client.getDeviceId()!);
    assert.equal(own?.signedByOwner, true, "alice's device is signed by her self-signing key");
    const seen = await bob.client.getCrypto()!.getUserVerificationStatus(alice.userId);
    assert.equal(seen.isCrossSigningVerified(), false, "bob has not verified alice, but knows her identity");
    const identity = await bob.client.getCrypto()!.getUserDeviceInfo([alice.userId], true);
    assert.equal(identity.get(alice.userId)?.get(alice.client.getDeviceId()!)?.userId, alice.userId);
  });

  it("members exchange encrypted messages and an encrypted attachment, and each decrypts the others'", async () => {
    const created = await alice.client.createRoom({
      name: "Encrypted",
      initial_state: [{ type: EventType.RoomEncryption, state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } }],
    });
    roomId = created.room_id;
    for (const user of [bob, carol]) {
      await alice.client.invite(roomId, user.userId);
      await user.waitForInvite(roomId);
      await user.join(roomId);
    }
    await alice.until("bob and carol joined", () => alice.room(roomId)?.getJoinedMemberCount() === 3);
    for (const user of [alice, bob, carol]) {
      await waitFor(`${user.userId} to know the room is encrypted`, () => user.client.getCrypto()!.isEncryptionEnabledInRoom(roomId));
    }

    const fromAlice = await alice.say(roomId, "Guten Morgen, verschlüsselt");
    const fromBob = await bob.say(roomId, "Antwort von Bob");
    for (const [user, eventId, body] of [
      [bob, fromAlice, "Guten Morgen, verschlüsselt"],
      [carol, fromAlice, "Guten Morgen, verschlüsselt"],
      [alice, fromBob, "Antwort von Bob"],
      [carol, fromBob, "Antwort von Bob"],
    ] as const) {
      const event = await decrypted(user, eventId);
      assert.equal(event.getWireType(), EventType.RoomMessageEncrypted, "the homeserver only ever held ciphertext");
      assert.equal(event.getContent().body, body);
    }

    const document = Buffer.from(`Bescheid ${randomBytes(8).toString("hex")}\n`.repeat(200), "utf8");
    const { ciphertext, file } = encryptAttachment(document);
    const upload = await bob.client.uploadContent(new Uint8Array(ciphertext), { type: "application/octet-stream", includeFilename: false });
    const { event_id: fileEventId } = await bob.client.sendEvent(roomId, EventType.RoomMessage, {
      msgtype: MsgType.File,
      body: "bescheid.txt",
      info: { mimetype: "text/plain", size: document.length },
      file: { ...file, url: upload.content_uri },
    });
    for (const user of [alice, carol]) {
      const event = await decrypted(user, fileEventId);
      const received = event.getContent<{ file: EncryptedFile }>();
      const download = await user.download(received.file.url);
      assert.equal(download.status, 200);
      assert.deepEqual(download.body, ciphertext, "the homeserver stores the ciphertext only");
      assert.deepEqual(decryptAttachment(download.body, received.file), document, `${user.userId} decrypts the attachment, bytes equal`);
    }
    for (const user of [alice, bob, carol]) assert.deepEqual(undecryptable(user), [], `${user.userId}: no undecryptable events`);
  });

  it("a member who leaves gets no key for what is sent after (Megolm rotation on leave)", async () => {
    const beforeId = await alice.say(roomId, "Noch alle drei");
    const sessionBefore = (await decrypted(carol, beforeId)).getWireContent().session_id as string;

    await carol.client.leave(roomId);
    await alice.until("carol has left", () => alice.room(roomId)?.getMember(carol.userId)?.membership === "leave");
    const afterId = await alice.say(roomId, "Nur noch zwei");
    const afterForBob = await decrypted(bob, afterId);
    assert.equal(afterForBob.getContent().body, "Nur noch zwei");
    const sessionAfter = afterForBob.getWireContent().session_id as string;
    assert.notEqual(sessionAfter, sessionBefore, "alice's Megolm session was replaced when carol left");

    // Carol no longer receives the room; had she kept the ciphertext (a homeserver or its backups
    // can hand it out), her crypto has no key for it.
    const ciphertext = new MatrixEvent({ ...afterForBob.event });
    assert.equal(ciphertext.getType(), EventType.RoomMessageEncrypted);
    await carol.client.decryptEventIfNeeded(ciphertext);
    assert.equal(ciphertext.isDecryptionFailure(), true, "carol cannot decrypt what was sent after she left");
    assert.equal(ciphertext.decryptionFailureReason, DecryptionFailureCode.MEGOLM_UNKNOWN_INBOUND_SESSION_ID);

    for (const user of [alice, bob, carol]) assert.deepEqual(undecryptable(user), [], `${user.userId}: no undecryptable events`);
  });
});
