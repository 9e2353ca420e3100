// The end-to-end-encryption state of a Kuvert device (Olm and Megolm sessions, device keys,
// cross-signing keys), kept in Kuvert's database (PostgreSQL or PGlite).
//
// matrix-sdk-crypto-wasm persists an OlmMachine only to IndexedDB, which Node lacks. The wasm
// writes to fake-indexeddb's IndexedDB, in memory, and this module copies that to the database
// and back:
// - restore() recreates the IndexedDB databases the wasm made (`<name>::matrix-sdk-crypto` and
//   `<name>::matrix-sdk-crypto-meta`: version, object stores, indexes, records) from the table,
//   before the wasm opens them;
// - saveChanges() reads, in one read-only IndexedDB transaction per database (it runs after the
//   wasm's write transactions already begun and before any begun later: a consistent snapshot),
//   the records the wasm wrote or deleted since the last save, and writes those that changed, and
//   deletes those gone, in one database transaction. Which records those are, a write log says:
//   fake-indexeddb's object store and cursor writes are followed (put, add, delete, clear, a
//   cursor's update and delete) for the databases of the stores open in this process. A save is
//   thus as large as what changed, not as the store (hundreds of rooms' sessions). When the
//   databases' schema changed (a new store, a version upgrade) everything is read once.
// The caller saves after every OlmMachine call that changes state and before it acts on the
// result: before it sends the requests the machine produced, acknowledges the to-device messages
// it handed in, or sends an event the machine encrypted. A process that dies in between loses
// only state that nothing outside depends on yet.
//
// Encryption at rest, twice, as each covers what the other does not. Both keys are derived from
// one secret from the environment:
// - the wasm's store cipher (StoreHandle.openWithKey; the passphrase variant would run PBKDF2 at
//   every start for a secret that is already a key) encrypts the pickled account and sessions,
//   so the fake IndexedDB in memory holds them encrypted too. It leaves the schema, some keys
//   (tracked users are keyed by user ID) and index fields (backup flags, sender data) in the clear;
// - each row is sealed with AES-256-GCM, the record's database, object store, key and value
//   together, with the store's name and the row's id as associated data, so that a row cannot
//   pass for another. The id is an HMAC of the record's database, object store and key. The table
//   shows how many records there are and their sizes; a wrong secret fails restore().
import { createCipheriv, createDecipheriv, createHash, createHmac, hkdfSync, randomBytes } from "node:crypto";
import { deserialize, serialize } from "node:v8";
import * as fake from "fake-indexeddb";
import type { Database, Queryable } from "../db/database.ts";

export interface CryptoStoreOptions {
  /** The store's name (one per device), the prefix of its IndexedDB databases: letters, digits, `.`, `_`, `-`. */
  name: string;
  /** From the environment: at least 32 random bytes, or a string of at least 32 characters. */
  secret: Uint8Array | string;
  /** The IndexedDB the wasm uses: the process's by default; a new one stands for a new process. */
  factory?: IDBFactory;
}

export interface SaveResult {
  /** Records read from IndexedDB and compared: those the wasm wrote since the last save (all of them when the schema changed). */
  read: number;
  /** Rows inserted or replaced (records and the schema). */
  written: number;
  deleted: number;
  /** Bytes of the rows written. */
  bytes: number;
}

/** Another process restored the store since this one did: only that one may save it now. */
export class CryptoStoreTakenOverError extends Error {
  constructor(name: string) {
    super(`The crypto store "${name}" was restored by another process since this one restored it; this process must not save it or use its device any more.`);
    this.name = "CryptoStoreTakenOverError";
  }
}

interface IndexSchema {
  name: string;
  keyPath: string | string[];
  unique: boolean;
  multiEntry: boolean;
}

interface StoreSchema {
  name: string;
  keyPath: string | string[] | null;
  autoIncrement: boolean;
  indexes: IndexSchema[];
}

interface DatabaseSchema {
  name: string;
  version: number;
  stores: StoreSchema[];
}

interface IdbRecord {
  database: string;
  store: string;
  key: IDBValidKey;
  value: unknown;
}

