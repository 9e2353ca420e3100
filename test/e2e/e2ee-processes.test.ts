// Two Kuvert processes on one PostgreSQL behind the deployment's balancer (HAProxy), in an
// end-to-end-encrypted organisation room: exactly one of them owns the bot's device at a time (the
// lease "e2ee-device"), and both send encrypted, since the other's sends go through the owner. The
// owner is killed with SIGKILL while documents and a clerk's commands flow through both; the other
// process takes the device over from the database and goes on with it. What the clerk sees shows
// that nothing was lost, nothing came twice and every event decrypts.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Attachment, EncryptedAttachment, initAsync } from "@matrix-org/matrix-sdk-crypto-wasm";
import { EventType, MsgType, type MatrixEvent } from "matrix-js-sdk";
import type { EncryptedFile } from "matrix-js-sdk/lib/@types/media.js";
import { openDatabase, type Database } from "../../appservice/db/database.ts";
import type { Balancer } from "../support/haproxy.ts";
import { startStack, suitesOnSynapse, waitFor, type Stack } from "../support/harness.ts";
import type { TestUser } from "../support/matrix.ts";
import { processesBehindBalancer, type KuvertProcess } from "../support/processes.ts";

const DOCS = 12;

describe(`two Kuvert processes and one bot device in an encrypted room (${suitesOnSynapse() ? "Synapse" : "test homeserver"})`, () => {
  let stack: Stack;
  let db: Database;
  let balancer: Balancer | undefined;
  const processes: KuvertProcess[] = [];
  let anna: TestUser;
  let roomId: string;

  /** The process whose worker id holds the device's lease now (its pid is the id's first part). */
  const owner = async (): Promise<KuvertProcess | undefined> => {
    const { rows } = await db.query<{ holder: string }>("SELECT holder FROM leaders WHERE name = 'e2ee-device' AND lease_until > now()");
    const pid = Number(rows[0]?.holder.split("-")[0]);
    return processes.find((p) => p.running && p.pid === pid);
  };

  const sendDocument = async (process: KuvertProcess, n: number): Promise<void> => {
    const res = await fetch(`http://127.0.0.1:${process.publicPort}/api/v1/organisations/kreis-ost/documents?${new URLSearchParams({ filename: `bescheid-${n}.txt`, reference: `AZ-${n}` })}`, {
      method: "POST",
      headers: { authorization: `Bearer ${stack.adminToken}`, "content-type": "application/octet-stream" },
      body: new TextEncoder().encode(`Bescheid Nummer ${n}\n`.repeat(100)),
    });
    assert.equal(res.status, 202, await res.text());
  };

  const decryptedFromBot = (e: MatrixEvent) => e.getSender() === stack.botUserId && !e.isBeingDecrypted() && !e.shouldAttemptDecryption();

  before(async () => {
    await initAsync();
    stack = await startStack({ name: "e2ee-processes", encryption: true, childProcess: true });
    const started = await processesBehindBalancer(stack, ["p1", "p2"]);
    processes.push(...started.processes);
    balancer = started.balancer;
    db = await openDatabase({ url: stack.config.database.url, embeddedDir: join(stack.workDir, "db"), poolSize: 2 });
    anna = await stack.user("anna");
    await anna.client.initRustCrypto({ useIndexedDB: false });
    await anna.start();
    const created = await stack.api("POST", "/api/v1/organisations", { id: "kreis-ost", name: "Kreis Ost", clerks: [{ matrixId: anna.userId, email: "anna@kreis-ost.example" }] });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    roomId = await stack.roomOf("kreis-ost");
    await anna.waitForInvite(roomId, 30_000);
    await anna.join(roomId);
    await waitFor("Anna to know the room is encrypted", () => anna.client.getCrypto()!.isEncryptionEnabledInRoom(roomId));
  });

  after(async () => {
    await Promise.all(processes.map((p) => p.stop()));
    await balancer?.stop();
    await db?.close();
    await stack?.stop();
  });

  it("one process owns the device; the owner killed, the other takes it over, and the clerk decrypts everything both send, once each", async () => {
    let first: KuvertProcess | undefined;
    await waitFor("one of the two processes to own the bot's device", async () => (first = await owner()) !== undefined, 30_000, 250);
    if (!first) throw new Error("no owner");
    const other = processes.find((p) => p !== first)!;
    // The owner takes the lease first and saves the device's state after: on a loaded machine the lease may be seen before the state.
    let stores: { owner: string }[] = [];
    await waitFor("the owner to save the device's state", async () => (stores = (await db.query<{ owner: string }>("SELECT owner FROM crypto_stores")).rows).length > 0, 30_000, 250);
    assert.equal(stores.length, 1, "one device state");
    const storeOwnerBefore = stores[0]!.owner;

    // Half the documents through each process, and a clerk's command, before the kill.
    for (let n = 0; n < DOCS / 2; n++) await sendDocument(n % 2 === 0 ? first : other, n);
    const commands = [await anna.say(roomId, "!help")];
    await waitFor("some documents to arrive", () => anna.timeline(roomId).filter((e) => decryptedFromBot(e) && e.getContent().msgtype === MsgType.File).length >= 2, 60_000);
    await first.kill();
    // While the owner is dead: documents through the surviving process, and another command.
    for (let n = DOCS / 2; n < DOCS; n++) await sendDocument(other, n);
    commands.push(await anna.say(roomId, "!help"));
    await waitFor("the other process to take the device over", async () => (await owner()) === other, 60_000, 250);
    await first.start();

    const files = (): MatrixEvent[] => anna.timeline(roomId).filter((e) => decryptedFromBot(e) && !e.isDecryptionFailure() && e.getContent().msgtype === MsgType.File);
    await anna.until(`${DOCS} documents`, () => files().length >= DOCS, 180_000);
    for (const commandId of commands) await anna.until(`the answer to ${commandId}`, () => anna.timeline(roomId).find((e) => decryptedFromBot(e) && e.replyEventId === commandId), 120_000);

    const names = files().map((e) => String(e.getContent().body));
    assert.deepEqual([...names].sort(), Array.from({ length: DOCS }, (_, n) => `bescheid-${n}.txt`).sort(), "every document once");
    for (const event of files().slice(0, 3)) {
      const file = event.getContent<{ file: EncryptedFile }>().file;
      const download = await anna.download(file.url);
      const { url: _url, ...info } = file;
      const plain = Buffer.from(Attachment.decrypt(new EncryptedAttachment(new Uint8Array(download.body), JSON.stringify(info)))).toString("utf8");
      assert.match(plain, /^Bescheid Nummer \d+\n/);
    }
    const failures = anna.timeline(roomId).filter((e) => e.isDecryptionFailure() || (e.getSender() === stack.botUserId && e.getWireType() !== EventType.RoomMessageEncrypted && e.getType() === EventType.RoomMessage));
    assert.deepEqual(
      failures.map((e) => `${e.getId()} ${e.decryptionFailureReason ?? e.getWireType()}`),
      [],
      "every message from the bot came encrypted and decrypts",
    );
    const { rows: after } = await db.query<{ owner: string }>("SELECT owner FROM crypto_stores");
    assert.notEqual(after[0]!.owner, storeOwnerBefore, "the device's state was taken over in the database");
    const { rows: undecryptable } = await db.query<{ n: string }>("SELECT count(*) AS n FROM audit_log WHERE action = 'event.undecryptable'");
    assert.equal(Number(undecryptable[0]!.n), 0, "Kuvert decrypted every event of the clerk");
  });
});
