// Clerks with a real crypto device, for the benchmarks' encrypted rooms (documents.ts and
// circulars.ts with --encryption): an account on the homeserver (Synapse's admin API, which the
// test homeserver speaks too), a password login (its own access token and device), and an
// OlmMachine of @matrix-org/matrix-sdk-crypto-wasm (the crypto Element uses) that publishes the
// device's identity keys and one-time keys (CS API §"POST /_matrix/client/v3/keys/upload"). The
// clerk never syncs: Kuvert's bot finds the device by /keys/query, claims one of its one-time keys
// for an Olm session and shares its room keys with it by to-device messages, as it would with a
// clerk's Element; whether anyone reads them is no part of what is measured.
import { randomBytes } from "node:crypto";
import { DeviceId, initAsync, OlmMachine, RequestType, UserId } from "@matrix-org/matrix-sdk-crypto-wasm";
import { createAccount, type HomeserverAccess } from "../test/support/matrix.ts";
import { log, pool, sleep } from "./measure.ts";
import type { BenchStack } from "./stack.ts";

export interface CryptoClerk {
  userId: string;
  deviceId: string;
  accessToken: string;
  /** One-time keys the homeserver holds for the device after the upload (signed_curve25519). */
  oneTimeKeys: number;
}

let wasm: Promise<void> | undefined;

/** A request of the clerk's own, with its access token. */
async function asClerk(access: HomeserverAccess, token: string, method: string, path: string, body?: string): Promise<{ status: number; text: string }> {
  const res = await fetch(`${access.url}${path}`, { method, headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, ...(body === undefined ? {} : { body }) });
  return { status: res.status, text: await res.text() };
}

/**
 * An account `@<localpart>:<server>` with a password, logged in, whose device has published its
 * keys: the OlmMachine's outgoing requests are sent with the clerk's token until it asks for
 * nothing more (a fresh machine asks for one KeysUpload: device keys and 50 one-time keys).
 */