type Sealed = { kind: "schema"; databases: DatabaseSchema[] } | ({ kind: "record" } & IdbRecord);

interface Row {
  id: Buffer;
  sealed: Buffer;
}

const NAME = /^[A-Za-z0-9._-]+$/;
// Rows per INSERT: one statement for the usual save, a few for the first save of a large store.
const BATCH = 500;

// The wasm finds IndexedDB as the global `indexedDB` when it opens a store, and tests what it
// gets back with `instanceof` against the global interface objects (IDBRequest, IDBCursor, ...;
// IDBKeyRange it calls). Set from fake-indexeddb's exports; its `auto` entry point is not used,
// as it would fix one IndexedDB for the process at import time.
function installIndexedDB(factory: IDBFactory): void {
  Object.assign(globalThis, {
    indexedDB: factory,
    IDBCursor: fake.IDBCursor,
    IDBCursorWithValue: fake.IDBCursorWithValue,
    IDBDatabase: fake.IDBDatabase,
    IDBFactory: fake.IDBFactory,
    IDBIndex: fake.IDBIndex,
    IDBKeyRange: fake.IDBKeyRange,
    IDBObjectStore: fake.IDBObjectStore,
    IDBOpenDBRequest: fake.IDBOpenDBRequest,
    IDBRequest: fake.IDBRequest,
    IDBTransaction: fake.IDBTransaction,
    IDBVersionChangeEvent: fake.IDBVersionChangeEvent,
  });
}

let processFactory: IDBFactory | undefined;

/** Where a record lives: database and object store. */
type Location = string;
const locate = (database: string, store: string): Location => `${database}\u0000${store}`;

/** The records the wasm wrote since the last save, by database and object store: their keys, or all of the store. */
class WriteLog {
  #dirty = new Map<string, Map<string, Map<string, IDBValidKey> | "all">>();

  mark(database: string, store: string, key: IDBValidKey | undefined): void {
    const stores = this.#dirty.get(database) ?? new Map<string, Map<string, IDBValidKey> | "all">();
    this.#dirty.set(database, stores);
    if (key === undefined) {
      stores.set(store, "all");
      return;
    }
    const keys = stores.get(store) ?? new Map<string, IDBValidKey>();
    if (keys === "all") return;
    keys.set(JSON.stringify(encodeKey(key)), key);
    stores.set(store, keys);
  }

  /** What was written since the last take; put back (putBack) when the save that took it failed. */
  take(): Map<string, Map<string, Map<string, IDBValidKey> | "all">> {
    const taken = this.#dirty;
    this.#dirty = new Map();
    return taken;
  }

  putBack(taken: Map<string, Map<string, Map<string, IDBValidKey> | "all">>): void {
    for (const [database, stores] of taken) {
      for (const [store, keys] of stores) {
        if (keys === "all") this.mark(database, store, undefined);
        else for (const key of keys.values()) this.mark(database, store, key);
      }
    }
  }
}

/**
 * The write logs of the stores open in this process, with their databases' name prefix. A write
 * is marked in every log whose prefix its database has: two stores of one name in one process (a
 * store taken over again, tests) each read the other's writes too, which costs a read and changes
 * nothing (the values they find are their own).
 */
const writeLogs = new Set<{ prefix: string; log: WriteLog }>();

function writeLogsOf(database: string): WriteLog[] {
  return [...writeLogs].filter((w) => database.startsWith(w.prefix)).map((w) => w.log);
}

let writesFollowed = false;

/**
 * Follows the writes to fake-indexeddb's object stores (its IDBObjectStore and IDBCursor, which
 * the wasm uses through the globals installIndexedDB sets): each write request marks its record in
 * the write log of the store its database belongs to, when it succeeded (an aborted transaction
 * leaves a mark too: the record is read again and found unchanged).
 */
