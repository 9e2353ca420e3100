// What end-to-end encryption needs of a homeserver (CS API §"End-to-End Encryption", §"Send-to-Device
// messaging"): device keys, one-time and fallback keys, cross-signing keys and their signatures,
// the to-device inbox of each device, and when each user's devices last changed. The homeserver
// only stores and hands these out; it checks signatures where Synapse does (cross-signing).
import { createPublicKey, verify } from "node:crypto";
import { type JsonObject, type JsonValue, canonicalJson, isJsonObject } from "./types.ts";

export interface ToDeviceMessage {
  pos: number;
  sender: string;
  type: string;
  content: JsonObject;
}

interface FallbackKey {
  keyId: string;
  key: JsonValue;
  used: boolean;
}

export type CrossSigningUsage = "master" | "self_signing" | "user_signing";

/** A signature on a key made by another key (Synapse's e2e_cross_signing_signatures). */
interface StoredSignature {
  signer: string;
  signerKeyId: string;
  targetUser: string;
  /** A device ID, or the public key of a cross-signing key. */
  targetKey: string;
  signature: string;
}

const deviceRef = (userId: string, deviceId: string): string => `${userId}|${deviceId}`;

/** The ed25519 public key of a cross-signing key (its only key, `ed25519:<public key>`). */
export function crossSigningPublicKey(key: JsonObject): string | undefined {
  const keys = key["keys"];
  if (!isJsonObject(keys)) return undefined;
  const entries = Object.entries(keys);
  if (entries.length !== 1) return undefined;
  const [id, value] = entries[0] ?? [];
  return typeof id === "string" && id.startsWith("ed25519:") && typeof value === "string" ? value : undefined;
}

/**
 * Appendix §"Signing JSON": whether `signed` carries a valid ed25519 signature by `userId`'s key
 * `ed25519:<keyName>` whose public key (unpadded base64) is `publicKey`.
 */
export function verifySignature(signed: JsonObject, userId: string, keyName: string, publicKey: string): boolean {
  const signatures = signed["signatures"];
  const byUser = isJsonObject(signatures) ? signatures[userId] : undefined;
  const signature = isJsonObject(byUser) ? byUser[`ed25519:${keyName}`] : undefined;
  if (typeof signature !== "string") return false;
  const rest: JsonObject = { ...signed };
  delete rest["signatures"];
  delete rest["unsigned"];
  try {
    const key = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: Buffer.from(publicKey, "base64").toString("base64url") }, format: "jwk" });
    return verify(null, Buffer.from(canonicalJson(rest), "utf8"), key, Buffer.from(signature, "base64"));
  } catch {
    return false;
  }
}

export class KeyStore {
  /** userId → deviceId → the device keys as uploaded. */
  private readonly deviceKeys = new Map<string, Map<string, JsonObject>>();
  /** device → `algorithm:key_id` → key, unclaimed only. */
  private readonly oneTimeKeys = new Map<string, Map<string, JsonValue>>();
  /** device → algorithm → the fallback key. */
  private readonly fallbackKeys = new Map<string, Map<string, FallbackKey>>();
  private readonly crossSigning = new Map<string, Map<CrossSigningUsage, JsonObject>>();
  private readonly signatures: StoredSignature[] = [];
  /** userId → stream position of the last change to their devices or cross-signing keys. */
  private readonly deviceListChanges = new Map<string, number>();
  private readonly inbox = new Map<string, ToDeviceMessage[]>();

  // Device keys

  /** Stores a device's keys; answers whether they differ from what was stored (Synapse's `set_e2e_device_keys`). */
  setDeviceKeys(userId: string, deviceId: string, keys: JsonObject): boolean {
    let devices = this.deviceKeys.get(userId);
    if (!devices) {
      devices = new Map();
      this.deviceKeys.set(userId, devices);
    }
    const old = devices.get(deviceId);
    if (old !== undefined && canonicalJson(old) === canonicalJson(keys)) return false;
    devices.set(deviceId, keys);
    return true;
  }

  deviceKeysOf(userId: string): Map<string, JsonObject> {
    return this.deviceKeys.get(userId) ?? new Map();
  }

  /** Forgets everything of a deleted device, as Synapse deletes a device with its keys and inbox. */
  deleteDevice(userId: string, deviceId: string): void {
    this.deviceKeys.get(userId)?.delete(deviceId);
    const ref = deviceRef(userId, deviceId);
    this.oneTimeKeys.delete(ref);
    this.fallbackKeys.delete(ref);
    this.inbox.delete(ref);
  }

  // One-time and fallback keys

  /** The stored one-time key of that ID, if any. */
  oneTimeKey(userId: string, deviceId: string, keyId: string): JsonValue | undefined {
    return this.oneTimeKeys.get(deviceRef(userId, deviceId))?.get(keyId);
  }

  addOneTimeKey(userId: string, deviceId: string, keyId: string, key: JsonValue): void {
    const ref = deviceRef(userId, deviceId);
    let keys = this.oneTimeKeys.get(ref);
    if (!keys) {
      keys = new Map();
      this.oneTimeKeys.set(ref, keys);
    }
    keys.set(keyId, key);
  }