export async function cryptoClerk(access: HomeserverAccess, localpart: string): Promise<CryptoClerk> {
  await (wasm ??= initAsync());
  const password = randomBytes(12).toString("base64url");
  await createAccount(access, localpart, password, `Clerk ${localpart}`);
  const login = await fetch(`${access.url}/_matrix/client/v3/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ type: "m.login.password", identifier: { type: "m.id.user", user: localpart }, password, initial_device_display_name: "Benchmark clerk" }),
  });
  const session = (await login.json()) as { user_id?: string; device_id?: string; access_token?: string };
  if (!login.ok || !session.user_id || !session.device_id || !session.access_token) throw new Error(`login of ${localpart}: ${login.status} ${JSON.stringify(session)}`);
  const machine = await OlmMachine.initialize(new UserId(session.user_id), new DeviceId(session.device_id));
  let oneTimeKeys = 0;
  try {
    for (let round = 0; round < 4; round++) {
      const requests = (await machine.outgoingRequests()) as { id?: string; type: RequestType; body: string }[];
      const uploads = requests.filter((r) => r.type === RequestType.KeysUpload);
      if (uploads.length === 0) break;
      for (const request of uploads) {
        const res = await asClerk(access, session.access_token, "POST", "/_matrix/client/v3/keys/upload", request.body);
        if (res.status !== 200) throw new Error(`keys/upload of ${session.user_id}: ${res.status} ${res.text}`);
        oneTimeKeys = Number((JSON.parse(res.text) as { one_time_key_counts?: Record<string, number> }).one_time_key_counts?.["signed_curve25519"] ?? 0);
        if (request.id !== undefined) await machine.markRequestAsSent(request.id, request.type, res.text);
      }
    }
  } finally {
    // The keys are published; the clerk needs no crypto of its own after that.
    machine.close();
  }
  if (oneTimeKeys === 0) throw new Error(`${session.user_id}'s device published no one-time keys`);
  return { userId: session.user_id, deviceId: session.device_id, accessToken: session.access_token, oneTimeKeys };
}

/** Crypto clerks for organisations, `concurrency` made at a time; answers organisation id → clerk. */
export async function cryptoClerks(access: HomeserverAccess, organisations: string[], concurrency = 4): Promise<Map<string, CryptoClerk>> {
  const clerks = new Map<string, CryptoClerk>();
  const progress = setInterval(() => log(`  ${clerks.size}/${organisations.length} clerks with devices made`), 15_000);
  try {
    const suffix = randomBytes(3).toString("hex");
    await pool(organisations, concurrency, async (id) => {
      clerks.set(id, await cryptoClerk(access, `clerk-${id}-${suffix}`));
    });
  } finally {
    clearInterval(progress);
  }
  return clerks;
}

/** The clerks of a benchmark's organisations, made and timed for its report, with their Matrix IDs by organisation for the organisations' creation. */
export async function clerksFor(access: HomeserverAccess, organisations: string[]): Promise<{ clerks: Map<string, CryptoClerk>; matrixIds: Map<string, string>; seconds: number }> {
  log(`making ${organisations.length} clerks with crypto devices (account, login, device keys and one-time keys published)`);
  const started = performance.now();
  const clerks = await cryptoClerks(access, organisations);
  const seconds = (performance.now() - started) / 1000;
  log(`  ${clerks.size} clerks in ${seconds.toFixed(1)} s`);
  return { clerks, matrixIds: new Map([...clerks].map(([id, c]) => [id, c.userId])), seconds };
}

/**
 * Each clerk joins its organisation's room with its own token (CS API §"POST
 * /_matrix/client/v3/join/{roomIdOrAlias}"), once Kuvert's invite is there: a join before it is
 * refused (403) and tried again, for up to two minutes per room.
 */
export async function joinRooms(access: HomeserverAccess, clerks: Map<string, CryptoClerk>, rooms: Map<string, string>, concurrency = 4): Promise<void> {
  await pool([...clerks.entries()], concurrency, async ([orgId, clerk]) => {
    const roomId = rooms.get(orgId);
    if (!roomId) throw new Error(`no room for ${orgId}`);
    const deadline = Date.now() + 120_000;
    for (;;) {
      const res = await asClerk(access, clerk.accessToken, "POST", `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, "{}");
      if (res.status === 200) return;
      if (Date.now() > deadline) throw new Error(`${clerk.userId} could not join ${roomId}: ${res.status} ${res.text}`);
      await sleep(500);
    }
  });
}

/** Waits until `GET /api/v1/encryption` says the bot's device is ready (it starts with Kuvert, in the background). */
export async function waitForBotDevice(bench: BenchStack, timeoutMs = 120_000): Promise<{ deviceId: string; ed25519: string | null; crossSigned: boolean }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await bench.stack.api<{ ready: boolean; detail?: string; deviceId: string; ed25519: string | null; crossSigned: boolean }>("GET", "/api/v1/encryption");
    if (res.status === 200 && res.body.ready) return res.body;
    if (Date.now() > deadline) throw new Error(`the bot's device is not ready: ${res.status} ${JSON.stringify(res.body)}`);
    await sleep(500);
  }
}

/**
 * Switches organisations' rooms to end-to-end encryption through the admin API (`POST
 * /api/v1/organisations/{id}/encryption`: 201 switched now, 200 encrypted before). Kuvert tells
 * each room so in an encrypted notice, which is the first Megolm session of the room and its
 * share with the clerk's device.
 */
export async function switchToEncryption(bench: BenchStack, organisations: string[], concurrency = 4): Promise<void> {
  await pool(organisations, concurrency, async (id) => {
    const res = await bench.stack.api("POST", `/api/v1/organisations/${id}/encryption`);
    if (res.status !== 201 && res.status !== 200) throw new Error(`switching ${id} to encryption: ${res.status} ${JSON.stringify(res.body)}`);
  });
}

/** The room's m.room.encryption state, as the homeserver has it (null: unencrypted). */
export async function roomAlgorithm(access: HomeserverAccess, token: string, roomId: string): Promise<string | null> {
  const res = await asClerk(access, token, "GET", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.encryption/`);
  if (res.status === 404) return null;
  if (res.status !== 200) throw new Error(`reading ${roomId}'s m.room.encryption: ${res.status} ${res.text}`);
  return String((JSON.parse(res.text) as { algorithm?: unknown }).algorithm ?? null);
}

/** Kuvert's count of events its device encrypted and sent (kuvert_e2ee_encrypted_events_total); NaN when unreadable. */
export async function encryptedEventsTotal(metricsUrl: string): Promise<number> {
  try {
    const res = await fetch(metricsUrl);
    if (!res.ok) return NaN;
    const m = /^kuvert_e2ee_encrypted_events_total(?:\{[^}]*\})? (\S+)$/m.exec(await res.text());
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

/** The requests of the bot's device (and the members lookup before each encryption) that the test homeserver counts. */
const deviceRequestKinds: [string, string, RegExp][] = [
  ["GET members", "GET", /\/rooms\/[^/]+\/members/],
  ["keys/query", "POST", /\/keys\/query/],
  ["keys/claim", "POST", /\/keys\/claim/],
  ["keys/upload", "POST", /\/keys\/upload/],
  ["sendToDevice", "PUT", /\/sendToDevice\//],
];

/**
 * How many of those requests the test homeserver has seen so far (undefined on Synapse, whose
 * log does not list requests): read before and after a scenario, for the device's requests per event.
 */
export function deviceRequestCounts(bench: BenchStack): Record<string, number> | undefined {
  if (!bench.hs) return undefined;
  return Object.fromEntries(deviceRequestKinds.map(([name, method, path]) => [name, bench.hs!.faults.requests(method, path)]));
}

/** After − before, per kind, as "kind n (x/event)". */
export function deviceRequestsLine(before: Record<string, number> | undefined, after: Record<string, number> | undefined, events: number): string | undefined {
  if (!before || !after) return undefined;
  return Object.keys(after)
    .map((k) => `${k} ${after[k]! - (before[k] ?? 0)} (${((after[k]! - (before[k] ?? 0)) / events).toFixed(2)}/event)`)
    .join(", ");
}
