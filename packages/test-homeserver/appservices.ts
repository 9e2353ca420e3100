import type { StoredEvent } from "./events.ts";
import type { AppserviceNamespace, AppserviceRegistration } from "./types.ts";

interface Namespace {
  regex: RegExp;
  exclusive: boolean;
}

/** Python's `re.match` anchors at the start only; named groups are spelt `(?P<name>…)` there. */
function compileNamespaces(list: AppserviceNamespace[] | undefined, kind: string, id: string): Namespace[] {
  if (list === undefined) return [];
  if (!Array.isArray(list)) throw new Error(`Appservice ${id}: bad namespace value for '${kind}'`);
  return list.map((ns) => {
    if (typeof ns !== "object" || ns === null) throw new Error(`Appservice ${id}: expected dict regex for ns '${kind}'`);
    if (typeof ns.exclusive !== "boolean") throw new Error(`Appservice ${id}: expected bool for 'exclusive' in ns '${kind}'`);
    if (typeof ns.regex !== "string") throw new Error(`Appservice ${id}: expected string for 'regex' in ns '${kind}'`);
    return { regex: new RegExp(`^(?:${ns.regex.replace(/\(\?P</g, "(?<")})`), exclusive: ns.exclusive };
  });
}

function firstMatch(namespaces: Namespace[], value: string): Namespace | undefined {
  return namespaces.find((ns) => ns.regex.test(value));
}

/** One registered application service (AS API §"Registration"; Synapse's `ApplicationService`). */
export class Appservice {
  readonly reg: AppserviceRegistration;
  readonly id: string;
  readonly senderId: string;
  /**
   * Where a transaction carries ephemeral events (MSC2409): `ephemeral` for `receive_ephemeral`
   * (Synapse's `supports_ephemeral` since 1.156; 1.67 does not know the key) and
   * `de.sorunome.msc2409.ephemeral` for `de.sorunome.msc2409.push_ephemeral` (1.67's only key).
   */
  readonly ephemeralKeys: { stable: boolean; unstable: boolean };
  /** `org.matrix.msc3202`: key counts and device-list changes in transactions (Synapse's `msc3202_transaction_extensions`). */
  readonly transactionExtensions: boolean;
  private readonly users: Namespace[];
  private readonly aliases: Namespace[];
  private readonly rooms: Namespace[];

  constructor(reg: AppserviceRegistration, serverName: string, synapse: "1.67" | "current") {
    for (const key of ["id", "as_token", "hs_token", "sender_localpart"] as const) {
      if (typeof reg[key] !== "string" || reg[key] === "") throw new Error(`Appservice registration is missing '${key}'`);
    }
    if (reg.id.includes("|")) throw new Error("application service ID cannot contain '|' character");
    if (reg.url !== null && reg.url !== undefined && typeof reg.url !== "string") {
      throw new Error(`Appservice ${reg.id}: 'url' must be a string or null`);
    }
    const msc3202 = reg["org.matrix.msc3202"];
    if (msc3202 !== undefined && typeof msc3202 !== "boolean") throw new Error("The `org.matrix.msc3202` option should be true or false if specified.");
    this.reg = reg;
    this.id = reg.id;
    this.senderId = `@${reg.sender_localpart}:${serverName}`;
    this.users = compileNamespaces(reg.namespaces?.users, "users", reg.id);
    this.aliases = compileNamespaces(reg.namespaces?.aliases, "aliases", reg.id);
    this.rooms = compileNamespaces(reg.namespaces?.rooms, "rooms", reg.id);
    this.ephemeralKeys = { stable: synapse === "current" && reg.receive_ephemeral === true, unstable: reg["de.sorunome.msc2409.push_ephemeral"] === true };
    this.transactionExtensions = msc3202 === true;
  }

  get url(): string | undefined {
    return typeof this.reg.url === "string" && this.reg.url !== "" ? this.reg.url.replace(/\/+$/, "") : undefined;
  }

  /** Whether it takes ephemeral events (typing, receipts) and, where enabled, to-device messages. */
  get receivesEphemeral(): boolean {
    return this.ephemeralKeys.stable || this.ephemeralKeys.unstable;
  }

  isUserInNamespace(userId: string): boolean {
    return firstMatch(this.users, userId) !== undefined;
  }

  isInterestedInUser(userId: string): boolean {
    return userId === this.senderId || this.isUserInNamespace(userId);
  }

  isExclusiveUser(userId: string): boolean {
    return userId === this.senderId || firstMatch(this.users, userId)?.exclusive === true;
  }

  isAliasInNamespace(alias: string): boolean {
    return firstMatch(this.aliases, alias) !== undefined;
  }

  isExclusiveAlias(alias: string): boolean {
    return firstMatch(this.aliases, alias)?.exclusive === true;
  }

  isRoomInNamespace(roomId: string): boolean {
    return firstMatch(this.rooms, roomId) !== undefined;
  }

  /** `is_interested_in_room`: room ID or one of its aliases in namespace, or a joined member in the user namespace. */
  isInterestedInRoom(roomId: string, aliases: string[], joinedMembers: string[]): boolean {
    return this.isRoomInNamespace(roomId) || aliases.some((alias) => this.isAliasInNamespace(alias)) || joinedMembers.some((userId) => this.isInterestedInUser(userId));
  }

  /** `is_interested_in_event` (synapse/appservice/__init__.py). */
  isInterestedInEvent(ev: StoredEvent, aliases: string[], joinedMembers: string[]): boolean {
    if (this.isInterestedInUser(ev.sender)) return true;
    if (ev.type === "m.room.member" && ev.stateKey !== undefined && this.isInterestedInUser(ev.stateKey)) return true;
    return this.isInterestedInRoom(ev.roomId, aliases, joinedMembers);
  }
}

export class AppserviceRegistry {
  private readonly byId = new Map<string, Appservice>();
  private readonly byToken = new Map<string, Appservice>();

  add(as: Appservice): void {
    if (this.byId.has(as.id)) throw new Error(`Duplicate appservice id: ${as.id}`);
    if (this.byToken.has(as.reg.as_token)) throw new Error(`Duplicate as_token in appservice ${as.id}`);
    this.byId.set(as.id, as);
    this.byToken.set(as.reg.as_token, as);
  }

  all(): Appservice[] {
    return [...this.byId.values()];
  }

  get(id: string): Appservice | undefined {
    return this.byId.get(id);
  }

  byAsToken(token: string): Appservice | undefined {
    return this.byToken.get(token);
  }

  /** The appservice, other than `allowed`, that claims the user ID exclusively. */
  exclusiveUserOwner(userId: string, allowed?: Appservice): Appservice | undefined {
    return this.all().find((as) => as !== allowed && as.isExclusiveUser(userId));
  }

  exclusiveAliasOwner(alias: string, allowed?: Appservice): Appservice | undefined {
    return this.all().find((as) => as !== allowed && as.isExclusiveAlias(alias));
  }
}