function followWrites(): void {
  if (writesFollowed) return;
  writesFollowed = true;
  type Writer = (this: IDBObjectStore, ...args: unknown[]) => IDBRequest;
  const stores = fake.IDBObjectStore.prototype as unknown as Record<"put" | "add" | "delete" | "clear", Writer>;
  const where = (store: IDBObjectStore) => ({ logs: writeLogsOf(store.transaction.db.name), database: store.transaction.db.name, name: store.name });
  for (const method of ["put", "add"] as const) {
    const original = stores[method];
    stores[method] = function (this: IDBObjectStore, ...args: unknown[]) {
      const request = original.apply(this, args);
      const { logs, database, name } = where(this);
      if (logs.length) request.addEventListener("success", () => logs.forEach((log) => log.mark(database, name, request.result as IDBValidKey)));
      return request;
    };
  }
  const originalDelete = stores.delete;
  stores.delete = function (this: IDBObjectStore, query: unknown) {
    const request = originalDelete.call(this, query);
    const { logs, database, name } = where(this);
    // A key range: the whole store is read again.
    for (const log of logs) log.mark(database, name, query instanceof fake.IDBKeyRange ? undefined : (query as IDBValidKey));
    return request;
  };
  const originalClear = stores.clear;
  stores.clear = function (this: IDBObjectStore) {
    const request = originalClear.call(this);
    const { logs, database, name } = where(this);
    for (const log of logs) log.mark(database, name, undefined);
    return request;
  };
  const cursors = fake.IDBCursor.prototype as unknown as Record<"update" | "delete", (this: IDBCursor, ...args: unknown[]) => IDBRequest>;
  for (const method of ["update", "delete"] as const) {
    const original = cursors[method];
    cursors[method] = function (this: IDBCursor, ...args: unknown[]) {
      const request = original.apply(this, args);
      const store = this.source instanceof fake.IDBIndex ? this.source.objectStore : (this.source as IDBObjectStore);
      const { logs, database, name } = where(store);
      for (const log of logs) log.mark(database, name, this.primaryKey);
      return request;
    };
  }
}

function done<T>(request: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error ?? new Error("IndexedDB request failed"));
  });
}

/** One encoding per IndexedDB key (two keys IndexedDB holds equal encode alike), for the row id. */
function encodeKey(key: IDBValidKey): unknown {
  if (typeof key === "string") return ["s", key];
  if (typeof key === "number") return ["n", String(key)]; // String keeps ±Infinity, which JSON would not
  if (key instanceof Date) return ["d", String(key.getTime())];
  if (Array.isArray(key)) return ["a", key.map(encodeKey)];
  if (key instanceof ArrayBuffer) return ["b", Buffer.from(key).toString("base64")];
  if (ArrayBuffer.isView(key)) return ["b", Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString("base64")];
  throw new TypeError(`not an IndexedDB key: ${Object.prototype.toString.call(key)}`);
}

/**
 * A digest of a structured-clone value, the same for equal values. Not of v8.serialize's bytes:
 * those depend on how V8 holds a value (an array read back from them is written differently).
 */
