import { randomBytes, timingSafeEqual } from "node:crypto";
import { newAccessToken, newDeviceId } from "./ids.ts";
import type { JsonObject } from "./types.ts";

export interface Threepid {
  medium: string;
  address: string;
  added_at: number;
  validated_at: number;
}

export interface Account {
  userId: string;
  localpart: string;
  password: string | undefined;
  admin: boolean;
  deactivated: boolean;
  erased: boolean;
  locked: boolean;
  displayname: string | null;
  avatarUrl: string | null;
  threepids: Threepid[];
  /** SSO identities (Synapse's user_external_ids): auth_provider and external_id. */
  externalIds: { auth_provider: string; external_id: string }[];
  createdTs: number;
  /** The appservice that registered this user in its exclusive namespace. */
  appserviceId: string | undefined;
  userType: string | null;
}

export interface Device {
  deviceId: string;
  userId: string;
  displayName: string | undefined;
  lastSeenTs: number;
}

export interface AccessTokenInfo {
  id: number;
  token: string;
  userId: string;
  deviceId: string;
}

interface AccountDataEntry {
  content: JsonObject;
  pos: number;
}

export interface Presence {
  presence: string;
  statusMsg: string | undefined;
  lastActiveTs: number;
}

export class UserStore {
  readonly accounts = new Map<string, Account>();
  readonly tokens = new Map<string, AccessTokenInfo>();
  readonly devices = new Map<string, Map<string, Device>>();
  /** userId → roomId ("" for global) → type → entry */
  readonly accountData = new Map<string, Map<string, Map<string, AccountDataEntry>>>();
  readonly filters = new Map<string, JsonObject[]>();
  readonly openidTokens = new Map<string, { userId: string; expiresAt: number }>();
  readonly presence = new Map<string, Presence>();
  private tokenSeq = 0;

  get(userId: string): Account | undefined {
    return this.accounts.get(userId);
  }

  /** Synapse looks users up case-insensitively when checking whether an ID is taken and at login. */
  findCaseInsensitive(userId: string): Account | undefined {
    const exact = this.accounts.get(userId);
    if (exact) return exact;
    const lower = userId.toLowerCase();
    return [...this.accounts.values()].find((a) => a.userId.toLowerCase() === lower);
  }

  create(userId: string, fields: Partial<Account> = {}): Account {
    const account: Account = {
      userId,
      localpart: userId.slice(1, userId.indexOf(":")),
      password: undefined,
      admin: false,
      deactivated: false,
      erased: false,
      locked: false,
      displayname: null,
      avatarUrl: null,
      threepids: [],
      externalIds: [],
      createdTs: Date.now(),
      appserviceId: undefined,
      userType: null,
      ...fields,
    };
    this.accounts.set(userId, account);
    return account;
  }

  checkPassword(account: Account, password: string): boolean {
    if (account.password === undefined) return false;
    const a = Buffer.from(account.password, "utf8");
    const b = Buffer.from(password, "utf8");
    return a.length === b.length && timingSafeEqual(a, b);
  }

  /** Registers (or re-uses) a device and issues an access token for it. */
  issueToken(userId: string, deviceId?: string, displayName?: string, token = newAccessToken()): AccessTokenInfo {
    const id = this.registerDevice(userId, deviceId, displayName);
    const info: AccessTokenInfo = { id: ++this.tokenSeq, token, userId, deviceId: id };
    this.tokens.set(token, info);
    return info;
  }

  registerDevice(userId: string, deviceId: string | undefined, displayName: string | undefined): string {
    const id = deviceId ?? newDeviceId();
    let devices = this.devices.get(userId);
    if (!devices) {
      devices = new Map();
      this.devices.set(userId, devices);
    }
    if (!devices.has(id)) devices.set(id, { deviceId: id, userId, displayName, lastSeenTs: Date.now() });
    return id;
  }

  revokeToken(token: string): void {
    this.tokens.delete(token);
  }

  /** Logs out every session of a user, keeping one token if given (Synapse's password change). */
  revokeAll(userId: string, except?: string): void {
    for (const [token, info] of this.tokens) {
      if (info.userId === userId && token !== except) this.tokens.delete(token);
    }
    if (except === undefined) this.devices.delete(userId);
  }

  getAccountData(userId: string, roomId: string, type: string): AccountDataEntry | undefined {
    return this.accountData.get(userId)?.get(roomId)?.get(type);
  }

  setAccountData(userId: string, roomId: string, type: string, content: JsonObject, pos: number): void {
    let perUser = this.accountData.get(userId);
    if (!perUser) {
      perUser = new Map();
      this.accountData.set(userId, perUser);
    }
    let perRoom = perUser.get(roomId);
    if (!perRoom) {
      perRoom = new Map();
      perUser.set(roomId, perRoom);
    }
    perRoom.set(type, { content, pos });
  }

  /** Account data of a room ("" for global) changed after `since` (all of it when since is undefined). */
  accountDataSince(userId: string, roomId: string, since: number | undefined): Array<{ type: string; content: JsonObject }> {
    const perRoom = this.accountData.get(userId)?.get(roomId);
    if (!perRoom) return [];
    return [...perRoom.entries()].filter(([, entry]) => since === undefined || entry.pos > since).map(([type, entry]) => ({ type, content: entry.content }));
  }

  addFilter(userId: string, filter: JsonObject): string {
    let list = this.filters.get(userId);
    if (!list) {
      list = [];
      this.filters.set(userId, list);
    }
    list.push(filter);
    return String(list.length - 1);
  }

  getFilter(userId: string, filterId: string): JsonObject | undefined {
    if (!/^\d+$/.test(filterId)) return undefined;
    return this.filters.get(userId)?.[Number(filterId)];
  }

  issueOpenidToken(userId: string, ttlMs: number): string {
    const token = randomBytes(24).toString("base64url");
    this.openidTokens.set(token, { userId, expiresAt: Date.now() + ttlMs });
    return token;
  }

  openidUser(token: string): string | undefined {
    const entry = this.openidTokens.get(token);
    if (!entry) return undefined;
    if (entry.expiresAt <= Date.now()) {
      this.openidTokens.delete(token);
      return undefined;
    }
    return entry.userId;
  }
}
