// The bot device's inbox (appservice/e2ee/transactions.ts): what the homeserver's transactions
// bring for the device is stored in the transaction's own database transaction, a member's join is
// stored on its own; the owner reads what is committed, hands it to the device and deletes it. A
// row that commits after a later-numbered row was read must survive that read's deletion: it may
// hold a clerk's room key.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { openDatabase, type Database } from "../../appservice/db/database.ts";
import { migrate } from "../../appservice/db/migrate.ts";
import { DeviceInbox } from "../../appservice/e2ee/transactions.ts";
import { freshDatabaseUrl } from "../support/database.ts";

const BOT = "@kuvert:kuvert.test";
const DEVICE = "KUVERT";

describe("the bot device's inbox (PostgreSQL)", () => {
  // Two pools, as the transaction's handler and the owner's drain use connections of their own.
  let handler: Database;
  let owner: Database;

  before(async () => {
    const url = await freshDatabaseUrl("postgres");
    handler = await openDatabase({ url, embeddedDir: "", poolSize: 2 });
    owner = await openDatabase({ url, embeddedDir: "", poolSize: 2 });
    await migrate(handler);
  });
  after(async () => {
    await handler?.close();
    await owner?.close();
  });

  it("deletes only what it handed in: a transaction's room key committed after a later member's join was read is read next", async () => {
    const stored = new DeviceInbox(handler, BOT, DEVICE, () => undefined);
    const drained = new DeviceInbox(owner, BOT, DEVICE, () => undefined);
    const roomKey = { type: "m.room.encrypted", sender: "@anna:kuvert.test", to_user_id: BOT, to_device_id: DEVICE, content: { algorithm: "m.olm.v1.curve25519-aes-sha2", ciphertext: {} } };

    let commit!: () => void;
    const open = new Promise<void>((resolve) => (commit = resolve));
    let inserted!: () => void;
    const numbered = new Promise<void>((resolve) => (inserted = resolve));
    // The transaction's row takes its number first and commits last.
    const transaction = handler.transaction(async (tx) => {
      await stored.part().store(tx, "txn-1", { "de.sorunome.msc2409.to_device": [roomKey] });
      inserted();
      await open;
    });
    await numbered;
    await stored.memberJoined(handler, "@bert:kuvert.test");

    const first = await drained.next();
    assert.ok(first, "the member's join is there");
    assert.deepEqual(
      first.updates.map((u) => [u.toDevice.length, u.changed]),
      [[0, ["@bert:kuvert.test"]]],
      "only what is committed is read",
    );
    commit();
    await transaction;
    await drained.done(first.seqs);

    const second = await drained.next();
    assert.ok(second, "the room key is still there after the join's rows were deleted");
    assert.deepEqual(
      second.updates.map((u) => u.toDevice),
      [[{ type: roomKey.type, sender: roomKey.sender, to_user_id: BOT, to_device_id: DEVICE, content: roomKey.content }]],
    );
    await drained.done(second.seqs);
    assert.equal(await drained.next(), null, "nothing is left once both are handed in");
  });
});
