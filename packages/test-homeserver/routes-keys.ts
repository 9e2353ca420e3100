// CS API §"End-to-End Encryption" (key distribution, cross-signing) and §"Send-to-Device messaging",
// as Synapse serves them for local users (synapse/rest/client/keys.py, sendtodevice.py,
// handlers/e2e_keys.py, handlers/devicemessage.py). Other servers' users are unknown here.
import { randomBytes } from "node:crypto";
import { type Requester, authenticate } from "./auth.ts";
import type { Core } from "./core.ts";
import { AuthChallenge, MatrixError, badJson, forbidden, invalidParam, missingParam, notFound } from "./errors.ts";
import { type Req, type Router, ok } from "./http.ts";
import { type CrossSigningUsage, crossSigningPublicKey, verifySignature } from "./keys.ts";
import { accountForLogin } from "./routes-account.ts";
import { idempotent } from "./routes-rooms.ts";
import { parseStreamToken } from "./timeline.ts";
import { type JsonObject, type JsonValue, canonicalJson, isJsonObject } from "./types.ts";

const C = "/_matrix/client/v3";

const invalidSignature = (message = "Invalid signature"): MatrixError => new MatrixError(400, "M_INVALID_SIGNATURE", message);

/** Synapse's `_exception_to_failure`: how one failed signature is reported in `failures`. */
const failure = (err: MatrixError): JsonObject => ({ status: err.status, errcode: err.errcode, message: err.message });

function requesterDevice(requester: Requester): string {
  if (requester.deviceId === undefined) throw new MatrixError(400, "M_UNKNOWN", "To upload keys, you must pass device_id when authenticating");
  return requester.deviceId;
}

/** Users who share a room with `userId` (joined members of the rooms they are joined to), and they themselves. */
function usersSharingRoom(core: Core, userId: string): Set<string> {
  const users = new Set([userId]);
  for (const room of core.rooms.roomsOf(userId)) {
    if (room.membership(userId) === "join") for (const member of room.members("join")) users.add(member);
  }
  return users;
}

/**
 * Whose device lists a client must refresh after `since` (`changed`), and whom it no longer shares
 * a room with (`left`): Synapse's `get_user_ids_changed` and sync's device-list section. Changed are
 * users sharing a room whose devices or cross-signing keys changed, members who joined a room the
 * user is in, and every member of a room the user joined; left are members of rooms the user left
 * and members who left the user's rooms, unless they still share a room.
 */
export function deviceListChanges(core: Core, userId: string, since: number, upto: number): { changed: string[]; left: string[] } {
  const sharing = usersSharingRoom(core, userId);
  const changed = new Set(core.keys.deviceListsChangedBetween(since, upto).filter((u) => sharing.has(u)));
  const left = new Set<string>();
  for (const room of core.rooms.roomsOf(userId)) {
    const own = room.memberEvent(userId);
    if (!own) continue;
    const membership = room.membership(userId);
    const joined = membership === "join";
    if (own.pos > since && own.pos <= upto) {
      // A room joined or left since; an invitation shares nothing yet.
      if (joined || membership === "leave" || membership === "ban") for (const member of room.members("join")) (joined ? changed : left).add(member);
      continue;
    }
    if (!joined) continue;
    for (const ev of room.events) {
      if (ev.pos <= since || ev.pos > upto || ev.type !== "m.room.member" || ev.stateKey === undefined) continue;
      const membership = ev.content["membership"];
      if (membership === "join") changed.add(ev.stateKey);
      else if (membership === "leave" || membership === "ban") left.add(ev.stateKey);
    }
  }
  for (const user of left) if (sharing.has(user)) left.delete(user);
  for (const user of left) changed.delete(user);
  return { changed: [...changed].sort(), left: [...left].sort() };
}

