// The crypto store (appservice/e2ee/crypto-store.ts): an OlmMachine of matrix-sdk-crypto-wasm on
// fake-indexeddb, saved to the database (PGlite in memory) and restored into a new IndexedDB, as
// a new process would: the same device, its Olm and Megolm sessions still there, nothing readable
// in the table, only what changed written. And a bot process killed with SIGKILL, on an embedded
// database in a folder, starts again with what it had saved.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { after, before, describe, it } from "node:test";
import { IDBFactory } from "fake-indexeddb";
import { DecryptionSettings, DeviceId, DeviceLists, EncryptionSettings, initAsync, OlmMachine, ProcessedToDeviceEventType, RequestType, RoomId, StoreHandle, TrustRequirement, UserId, type ToDeviceRequest } from "@matrix-org/matrix-sdk-crypto-wasm";
import { openDatabase, type Database } from "../../appservice/db/database.ts";
import { migrate } from "../../appservice/db/migrate.ts";
import { CryptoStore, CryptoStoreTakenOverError } from "../../appservice/e2ee/crypto-store.ts";
import { tempDir } from "../support/tmp.ts";

// Strings: the wasm takes over (and frees) the UserId and DeviceId objects handed to it.
const BOT = "@kuvertbot:kuvert.example";
const BOT_DEVICE = "KUVERTBOT";
const CLERK = "@clerk:amt.example";
const CLERK_DEVICE = "CLERKPHONE";

interface KeysUpload {
  device_keys: { keys: Record<string, string> };
  one_time_keys: Record<string, unknown>;
}

interface Rows {
  count: number;
  bytes: number;
  sealed: Map<string, string>;
  raw: Buffer;
}

/** A new process's IndexedDB: the store restored into it from the table, and the bot's machine opened on it. */
async function startBot(db: Database, name: string, secret: Buffer): Promise<{ store: CryptoStore; machine: OlmMachine }> {
  const store = await CryptoStore.restore(db, { name, secret, factory: new IDBFactory() });
  const machine = await OlmMachine.initFromStore(new UserId(BOT), new DeviceId(BOT_DEVICE), await store.open(StoreHandle.openWithKey));
  return { store, machine };
}

async function rows(db: Database, name: string): Promise<Rows> {
  const result = await db.query<{ id: Uint8Array; sealed: Uint8Array }>("SELECT id, sealed FROM crypto_store_records WHERE store = $1", [name]);
  const owner = await db.query<{ name: string; owner: string }>("SELECT name, owner FROM crypto_stores WHERE name = $1", [name]);
  const sealed = new Map(result.rows.map((r) => [Buffer.from(r.id).toString("hex"), Buffer.from(r.sealed).toString("hex")]));
  const raw = Buffer.concat([...result.rows.flatMap((r) => [Buffer.from(r.id), Buffer.from(r.sealed)]), Buffer.from(JSON.stringify(owner.rows))]);
  return { count: result.rows.length, bytes: result.rows.reduce((sum, r) => sum + r.id.length + r.sealed.length, 0), sealed, raw };
}

async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const start = performance.now();
  const value = await fn();
  return { value, ms: performance.now() - start };
}

/** Publishes the bot's keys: the keys upload it produces, answered as the homeserver would. */
async function uploadKeys(machine: OlmMachine, store: CryptoStore): Promise<KeysUpload> {
  const upload = (await machine.outgoingRequests()).find((r) => r.type === RequestType.KeysUpload);
  assert.ok(upload?.id, "the machine asks to upload its keys");
  const body = JSON.parse(upload.body) as KeysUpload;
  await store.saveChanges(); // before the keys leave the process
  await machine.markRequestAsSent(upload.id, RequestType.KeysUpload, JSON.stringify({ one_time_key_counts: { signed_curve25519: Object.keys(body.one_time_keys).length } }));
  await store.saveChanges();
  return body;
}

/** A clerk's device that learns the bot's device from its keys upload and claims one of its one-time keys (as /keys/query and /keys/claim would answer). */
async function clerkWithSession(bot: KeysUpload): Promise<OlmMachine> {
  const clerk = await OlmMachine.initialize(new UserId(CLERK), new DeviceId(CLERK_DEVICE));
  await clerk.updateTrackedUsers([new UserId(BOT)]);
  for (const request of await clerk.outgoingRequests()) {
    if (request.type === RequestType.KeysQuery) await clerk.markRequestAsSent(request.id!, request.type, JSON.stringify({ device_keys: { [BOT]: { [BOT_DEVICE]: bot.device_keys } } }));
    else if (request.type === RequestType.KeysUpload) await clerk.markRequestAsSent(request.id!, request.type, JSON.stringify({ one_time_key_counts: { signed_curve25519: 50 } }));
  }
  const claim = await clerk.getMissingSessions([new UserId(BOT)]);
  assert.ok(claim, "the clerk has no Olm session with the bot yet");
  const [keyId, key] = Object.entries(bot.one_time_keys)[0]!;
  await clerk.markRequestAsSent(claim.id, claim.type, JSON.stringify({ one_time_keys: { [BOT]: { [BOT_DEVICE]: { [keyId]: key } } }, failures: {} }));
  return clerk;
}