function digest(value: unknown): string {
  const hash = createHash("sha256");
  const open = new Set<object>();
  const feed = (v: unknown): void => {
    if (typeof v === "string") {
      hash.update(`s${v.length}:`).update(v, "utf16le");
      return;
    }
    if (typeof v !== "object" || v === null) {
      hash.update(`${typeof v}:${Object.is(v, -0) ? "-0" : String(v)};`);
      return;
    }
    if (open.has(v)) {
      hash.update("cycle;");
      return;
    }
    open.add(v);
    if (Array.isArray(v)) {
      hash.update(`a${v.length}[`);
      for (let i = 0; i < v.length; i++) feed(v[i]);
    } else if (v instanceof ArrayBuffer) {
      hash.update(`b${v.byteLength}:`).update(new Uint8Array(v));
    } else if (ArrayBuffer.isView(v)) {
      hash.update(`${v.constructor.name}${v.byteLength}:`).update(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
    } else if (v instanceof Date) {
      hash.update(`d${v.getTime()};`);
    } else if (v instanceof Map) {
      hash.update(`m${v.size}{`);
      for (const [key, item] of v) {
        feed(key);
        feed(item);
      }
    } else if (v instanceof Set) {
      hash.update(`t${v.size}{`);
      for (const item of v) feed(item);
    } else if (Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null) {
      const keys = Object.keys(v);
      hash.update(`o${keys.length}{`);
      for (const key of keys) {
        feed(key);
        feed((v as Record<string, unknown>)[key]);
      }
    } else {
      // Rarer clones (RegExp, Error, boxed primitives): their bytes, at worst an extra write.
      const bytes = serialize(v);
      hash.update(`x${bytes.length}:`).update(bytes);
    }
    hash.update("}");
    open.delete(v);
  };
  feed(value);
  return hash.digest("base64");
}

function storeSchema(store: IDBObjectStore): StoreSchema {
  const indexes = Array.from(store.indexNames, (name) => {
    const index = store.index(name);
    return { name, keyPath: index.keyPath, unique: index.unique, multiEntry: index.multiEntry };
  });
  // Null for keys given apart from the value, which lib.dom's type leaves out.
  const keyPath = store.keyPath as string | string[] | null;
  return { name: store.name, keyPath, autoIncrement: store.autoIncrement, indexes };
}

/** The schema of the databases named `<prefix>...`: versions, object stores and indexes, no records. */
async function readSchema(factory: IDBFactory, prefix: string): Promise<DatabaseSchema[]> {
  const names = (await factory.databases())
    .map((info) => info.name)
    .filter((name): name is string => name !== undefined && name.startsWith(prefix))
    .sort();
  const schema: DatabaseSchema[] = [];
  for (const name of names) {
    const db = await done(factory.open(name));
    try {
      const storeNames = Array.from(db.objectStoreNames);
      const tx = storeNames.length > 0 ? db.transaction(storeNames, "readonly") : undefined;
      schema.push({ name, version: db.version, stores: storeNames.map((storeName) => storeSchema(tx!.objectStore(storeName))) });
    } finally {
      db.close();
    }
  }
  return schema;
}

/**
 * The records the write log names, as they are now, each database read in one transaction:
 * `present` with their values, `absent` the keys the log names that the store no longer holds, and
 * `whole` the stores read whole (their records not among `present` are gone).
 */
async function readWritten(factory: IDBFactory, written: Map<string, Map<string, Map<string, IDBValidKey> | "all">>): Promise<{ present: IdbRecord[]; absent: { database: string; store: string; key: IDBValidKey }[]; whole: Location[] }> {
  const present: IdbRecord[] = [];
  const absent: { database: string; store: string; key: IDBValidKey }[] = [];
  const whole: Location[] = [];
  for (const [name, stores] of written) {
    if (!(await factory.databases()).some((info) => info.name === name)) continue;
    const db = await done(factory.open(name));
    try {
      const storeNames = [...stores.keys()].filter((store) => db.objectStoreNames.contains(store));
      if (storeNames.length === 0) continue;
      const tx = db.transaction(storeNames, "readonly");
      const reads = storeNames.map(async (storeName) => {
        const store = tx.objectStore(storeName);
        const keys = stores.get(storeName)!;
        if (keys === "all") {
          whole.push(locate(name, storeName));
          const [allKeys, values] = await Promise.all([done(store.getAllKeys()), done(store.getAll())]);
          allKeys.forEach((key, i) => present.push({ database: name, store: storeName, key, value: values[i] }));
          return;
        }
        await Promise.all(
          [...keys.values()].map(async (key) => {
            const value: unknown = await done(store.get(key));
            if (value === undefined) absent.push({ database: name, store: storeName, key });
            else present.push({ database: name, store: storeName, key, value });
          }),
        );
      });
      await Promise.all(reads);
    } finally {
      db.close();
    }
  }
  return { present, absent, whole };
}

/** The schema and records of the databases named `<prefix>...`, each database read in one transaction. */
async function readDatabases(factory: IDBFactory, prefix: string): Promise<{ schema: DatabaseSchema[]; records: IdbRecord[] }> {
  const names = (await factory.databases())
    .map((info) => info.name)
    .filter((name): name is string => name !== undefined && name.startsWith(prefix))
    .sort();
  const schema: DatabaseSchema[] = [];
  const records: IdbRecord[] = [];
  for (const name of names) {
    const db = await done(factory.open(name));
    try {
      const storeNames = Array.from(db.objectStoreNames);
      const stores: StoreSchema[] = [];
      if (storeNames.length > 0) {
        const tx = db.transaction(storeNames, "readonly");
        // Every request made before the first is awaited: the transaction stays open for them all.
        const reads = storeNames.map((storeName) => {
          const store = tx.objectStore(storeName);
          stores.push(storeSchema(store));
          return Promise.all([done(store.getAllKeys()), done(store.getAll())]).then(([keys, values]) => keys.map((key, i): IdbRecord => ({ database: name, store: storeName, key, value: values[i] })));
        });
        for (const read of await Promise.all(reads)) records.push(...read);
      }
      schema.push({ name, version: db.version, stores });
    } finally {
      db.close();
    }
  }
  return { schema, records };
}

/** Creates the databases as they were saved: each at its version, with its stores, indexes and records. */
async function createDatabases(factory: IDBFactory, schema: DatabaseSchema[], records: IdbRecord[]): Promise<void> {
  for (const database of schema) {
    const request = factory.open(database.name, database.version);
    request.onupgradeneeded = () => {
      const db = request.result;
      const stores = new Map<string, IDBObjectStore>();
      for (const s of database.stores) {
        const store = db.createObjectStore(s.name, { keyPath: s.keyPath, autoIncrement: s.autoIncrement });
        for (const index of s.indexes) store.createIndex(index.name, index.keyPath, { unique: index.unique, multiEntry: index.multiEntry });
        stores.set(s.name, store);
      }
      for (const record of records) {
        if (record.database !== database.name) continue;
        const store = stores.get(record.store);
        if (!store) throw new Error(`The saved crypto store has a record in ${database.name}/${record.store}, an object store its schema lacks.`);
        if (store.keyPath === null) store.put(record.value, record.key);
        else store.put(record.value);
      }
    };
    (await done(request)).close();
  }
}

export class CryptoStore {
  readonly name: string;
  readonly factory: IDBFactory;
  readonly #db: Database;
  readonly #owner = randomBytes(16).toString("hex");
  readonly #storeKey: Buffer;
  readonly #sealKey: Buffer;
  readonly #idKey: Buffer;
  /** What the table holds: the digest of each row's content, by row id (base64). */
  readonly #saved = new Map<string, string>();
  /** Where each saved record lives (database and object store), by row id. */
  readonly #where = new Map<string, Location>();
  /** The digest of the schema saved last; another one means a full read. */
  #schemaDigest: string | undefined;
  readonly #log = new WriteLog();
  readonly #logEntry: { prefix: string; log: WriteLog };
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(db: Database, name: string, secret: Buffer, factory: IDBFactory) {
    this.#db = db;
    this.name = name;
    this.factory = factory;
    const derive = (purpose: string) => Buffer.from(hkdfSync("sha256", secret, "kuvert crypto store", `${purpose}:${name}`, 32));
    this.#storeKey = derive("wasm store key");
    this.#sealKey = derive("row seal");
    this.#idKey = derive("row id");
    this.#logEntry = { prefix: `${name}::`, log: this.#log };
  }

  /**
   * Takes the store over for this process and recreates its IndexedDB databases from the table
   * (none for a device not saved yet: the wasm creates them). From then on a process that
   * restored it before cannot save it any more. Throws, taking nothing over, when the secret
   * does not open the rows.
   */
  static async restore(db: Database, options: CryptoStoreOptions): Promise<CryptoStore> {
    if (!NAME.test(options.name)) throw new Error(`The crypto store name "${options.name}" has other characters than letters, digits, ".", "_" and "-".`);
    const secret = typeof options.secret === "string" ? Buffer.from(options.secret, "utf8") : Buffer.from(options.secret);
    if (secret.length < 32) throw new Error("The crypto store's secret is shorter than 32 bytes.");
    const factory = options.factory ?? (processFactory ??= new fake.IDBFactory());
    const store = new CryptoStore(db, options.name, secret, factory);
    const prefix = store.#prefix();
    if ((await factory.databases()).some((info) => info.name?.startsWith(prefix))) throw new Error(`The crypto store "${options.name}" is open in this process already.`);

    // Taken over first, then read: a save of the previous owner is either committed and read here,
    // or refused. Rows that do not open undo the takeover.
    const { schema, records } = await db.transaction(async (tx) => {
      await tx.query("INSERT INTO crypto_stores (name, owner) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET owner = EXCLUDED.owner", [store.name, store.#owner]);
      const { rows } = await tx.query<{ id: Uint8Array; sealed: Uint8Array }>("SELECT id, sealed FROM crypto_store_records WHERE store = $1", [store.name]);
      let schema: DatabaseSchema[] | undefined;
      const records: IdbRecord[] = [];
      for (const row of rows) {
        const id = Buffer.from(row.id);
        const content = store.#unseal(id, Buffer.from(row.sealed));
        if (content.kind === "schema") {
          schema = content.databases;
          store.#schemaDigest = digest(content.databases);
          store.#saved.set(id.toString("base64"), store.#schemaDigest);
        } else {
          const { kind: _, ...record } = content;
          records.push(record);
          store.#saved.set(id.toString("base64"), digest(record.value));
          store.#where.set(id.toString("base64"), locate(record.database, record.store));
        }
      }
      return { schema, records };
    });
    if (schema) await createDatabases(factory, schema, records);
    else if (records.length > 0) throw new Error(`The saved crypto store "${store.name}" has records but no schema.`);
    followWrites();
    writeLogs.add(store.#logEntry);
    return store;
  }

  /**
   * Opens the wasm's store on this store's IndexedDB, with the key derived for it:
   * `await store.open(StoreHandle.openWithKey)`, then `OlmMachine.initFromStore`.
   */
  async open<T>(openWithKey: (name: string, key: Uint8Array) => Promise<T>): Promise<T> {
    installIndexedDB(this.factory);
    return openWithKey(this.name, new Uint8Array(this.#storeKey));
  }

  /**
   * Writes what changed in the IndexedDB databases since the last save, in one transaction.
   * Resolved, it also says that this process still holds the store (CryptoStoreTakenOverError
   * otherwise), even when there was nothing to write. Saves run one after another, in the order
   * they were asked for.
   */
  saveChanges(): Promise<SaveResult> {
    const run = this.#queue.then(() => this.#save());
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** No longer followed: its device is closed (it may still save what it has, once). */
  close(): void {
    writeLogs.delete(this.#logEntry);
  }

  #prefix(): string {
    return `${this.name}::`;
  }

  async #save(): Promise<SaveResult> {
    const written = this.#log.take();
    try {
      return await this.#saveWritten(written);
    } catch (err) {
      // Not saved: what the log named is named again at the next save.
      this.#log.putBack(written);
      throw err;
    }
  }

  /**
   * The records the write log names (all records when the schema changed), compared with what the
   * table holds by digest: the changed ones written, the gone ones deleted, in one transaction.
   */
  async #saveWritten(written: Map<string, Map<string, Map<string, IDBValidKey> | "all">>): Promise<SaveResult> {
    const schema = await readSchema(this.factory, this.#prefix());
    const schemaDigest = digest(schema);
    const full = schemaDigest !== this.#schemaDigest;
    const changed: Row[] = [];
    const digests = new Map<string, { digest: string; where: Location | null }>();
    const seen = new Set<string>();
    const consider = (id: Buffer, contentDigest: string, where: Location | null, content: () => Sealed) => {
      const key = id.toString("base64");
      seen.add(key);
      if (this.#saved.get(key) === contentDigest) return;
      changed.push({ id, sealed: this.#seal(id, content()) });
      digests.set(key, { digest: contentDigest, where });
    };
    const recordId = (r: { database: string; store: string; key: IDBValidKey }) => this.#id(["record", r.database, r.store, encodeKey(r.key)]);
    let gone: string[];
    let read: number;
    if (full) {
      // Everything once: the schema row and every record, and what the table holds beyond them is gone.
      const { records } = await readDatabases(this.factory, this.#prefix());
      if (schema.length > 0) consider(this.#id(["schema"]), schemaDigest, null, () => ({ kind: "schema", databases: schema }));
      for (const record of records) consider(recordId(record), digest(record.value), locate(record.database, record.store), () => ({ kind: "record", ...record }));
      gone = [...this.#saved.keys()].filter((key) => !seen.has(key));
      read = records.length;
    } else {
      const { present, absent, whole } = await readWritten(this.factory, written);
      read = present.length + absent.length;
      for (const record of present) consider(recordId(record), digest(record.value), locate(record.database, record.store), () => ({ kind: "record", ...record }));
      const wholly = new Set(whole);
      gone = [...absent.map((r) => recordId(r).toString("base64")).filter((key) => this.#saved.has(key)), ...[...this.#where].filter(([key, where]) => wholly.has(where) && !seen.has(key)).map(([key]) => key)];
    }
    if (changed.length === 0 && gone.length === 0) {
      await this.#checkOwner(this.#db);
      this.#schemaDigest = schemaDigest;
      return { read, written: 0, deleted: 0, bytes: 0 };
    }

    await this.#db.transaction(async (tx) => {
      await this.#checkOwner(tx);
      for (let i = 0; i < changed.length; i += BATCH) {
        const batch = changed.slice(i, i + BATCH);
        await tx.query(
          `INSERT INTO crypto_store_records (store, id, sealed) SELECT $1::text, id, sealed FROM unnest($2::bytea[], $3::bytea[]) AS r (id, sealed)
           ON CONFLICT (store, id) DO UPDATE SET sealed = EXCLUDED.sealed`,
          [this.name, batch.map((r) => r.id), batch.map((r) => r.sealed)],
        );
      }
      for (let i = 0; i < gone.length; i += BATCH) {
        const batch = gone.slice(i, i + BATCH).map((key) => Buffer.from(key, "base64"));
        await tx.query("DELETE FROM crypto_store_records WHERE store = $1 AND id = ANY($2::bytea[])", [this.name, batch]);
      }
    });
    for (const [key, saved] of digests) {
      this.#saved.set(key, saved.digest);
      if (saved.where) this.#where.set(key, saved.where);
    }
    for (const key of gone) {
      this.#saved.delete(key);
      this.#where.delete(key);
    }
    this.#schemaDigest = schemaDigest;
    return { read, written: changed.length, deleted: gone.length, bytes: changed.reduce((sum, r) => sum + r.sealed.length, 0) };
  }

  /** In a transaction that writes, the owner's row stays locked until it ends: a takeover waits for it. */
  async #checkOwner(db: Queryable): Promise<void> {
    const { rows } = await db.query<{ owner: string }>("SELECT owner FROM crypto_stores WHERE name = $1 FOR UPDATE", [this.name]);
    if (rows[0]?.owner !== this.#owner) throw new CryptoStoreTakenOverError(this.name);
  }

  #id(parts: unknown[]): Buffer {
    return createHmac("sha256", this.#idKey).update(JSON.stringify(parts)).digest();
  }

  #aad(id: Buffer): Buffer {
    return Buffer.concat([Buffer.from(this.name, "utf8"), Buffer.from([0]), id]);
  }

  #seal(id: Buffer, content: Sealed): Buffer {
    const nonce = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", this.#sealKey, nonce);
    cipher.setAAD(this.#aad(id));
    const ciphertext = Buffer.concat([cipher.update(serialize(content)), cipher.final()]);
    return Buffer.concat([nonce, ciphertext, cipher.getAuthTag()]);
  }

  #unseal(id: Buffer, sealed: Buffer): Sealed {
    try {
      const decipher = createDecipheriv("aes-256-gcm", this.#sealKey, sealed.subarray(0, 12));
      decipher.setAAD(this.#aad(id));
      decipher.setAuthTag(sealed.subarray(sealed.length - 16));
      return deserialize(Buffer.concat([decipher.update(sealed.subarray(12, sealed.length - 16)), decipher.final()])) as Sealed;
    } catch (err) {
      throw new Error(`The crypto store "${this.name}" cannot be read with the secret given: a row fails its authentication (another secret, or a row changed or moved).`, { cause: err });
    }
  }
}