/** A device's keys as `/keys/query` shows them: with the signatures uploaded since and its display name. */
function queriedDeviceKeys(core: Core, userId: string, deviceId: string, keys: JsonObject): JsonObject {
  const shown = core.keys.withSignatures(keys, userId, deviceId);
  const displayName = core.users.devices.get(userId)?.get(deviceId)?.displayName;
  if (displayName === undefined) return shown;
  const unsigned = isJsonObject(shown["unsigned"]) ? shown["unsigned"] : {};
  return { ...shown, unsigned: { ...unsigned, device_display_name: displayName } };
}

/** Synapse's `_check_cross_signing_key`: the owner and usage, and the master key's signature on the others. */
function checkCrossSigningKey(key: JsonValue | undefined, userId: string, usage: CrossSigningUsage, masterPublicKey?: string): JsonObject {
  const usages = isJsonObject(key) ? key["usage"] : undefined;
  if (!isJsonObject(key) || key["user_id"] !== userId || !Array.isArray(usages) || !usages.includes(usage)) {
    throw invalidParam(`Invalid ${usage.replace("_", "-")} key`);
  }
  if (crossSigningPublicKey(key) === undefined) throw invalidParam(`Invalid ${usage.replace("_", "-")} key`);
  if (masterPublicKey !== undefined && !verifySignature(key, userId, masterPublicKey, masterPublicKey)) {
    throw invalidSignature(`Invalid signature on ${usage.replace("_", "-")} key`);
  }
  return key;
}

const withoutSignatures = (key: JsonObject): string => {
  const rest: JsonObject = { ...key };
  delete rest["signatures"];
  delete rest["unsigned"];
  return canonicalJson(rest);
};

/** Synapse's `_check_device_signature`: the signed copy is the stored key, and the signature holds. */
function checkSignedCopy(signer: string, signerKeyName: string, signerPublicKey: string, signed: JsonObject, stored: JsonObject): string {
  if (withoutSignatures(signed) !== withoutSignatures(stored)) throw new MatrixError(400, "M_INVALID_SIGNATURE", "Key does not match");
  if (!verifySignature(signed, signer, signerKeyName, signerPublicKey)) throw invalidSignature();
  const signatures = signed["signatures"];
  const bySigner = isJsonObject(signatures) ? signatures[signer] : undefined;
  const signature = isJsonObject(bySigner) ? bySigner[`ed25519:${signerKeyName}`] : undefined;
  if (typeof signature !== "string") throw invalidSignature();
  return signature;
}

/**
 * CS API §"User-Interactive Authentication API" for one stage, `m.login.password`, of the
 * requester's own password (Synapse's `validate_user_via_ui_auth`).
 */
function userInteractiveAuth(core: Core, sessions: Set<string>, requester: Requester, body: JsonObject): void {
  // Synapse's user-interactive auth needs the access token of a device: an appservice's request
  // (as_token) fails with "Cannot validate a user without an access token", a 500 (Synapse 1.67).
  if (requester.appservice) throw new MatrixError(500, "M_UNKNOWN", "Internal server error");
  const auth = body["auth"];
  if (!isJsonObject(auth)) {
    const session = randomBytes(12).toString("base64url");
    sessions.add(session);
    throw new AuthChallenge({ session, flows: [{ stages: ["m.login.password"] }], params: {} });
  }
  const session = auth["session"];
  if (typeof session !== "string" || !sessions.has(session)) throw new MatrixError(400, "M_UNKNOWN", "Unknown session ID: " + String(session));
  if (auth["type"] !== "m.login.password") throw new MatrixError(400, "M_UNKNOWN", "Unrecognised login type");
  const account = accountForLogin(core, auth);
  const password = auth["password"];
  if (!account || typeof password !== "string" || !core.users.checkPassword(account, password)) {
    throw new MatrixError(401, "M_FORBIDDEN", "Invalid username or password", { session, flows: [{ stages: ["m.login.password"] }], params: {}, completed: [] });
  }
  if (account.userId !== requester.userId) throw forbidden("Invalid auth");
  sessions.delete(session);
}