  /**
   * Unclaimed one-time keys per algorithm; `signed_curve25519` always present, as Synapse's
   * `count_e2e_one_time_keys` (/sync, /keys/upload), unless `always` names none (appservice transactions).
   */
  oneTimeKeyCounts(userId: string, deviceId: string, always = ["signed_curve25519"]): Record<string, number> {
    const counts: Record<string, number> = Object.fromEntries(always.map((algorithm) => [algorithm, 0]));
    for (const keyId of this.oneTimeKeys.get(deviceRef(userId, deviceId))?.keys() ?? []) {
      const algorithm = keyId.split(":")[0] ?? "";
      counts[algorithm] = (counts[algorithm] ?? 0) + 1;
    }
    return counts;
  }

  /** Replaces the fallback key of an algorithm; an unchanged key keeps its "used" flag (Synapse's `set_e2e_fallback_keys`). */
  setFallbackKey(userId: string, deviceId: string, algorithm: string, keyId: string, key: JsonValue): void {
    const ref = deviceRef(userId, deviceId);
    let keys = this.fallbackKeys.get(ref);
    if (!keys) {
      keys = new Map();
      this.fallbackKeys.set(ref, keys);
    }
    const old = keys.get(algorithm);
    if (old && old.keyId === keyId && canonicalJson(old.key) === canonicalJson(key)) return;
    keys.set(algorithm, { keyId, key, used: false });
  }

  unusedFallbackKeyTypes(userId: string, deviceId: string): string[] {
    return [...(this.fallbackKeys.get(deviceRef(userId, deviceId))?.entries() ?? [])].filter(([, k]) => !k.used).map(([algorithm]) => algorithm);
  }

  /**
   * Claims a key of `algorithm`: a one-time key, removed once handed out, or when there is none
   * left the fallback key, which stays and is marked used (CS API §"One-time and fallback keys").
   */
  claim(userId: string, deviceId: string, algorithm: string): [string, JsonValue] | undefined {
    const ref = deviceRef(userId, deviceId);
    const keys = this.oneTimeKeys.get(ref);
    for (const [keyId, key] of keys ?? []) {
      if (keyId.startsWith(`${algorithm}:`)) {
        keys?.delete(keyId);
        return [keyId, key];
      }
    }
    const fallback = this.fallbackKeys.get(ref)?.get(algorithm);
    if (!fallback) return undefined;
    fallback.used = true;
    return [`${algorithm}:${fallback.keyId}`, fallback.key];
  }

  // Cross-signing

  crossSigningKey(userId: string, usage: CrossSigningUsage): JsonObject | undefined {
    return this.crossSigning.get(userId)?.get(usage);
  }

  setCrossSigningKey(userId: string, usage: CrossSigningUsage, key: JsonObject): void {
    let keys = this.crossSigning.get(userId);
    if (!keys) {
      keys = new Map();
      this.crossSigning.set(userId, keys);
    }
    keys.set(usage, key);
  }

  addSignature(signature: StoredSignature): void {
    const same = (s: StoredSignature) => s.signer === signature.signer && s.signerKeyId === signature.signerKeyId && s.targetUser === signature.targetUser && s.targetKey === signature.targetKey;
    const index = this.signatures.findIndex(same);
    if (index >= 0) this.signatures.splice(index, 1);
    this.signatures.push(signature);
  }

  /**
   * A stored key with the signatures uploaded separately merged in. `viewer` limits them to the
   * viewer's own (Synapse shows signatures on cross-signing keys to their signer only).
   */
  withSignatures(key: JsonObject, targetUser: string, targetKey: string, viewer?: string): JsonObject {
    const extra = this.signatures.filter((s) => s.targetUser === targetUser && s.targetKey === targetKey && (viewer === undefined || s.signer === viewer));
    if (extra.length === 0) return key;
    const signatures: Record<string, JsonObject> = {};
    const existing = key["signatures"];
    for (const [user, sigs] of Object.entries(isJsonObject(existing) ? existing : {})) signatures[user] = isJsonObject(sigs) ? { ...sigs } : {};
    for (const s of extra) (signatures[s.signer] ??= {})[s.signerKeyId] = s.signature;
    return { ...key, signatures };
  }

  // Device lists

  markDeviceListChanged(userId: string, pos: number): void {
    this.deviceListChanges.set(userId, pos);
  }

  /** Users whose devices or cross-signing keys changed in (since, upto]. */
  deviceListsChangedBetween(since: number, upto: number): string[] {
    return [...this.deviceListChanges.entries()].filter(([, pos]) => pos > since && pos <= upto).map(([userId]) => userId);
  }

  // To-device messages

  deliver(userId: string, deviceId: string, message: ToDeviceMessage): void {
    const ref = deviceRef(userId, deviceId);
    let queue = this.inbox.get(ref);
    if (!queue) {
      queue = [];
      this.inbox.set(ref, queue);
    }
    queue.push(message);
  }

  /** Drops what a sync from `since` shows the device has received (Synapse deletes up to the since token). */
  acknowledge(userId: string, deviceId: string, since: number): void {
    const ref = deviceRef(userId, deviceId);
    const queue = this.inbox.get(ref);
    if (queue)
      this.inbox.set(
        ref,
        queue.filter((m) => m.pos > since),
      );
  }

  pending(userId: string, deviceId: string, since: number | undefined, upto: number): ToDeviceMessage[] {
    return (this.inbox.get(deviceRef(userId, deviceId)) ?? []).filter((m) => (since === undefined || m.pos > since) && m.pos <= upto);
  }
}