/** The to-device events for the bot's device in what the clerk's machine asks to send, as the bot's /sync would bring them. */
function toDeviceEvents(requests: ToDeviceRequest[]): string {
  const events = requests.flatMap((request) => {
    const messages = (JSON.parse(request.body) as { messages: Record<string, Record<string, unknown>> }).messages;
    const content = messages[BOT]?.[BOT_DEVICE];
    return content === undefined ? [] : [{ sender: CLERK, type: request.event_type, content }];
  });
  assert.ok(events.length > 0, "the clerk sends the bot's device a to-device message");
  return JSON.stringify(events);
}

function roomEvent(roomId: string, eventId: string, encrypted: string): string {
  return JSON.stringify({ type: "m.room.encrypted", sender: CLERK, event_id: eventId, origin_server_ts: Date.now(), room_id: roomId, content: JSON.parse(encrypted) as unknown });
}

const appservice = join(import.meta.dirname, "..", "..", "appservice");

// The bot in a process of its own, on an embedded database in a folder, to be killed: it saves
// when told to, and answers over IPC.
const BOT_PROCESS = `
import { DecryptionSettings, DeviceId, DeviceLists, initAsync, OlmMachine, RequestType, RoomId, StoreHandle, TrustRequirement, UserId } from "@matrix-org/matrix-sdk-crypto-wasm";
const { openDatabase } = await import(${JSON.stringify(pathToFileURL(join(appservice, "db", "database.ts")).href)});
const { migrate } = await import(${JSON.stringify(pathToFileURL(join(appservice, "db", "migrate.ts")).href)});
const { CryptoStore } = await import(${JSON.stringify(pathToFileURL(join(appservice, "e2ee", "crypto-store.ts")).href)});
const [, dir, secret] = process.argv;
await initAsync();
const db = await openDatabase({ embeddedDir: dir, poolSize: 1 });
await migrate(db);
const store = await CryptoStore.restore(db, { name: "killed", secret });
const machine = await OlmMachine.initFromStore(new UserId(${JSON.stringify(BOT)}), new DeviceId(${JSON.stringify(BOT_DEVICE)}), await store.open(StoreHandle.openWithKey));
process.on("message", async (m) => {
  if (m.op === "upload") {
    const upload = (await machine.outgoingRequests()).find((r) => r.type === RequestType.KeysUpload);
    await store.saveChanges();
    await machine.markRequestAsSent(upload.id, upload.type, JSON.stringify({ one_time_key_counts: { signed_curve25519: 50 } }));
    await store.saveChanges();
    process.send({ body: upload.body });
  } else if (m.op === "receive") {
    await machine.receiveSyncChanges(m.events, new DeviceLists(), new Map(), new Set());
    if (m.save) await store.saveChanges();
    process.send({});
  } else if (m.op === "decrypt") {
    const decrypted = await machine.decryptRoomEvent(m.event, new RoomId(m.room), new DecryptionSettings(TrustRequirement.Untrusted)).catch(() => undefined);
    process.send({ body: decrypted && JSON.parse(decrypted.event).content.body });
  }
});
process.send({});
`;

interface BotProcess {
  ask(message: Record<string, unknown>): Promise<{ body?: string }>;
  kill9(): Promise<void>;
}