export function keyRoutes(router: Router, core: Core): void {
  const uiaSessions = new Set<string>();

  // CS API POST /_matrix/client/v3/keys/upload (#post_matrixclientv3keysupload): device keys,
  // one-time keys (an ID reused with other content is refused) and fallback keys of the requester's device.
  router.add("POST", `${C}/keys/upload`, async (req) => {
    const requester = authenticate(core, req);
    const body = await req.json();
    const deviceId = requesterDevice(requester);
    const userId = requester.userId;
    const deviceKeys = body["device_keys"];
    if (isJsonObject(deviceKeys) && Object.keys(deviceKeys).length > 0 && core.keys.setDeviceKeys(userId, deviceId, deviceKeys)) {
      core.deviceListChanged(userId);
    }
    const oneTimeKeys = body["one_time_keys"];
    if (isJsonObject(oneTimeKeys)) {
      for (const [keyId, key] of Object.entries(oneTimeKeys)) {
        const existing = core.keys.oneTimeKey(userId, deviceId, keyId);
        if (existing !== undefined && canonicalJson(existing) !== canonicalJson(key)) {
          const [algorithm, id] = keyId.split(":");
          throw new MatrixError(400, "M_UNKNOWN", `One time key ${algorithm}:${id} already exists. Old key: ${canonicalJson(existing)}; new key: ${JSON.stringify(key)}`);
        }
        if (existing === undefined) core.keys.addOneTimeKey(userId, deviceId, keyId, key);
      }
    }
    const fallbackKeys = body["fallback_keys"] ?? body["org.matrix.msc2732.fallback_keys"];
    if (isJsonObject(fallbackKeys)) {
      for (const [keyId, key] of Object.entries(fallbackKeys)) {
        const [algorithm = "", id = ""] = keyId.split(":", 2);
        core.keys.setFallbackKey(userId, deviceId, algorithm, id, key);
      }
    } else if (fallbackKeys !== undefined && fallbackKeys !== null) {
      throw new MatrixError(400, "M_UNKNOWN", "Fallback keys must be an object");
    }
    return ok({ one_time_key_counts: core.keys.oneTimeKeyCounts(userId, deviceId) });
  });

  // CS API POST /_matrix/client/v3/keys/query (#post_matrixclientv3keysquery): the devices asked for
  // (all of a user's when the list is empty) that have keys, and cross-signing keys; user-signing
  // keys and signatures on cross-signing keys are shown to their owner only.
  router.add("POST", `${C}/keys/query`, async (req) => {
    const requester = authenticate(core, req);
    const body = await req.json();
    const wanted = body["device_keys"];
    if (!isJsonObject(wanted)) throw invalidParam("Param 'device_keys' must be an object");
    const deviceKeys: JsonObject = {};
    const masterKeys: JsonObject = {};
    const selfSigningKeys: JsonObject = {};
    const userSigningKeys: JsonObject = {};
    for (const [userId, devices] of Object.entries(wanted)) {
      if (!core.isLocalUser(userId)) continue;
      const only = Array.isArray(devices) && devices.length > 0 ? new Set(devices) : undefined;
      const existing = core.users.devices.get(userId);
      const shown: JsonObject = {};
      for (const [deviceId, keys] of core.keys.deviceKeysOf(userId)) {
        if ((only && !only.has(deviceId)) || !existing?.has(deviceId)) continue;
        shown[deviceId] = queriedDeviceKeys(core, userId, deviceId, keys);
      }
      deviceKeys[userId] = shown;
      for (const [usage, out] of [
        ["master", masterKeys],
        ["self_signing", selfSigningKeys],
        ["user_signing", userSigningKeys],
      ] as const) {
        if (usage === "user_signing" && userId !== requester.userId) continue;
        const key = core.keys.crossSigningKey(userId, usage);
        const publicKey = key === undefined ? undefined : crossSigningPublicKey(key);
        if (key && publicKey) out[userId] = core.keys.withSignatures(key, userId, publicKey, requester.userId);
      }
    }
    return ok({ device_keys: deviceKeys, failures: {}, master_keys: masterKeys, self_signing_keys: selfSigningKeys, user_signing_keys: userSigningKeys });
  });

  // CS API POST /_matrix/client/v3/keys/claim (#post_matrixclientv3keysclaim): one key per device
  // asked for, a one-time key or else the fallback key; devices without either are left out.
  router.add("POST", `${C}/keys/claim`, async (req) => {
    authenticate(core, req);
    const body = await req.json();
    const wanted = body["one_time_keys"];
    if (!isJsonObject(wanted)) throw invalidParam("Param 'one_time_keys' must be an object");
    const claimed: Record<string, JsonObject> = {};
    for (const [userId, devices] of Object.entries(wanted)) {
      if (!isJsonObject(devices)) continue;
      for (const [deviceId, algorithm] of Object.entries(devices)) {
        if (typeof algorithm !== "string") continue;
        const key = core.keys.claim(userId, deviceId, algorithm);
        if (key) (claimed[userId] ??= {})[deviceId] = { [key[0]]: key[1] };
      }
    }
    return ok({ one_time_keys: claimed, failures: {} });
  });

  // CS API GET /_matrix/client/v3/keys/changes (#get_matrixclientv3keyschanges): device-list changes
  // since `from`; Synapse reads `to` but answers up to now.
  router.add("GET", `${C}/keys/changes`, (req) => {
    const requester = authenticate(core, req);
    const from = parseStreamToken(req.query.get("from"), "from");
    if (from === undefined) throw missingParam("Missing string query parameter from");
    return ok(deviceListChanges(core, requester.userId, from, core.pos));
  });

  // CS API POST /_matrix/client/v3/keys/device_signing/upload (#post_matrixclientv3keysdevice_signingupload):
  // the master key, and self-signing and user-signing keys signed by it. Synapse 1.67 always asks for
  // user-interactive auth; current Synapse not for the first keys of an account (MSC3967), and
  // answers an upload of the keys already stored without changing anything.
  router.add("POST", `${C}/keys/device_signing/upload`, async (req) => {
    const requester = authenticate(core, req);
    const body = await req.json();
    const userId = requester.userId;
    const stored = core.keys.crossSigningKey(userId, "master");
    const uploads = (["master", "self_signing", "user_signing"] as const).filter((usage) => body[`${usage}_key`] !== undefined);
    const unchanged = uploads.every((usage) => {
      const old = core.keys.crossSigningKey(userId, usage);
      return old !== undefined && canonicalJson(old) === canonicalJson(body[`${usage}_key`] ?? null);
    });
    if (core.opts.synapse === "1.67" || stored !== undefined) {
      if (core.opts.synapse === "current" && unchanged) return ok({});
      userInteractiveAuth(core, uiaSessions, requester, body);
    }
    const master = body["master_key"] === undefined ? stored : checkCrossSigningKey(body["master_key"], userId, "master");
    if (!master) throw missingParam("No master key available");
    const masterPublicKey = crossSigningPublicKey(master);
    if (masterPublicKey === undefined) throw invalidParam("Invalid master key");
    const checked = uploads.map((usage) => [usage, usage === "master" ? master : checkCrossSigningKey(body[`${usage}_key`], userId, usage, masterPublicKey)] as const);
    for (const [usage, key] of checked) core.keys.setCrossSigningKey(userId, usage, key);
    if (checked.length > 0) core.deviceListChanged(userId);
    return ok({});
  });

  // CS API POST /_matrix/client/v3/keys/signatures/upload (#post_matrixclientv3keyssignaturesupload):
  // the user's devices signed by their self-signing key, their master key signed by their devices,
  // other users' master keys signed by their user-signing key. Each failure is reported, not thrown.
  router.add("POST", `${C}/keys/signatures/upload`, async (req) => {
    const requester = authenticate(core, req);
    const body = await req.json();
    const userId = requester.userId;
    const failures: Record<string, JsonObject> = {};
    const fail = (user: string, key: string, err: unknown): void => {
      if (!(err instanceof MatrixError)) throw err;
      (failures[user] ??= {})[key] = failure(err);
    };
    let changed = false;
    for (const [targetUser, signedKeys] of Object.entries(body)) {
      if (!isJsonObject(signedKeys)) throw invalidParam("Invalid parameter");
      for (const [targetKey, signed] of Object.entries(signedKeys)) {
        if (!isJsonObject(signed)) throw invalidParam("Invalid parameter");
        try {
          const usage: CrossSigningUsage = targetUser === userId ? "self_signing" : "user_signing";
          const master = core.keys.crossSigningKey(targetUser, "master");
          const masterPublicKey = master === undefined ? undefined : crossSigningPublicKey(master);
          if (targetUser === userId && master && targetKey === masterPublicKey) {
            // The master key signed by one of the user's devices, with that device's ed25519 key.
            const signatures = signed["signatures"];
            const bySigner = isJsonObject(signatures) ? signatures[userId] : undefined;
            for (const signerKeyId of Object.keys(isJsonObject(bySigner) ? bySigner : {})) {
              const signerDevice = signerKeyId.slice("ed25519:".length);
              const deviceKeyValue = core.keys.deviceKeysOf(userId).get(signerDevice)?.["keys"];
              const publicKey = isJsonObject(deviceKeyValue) ? deviceKeyValue[signerKeyId] : undefined;
              if (!signerKeyId.startsWith("ed25519:") || typeof publicKey !== "string") throw invalidSignature();
              const signature = checkSignedCopy(userId, signerDevice, publicKey, signed, master);
              core.keys.addSignature({ signer: userId, signerKeyId, targetUser, targetKey, signature });
            }
            changed = true;
            continue;
          }
          const signingKey = core.keys.crossSigningKey(userId, usage);
          const signingPublicKey = signingKey === undefined ? undefined : crossSigningPublicKey(signingKey);
          if (signingPublicKey === undefined) throw notFound(`No ${usage} key found`);
          let stored: JsonObject | undefined;
          if (targetUser === userId) stored = core.keys.deviceKeysOf(userId).get(targetKey);
          else if (targetKey === masterPublicKey) stored = master;
          if (!stored) throw notFound("Unknown device");
          const signature = checkSignedCopy(userId, signingPublicKey, signingPublicKey, signed, stored);
          core.keys.addSignature({ signer: userId, signerKeyId: `ed25519:${signingPublicKey}`, targetUser, targetKey, signature });
          changed = true;
        } catch (err) {
          fail(targetUser, targetKey, err);
        }
      }
    }
    // Signatures by the user-signing key concern the signer's own view only (Synapse's
    // notify_user_signature_update); both kinds are a change of the signer's device list here.
    if (changed) core.deviceListChanged(userId);
    return ok({ failures });
  });

  // CS API PUT /_matrix/client/v3/sendToDevice/{eventType}/{txnId} (#put_matrixclientv3sendtodeviceeventtypetxnid):
  // to named devices or `*` (all of a user's devices); unknown devices are skipped. A retry with the
  // same transaction ID sends nothing again. Appservices may get them too (Core.sendToDevice).
  router.add("PUT", `${C}/sendToDevice/:eventType/:txnId`, async (req: Req) => {
    const requester = authenticate(core, req);
    return idempotent(core, req, requester, async () => {
      const body = await req.json();
      const messages = body["messages"];
      if (messages === undefined) throw missingParam("Missing params: ['messages']");
      if (!isJsonObject(messages)) throw badJson("messages must be an object");
      const type = req.params["eventType"] ?? "";
      const targets: Array<[string, string, JsonObject]> = [];
      for (const [userId, byDevice] of Object.entries(messages)) {
        if (!isJsonObject(byDevice) || !core.isLocalUser(userId)) continue;
        const devices = core.users.devices.get(userId);
        for (const [deviceId, content] of Object.entries(byDevice)) {
          if (!isJsonObject(content)) continue;
          const ids = deviceId === "*" ? [...(devices?.keys() ?? [])] : devices?.has(deviceId) ? [deviceId] : [];
          for (const id of ids) targets.push([userId, id, content]);
        }
      }
      core.sendToDevice(requester.userId, type, targets);
      return ok({});
    });
  });
}