async function startBotProcess(dir: string, secret: string): Promise<BotProcess> {
  const child = spawn(process.execPath, ["--input-type=module", "-e", BOT_PROCESS, dir, secret], { cwd: join(appservice, ".."), stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const answer = () =>
    new Promise<{ body?: string }>((resolve, reject) => {
      const ended = (code: number | null) => reject(new Error(`the bot's process ended (${code})`));
      child.once("exit", ended);
      child.once("message", (message) => {
        child.off("exit", ended);
        resolve(message as { body?: string });
      });
    });
  await answer();
  return {
    ask: (message) => {
      const answered = answer();
      child.send(message);
      return answered;
    },
    kill9: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGKILL");
      await exited;
    },
  };
}

describe("the crypto store: an OlmMachine's IndexedDB saved to the database", () => {
  let db: Database;
  const secret = randomBytes(32);

  before(async () => {
    await initAsync();
    db = await openDatabase({ embeddedDir: "memory://", poolSize: 1 });
    await migrate(db);
  });
  after(async () => {
    await db.close();
  });

  it("restores a device into a new IndexedDB with the same identity keys and one-time keys", async (t) => {
    const first = await startBot(db, "identity", secret);
    const identity = { ed25519: first.machine.identityKeys.ed25519.toBase64(), curve25519: first.machine.identityKeys.curve25519.toBase64() };
    const upload = (await first.machine.outgoingRequests()).find((r) => r.type === RequestType.KeysUpload);
    assert.ok(upload);
    const body = JSON.parse(upload.body) as KeysUpload;
    assert.equal(body.device_keys.keys[`curve25519:${BOT_DEVICE}`], identity.curve25519);
    assert.deepEqual((await first.store.factory.databases()).map((d) => d.name).sort(), ["identity::matrix-sdk-crypto", "identity::matrix-sdk-crypto-meta"]);
    const saved = await first.store.saveChanges();
    assert.ok(saved.written > 5, "the schema and the account, device and meta records are written");
    const stored = await rows(db, "identity");
    assert.equal(stored.count, saved.written);
    t.diagnostic(`a new device, saved: ${stored.count} rows, ${stored.bytes} bytes`);
    first.machine.close();

    const restarted = await startBot(db, "identity", secret);
    assert.deepEqual({ ed25519: restarted.machine.identityKeys.ed25519.toBase64(), curve25519: restarted.machine.identityKeys.curve25519.toBase64() }, identity);
    // The upload not marked as sent is asked for again, with the keys already saved: none lost.
    const again = (await restarted.machine.outgoingRequests()).find((r) => r.type === RequestType.KeysUpload);
    assert.ok(again);
    assert.deepEqual((JSON.parse(again.body) as KeysUpload).one_time_keys, body.one_time_keys);
    assert.deepEqual(await restarted.store.saveChanges(), { read: 0, written: 0, deleted: 0, bytes: 0 }, "what was restored is not written again");
    restarted.machine.close();
  });

  describe("a room key from a clerk, across a restart", () => {
    const roomId = "!akte:kuvert.example";
    let bot: { store: CryptoStore; machine: OlmMachine };
    let clerk: OlmMachine;
    let roomKeys: { session_id: string; session_key: string }[] = [];

    before(async () => {
      bot = await startBot(db, "roundtrip", secret);
      clerk = await clerkWithSession(await uploadKeys(bot.machine, bot.store));
    });
    after(() => {
      bot.machine.close();
      clerk.close();
    });

    it("decrypts, after the restart, a room event with the Megolm session received before it", async (t) => {
      const share = await clerk.shareRoomKey(new RoomId(roomId), [new UserId(BOT)], new EncryptionSettings());
      const processed = await bot.machine.receiveSyncChanges(toDeviceEvents(share), new DeviceLists(), new Map([["signed_curve25519", 49]]), new Set());
      assert.deepEqual(
        processed.map((e) => e.type),
        [ProcessedToDeviceEventType.Decrypted],
      );
      const save = await timed(() => bot.store.saveChanges());
      assert.ok(save.value.written > 0);
      const idle = await timed(() => bot.store.saveChanges());
      assert.deepEqual(idle.value, { read: 0, written: 0, deleted: 0, bytes: 0 });
      const stored = await rows(db, "roundtrip");
      t.diagnostic(`after the to-device batch: saveChanges ${save.ms.toFixed(1)} ms (${save.value.written} rows, ${save.value.bytes} bytes); with no changes ${idle.ms.toFixed(1)} ms; ${stored.count} rows, ${stored.bytes} bytes in all`);
      roomKeys = JSON.parse(await clerk.exportRoomKeys(() => true)) as typeof roomKeys;
      assert.equal(roomKeys.length, 1);

      bot.machine.close();
      bot = await startBot(db, "roundtrip", secret);
      const content = { msgtype: "m.text", body: "Bescheid Az. 4711 – vertraulich", attachment: randomBytes(48).toString("base64") };
      const encrypted = await clerk.encryptRoomEvent(new RoomId(roomId), "m.room.message", JSON.stringify(content));
      assert.ok(!encrypted.includes(content.body));
      const decrypted = await bot.machine.decryptRoomEvent(roomEvent(roomId, "$1", encrypted), new RoomId(roomId), new DecryptionSettings(TrustRequirement.Untrusted));
      assert.equal(decrypted.sender.toString(), CLERK);
      assert.deepEqual((JSON.parse(decrypted.event) as { content: unknown }).content, content);
    });

    it("leaves nothing readable in the table: no identity key, room key, user ID or device ID; another secret reads nothing", async () => {
      const { raw } = await rows(db, "roundtrip");
      const identity = [bot.machine.identityKeys.curve25519.toBase64(), bot.machine.identityKeys.ed25519.toBase64()];
      const secrets = [...identity, ...roomKeys.flatMap((k) => [k.session_key, k.session_id]), BOT, CLERK, CLERK_DEVICE, "Bescheid"];
      for (const text of secrets) {
        assert.ok(!raw.includes(text), `${text} is not in the table`);
        // the unpadded base64 also as bytes, and as the other base64 spelling
        if (/^[A-Za-z0-9+/]{40,}$/.test(text)) {
          assert.ok(!raw.includes(Buffer.from(text, "base64")), `the bytes of ${text} are not in the table`);
          assert.ok(!raw.includes(Buffer.from(text, "base64").toString("base64url")));
        }
      }
      const owner = () => db.query("SELECT owner FROM crypto_stores WHERE name = 'roundtrip'").then((r) => r.rows);
      const ownerBefore = await owner();
      await assert.rejects(CryptoStore.restore(db, { name: "roundtrip", secret: randomBytes(32), factory: new IDBFactory() }), /cannot be read with the secret given/);
      assert.deepEqual(await owner(), ownerBefore, "a restore with another secret takes nothing over");
    });

    it("writes only the records a to-device batch changed", async (t) => {
      const before = await rows(db, "roundtrip");
      const share = await clerk.shareRoomKey(new RoomId("!zweite:kuvert.example"), [new UserId(BOT)], new EncryptionSettings());
      await bot.machine.receiveSyncChanges(toDeviceEvents(share), new DeviceLists(), new Map([["signed_curve25519", 49]]), new Set());
      const save = await timed(() => bot.store.saveChanges());
      const afterSave = await rows(db, "roundtrip");
      // Every write seals anew (a fresh nonce): a row that was written has other bytes.
      const rewritten = [...afterSave.sealed].filter(([id, sealed]) => before.sealed.get(id) !== sealed).length;
      const removed = [...before.sealed.keys()].filter((id) => !afterSave.sealed.has(id)).length;
      assert.equal(rewritten, save.value.written);
      assert.equal(removed, save.value.deleted);
      assert.ok(save.value.written > 0 && save.value.written <= 5, `${save.value.written} of ${afterSave.count} rows written`);
      // Only what the wasm wrote is read and compared, not the whole store.
      assert.ok(save.value.read >= save.value.written && save.value.read < afterSave.count, `${save.value.read} of ${afterSave.count} records read`);
      t.diagnostic(`second room key: saveChanges ${save.ms.toFixed(1)} ms, ${save.value.read} records read, ${save.value.written} of ${afterSave.count} rows written, ${save.value.deleted} deleted`);
    });

    it("refuses to save for a process that another has taken the store over from", async () => {
      const other = await CryptoStore.restore(db, { name: "roundtrip", secret, factory: new IDBFactory() });
      await assert.rejects(bot.store.saveChanges(), CryptoStoreTakenOverError, "even with nothing to write");
      const share = await clerk.shareRoomKey(new RoomId("!dritte:kuvert.example"), [new UserId(BOT)], new EncryptionSettings());
      await bot.machine.receiveSyncChanges(toDeviceEvents(share), new DeviceLists(), new Map(), new Set());
      await assert.rejects(bot.store.saveChanges(), CryptoStoreTakenOverError);
      // It reads what the other machine of the same name wrote (both are followed), and writes nothing of it.
      assert.deepEqual({ ...(await other.saveChanges()), read: 0 }, { read: 0, written: 0, deleted: 0, bytes: 0 });
    });
  });

  it("survives kill -9: what was saved is there; a room key received but not saved comes again with the unacknowledged to-device messages", async () => {
    const dir = tempDir("kuvert-crypto-store-");
    const processSecret = randomBytes(32).toString("hex");
    let bot = await startBotProcess(dir, processSecret);
    try {
      const clerk = await clerkWithSession(JSON.parse((await bot.ask({ op: "upload" })).body!) as KeysUpload);
      const share = async (room: string) => toDeviceEvents(await clerk.shareRoomKey(new RoomId(room), [new UserId(BOT)], new EncryptionSettings()));
      const decrypt = async (room: string, body: string) => (await bot.ask({ op: "decrypt", room, event: roomEvent(room, `$${body}`, await clerk.encryptRoomEvent(new RoomId(room), "m.room.message", JSON.stringify({ body }))) })).body;
      await bot.ask({ op: "receive", events: await share("!saved:kuvert.example"), save: true });
      const unsaved = await share("!unsaved:kuvert.example");
      await bot.ask({ op: "receive", events: unsaved, save: false });
      await bot.kill9();

      bot = await startBotProcess(dir, processSecret);
      assert.equal(await decrypt("!saved:kuvert.example", "eins"), "eins");
      assert.equal(await decrypt("!unsaved:kuvert.example", "zwei"), undefined, "the room key not saved is gone");
      await bot.ask({ op: "receive", events: unsaved, save: true });
      assert.equal(await decrypt("!unsaved:kuvert.example", "drei"), "drei", "and comes with the to-device messages again");
      clerk.close();
    } finally {
      await bot.kill9();
    }
  });
});
