// Organisation decisions: what changes, what is audited, when the room must follow.
import { audit } from "../audit/audit.ts";
import type { Database, Queryable } from "../db/database.ts";
import { ErrCode, KuvertError, parseInput } from "../errors.ts";
import type { Role } from "../config/schema.ts";
import { normalise, organisationInput, organisationPatch, type ApplyOutcome, type ClerkInput, type OrganisationInput, type OrganisationPatch } from "./model.ts";
import * as store from "./store.ts";

/** Clerk accounts on the homeserver (appservice/accounts), when Kuvert is set up to create them. */
export interface ClerkAccountHooks {
  /** Gives clerks marked createAccount the Matrix ID of their account-to-be; throws a KuvertError naming the clerk. */
  prepare(clerks: ClerkInput[]): Promise<ClerkInput[]>;
  /** Records the account to be created, in the organisation change's transaction; answers whether it is new. */
  recordIn(tx: Queryable, organisationId: string, clerk: ClerkInput, actor: string): Promise<boolean>;
  wake(): void;
  /** Matrix IDs of the organisation's clerks whose accounts do not exist yet: the room worker does not invite them. */
  notYetCreated(q: Queryable, organisationId: string): Promise<Set<string>>;
}

export interface ApplyResult {
  outcome: ApplyOutcome;
  organisation: store.StoredOrganisation;
}

/** What a stored organisation looks like as input, for comparing and patching. */
export function asInput(org: store.StoredOrganisation): OrganisationInput {
  return normalise({
    id: org.id,
    name: org.name,
    tags: org.tags,
    clerks: org.clerks
      .filter((c) => c.status === "active")
      .map((c) => ({
        ...(c.matrixId ? { matrixId: c.matrixId } : {}),
        ...(c.email ? { email: c.email } : {}),
        ...(c.name ? { name: c.name } : {}),
      })),
  });
}

function sameClerk(a: ClerkInput, b: ClerkInput): boolean {
  return a.matrixId === b.matrixId && a.email === b.email && a.name === b.name;
}

export class Organisations {
  readonly #db: Database;
  /** Called after a commit that asked for room work, to wake the room worker. */
  readonly #onRoomWork: () => void;
  /** Where Kuvert creates clerk accounts, the module that does (accounts); none: `createAccount` is refused. */
  readonly #accounts: () => ClerkAccountHooks | undefined;

  /** `accounts` is looked up when a clerk asks for an account: the module that provides them starts after the organisations. */
  constructor(db: Database, onRoomWork: () => void = () => undefined, accounts: () => ClerkAccountHooks | undefined = () => undefined) {
    this.#db = db;
    this.#onRoomWork = onRoomWork;
    this.#accounts = accounts;
  }

  get accounts(): ClerkAccountHooks | undefined {
    return this.#accounts();
  }

  /** Creates the organisation or brings it to the given state. Idempotent: the same input twice changes nothing. */
  async apply(raw: unknown, actor: string): Promise<ApplyResult> {
    const input = await this.prepare(normalise(parseInput(organisationInput, raw)));
    const result = await this.#db.transaction((tx) => this.applyIn(tx, input, actor));
    if (result.outcome !== "unchanged") this.#woken();
    return result;
  }

  /** Resolves clerks marked createAccount to their accounts' Matrix IDs (before the transaction that applies them). */
  async prepare(input: OrganisationInput): Promise<OrganisationInput> {
    return { ...input, clerks: await this.#prepareClerks(input.clerks) };
  }

  async #prepareClerks(clerks: ClerkInput[]): Promise<ClerkInput[]> {
    if (!clerks.some((c) => c.createAccount)) return clerks;
    if (!this.accounts) throw new KuvertError(ErrCode.ModuleRequired, "This Kuvert does not create accounts; give the clerk's Matrix ID instead.");
    return this.accounts.prepare(clerks);
  }

  async #recordAccounts(tx: Queryable, input: OrganisationInput, actor: string): Promise<boolean> {
    let recorded = false;
    for (const clerk of input.clerks) {
      if (!clerk.createAccount) continue;
      if (!this.accounts || !clerk.matrixId) throw new KuvertError(ErrCode.ModuleRequired, "This Kuvert does not create accounts; give the clerk's Matrix ID instead.");
      if (await this.accounts.recordIn(tx, input.id, clerk, actor)) recorded = true;
    }
    return recorded;
  }

  #woken(): void {
    this.#onRoomWork();
    this.accounts?.wake();
  }

  /** apply() inside a caller's transaction (the CSV import applies each row in its own). */
  async applyIn(tx: Queryable, input: OrganisationInput, actor: string): Promise<ApplyResult> {
    const created = await store.insertOrganisation(tx, input.id, input.name, input.tags);
    const current = await store.findOrganisation(tx, input.id, true);
    if (!current) throw new Error(`organisation ${input.id} vanished during apply`);
    if (created) {
      for (const clerk of input.clerks) await store.addClerk(tx, input.id, clerk, undefined);
      await this.#recordAccounts(tx, input, actor);
      await audit(tx, {
        actor,
        action: "organisation.created",
        organisationId: input.id,
        object: input.id,
        outcome: "ok",
        details: { name: input.name, tags: input.tags, clerks: input.clerks.map((c) => c.matrixId ?? c.email) },
      });
      await store.requestRoomSync(tx, input.id);
      return { outcome: "created", organisation: (await store.findOrganisation(tx, input.id))! };
    }
    const before = asInput(current);
    if (current.state === "archived") {
      // Taking clerks out is still allowed (it ends their access, e.g. before erasing their data); nothing else.
      const sameDetails = before.name === input.name && before.tags.join(",") === input.tags.join(",");
      const nothingAdded = input.clerks.every((c) => before.clerks.some((b) => sameClerk(b, c)));
      if (!sameDetails || !nothingAdded) {
        throw new KuvertError(ErrCode.Archived, `Organisation ${input.id} is archived; only removing clerks is still possible.`);
      }
    }
    const changes: string[] = [];
    if (before.name !== input.name || before.tags.join(",") !== input.tags.join(",")) {
      await store.updateOrganisation(tx, input.id, input.name, input.tags);
      changes.push("details");
      await audit(tx, {
        actor,
        action: "organisation.updated",
        organisationId: input.id,
        object: input.id,
        outcome: "ok",
        details: { name: input.name, tags: input.tags, previous: { name: before.name, tags: before.tags } },
      });
    }
    const existing = new Map(current.clerks.map((c) => [store.clerkKey(c), c]));
    const wanted = new Map(input.clerks.map((c) => [store.clerkKey(c), c]));
    for (const [key, clerk] of wanted) {
      const stored = existing.get(key);
      if (stored?.status === "active") {
        const storedInput = before.clerks.find((c) => store.clerkKey(c) === key)!;
        if (!sameClerk(storedInput, clerk)) {
          await store.updateClerk(tx, stored.id, clerk);
          changes.push("clerk");
        }
        continue;
      }
      await store.addClerk(tx, input.id, clerk, stored);
      changes.push("clerk");
      await audit(tx, { actor, action: "clerk.added", organisationId: input.id, object: clerk.matrixId ?? clerk.email ?? null, outcome: "ok" });
    }
    for (const [key, stored] of existing) {
      if (stored.status !== "active" || wanted.has(key)) continue;
      await store.removeClerk(tx, stored.id);
      changes.push("clerk");
      await audit(tx, { actor, action: "clerk.removed", organisationId: input.id, object: stored.matrixId ?? stored.email, outcome: "ok" });
    }
    if (await this.#recordAccounts(tx, input, actor)) changes.push("account");
    if (changes.length === 0) return { outcome: "unchanged", organisation: current };
    await tx.query("UPDATE organisations SET updated_at = now() WHERE id = $1", [input.id]);
    await store.requestRoomSync(tx, input.id);
    return { outcome: "updated", organisation: (await store.findOrganisation(tx, input.id))! };
  }

  async patch(id: string, raw: unknown, actor: string): Promise<ApplyResult> {
    const parsed: OrganisationPatch = parseInput(organisationPatch, raw);
    const patch: OrganisationPatch = parsed.clerks ? { ...parsed, clerks: await this.#prepareClerks(parsed.clerks) } : parsed;
    const result = await this.#db.transaction(async (tx) => {
      const current = await this.#require(tx, id);
      const before = asInput(current);
      const input = normalise(parseInput(organisationInput, { id, name: patch.name ?? before.name, tags: patch.tags ?? before.tags, clerks: patch.clerks ?? before.clerks }));
      return this.applyIn(tx, input, actor);
    });
    if (result.outcome !== "unchanged") this.#woken();
    return result;
  }

  async addClerk(id: string, raw: unknown, actor: string): Promise<ApplyResult> {
    const current = await this.get(id);
    const before = asInput(current);
    return this.patch(id, { clerks: [...before.clerks, raw] }, actor);
  }

  /** Removes a clerk, named by Matrix ID or e-mail address. */
  async removeClerk(id: string, clerk: string, actor: string): Promise<ApplyResult> {
    const current = await this.get(id);
    const before = asInput(current);
    const key = clerk.startsWith("@") ? clerk : `email:${clerk.toLowerCase()}`;
    const remaining = before.clerks.filter((c) => store.clerkKey(c) !== key);
    if (remaining.length === before.clerks.length) {
      throw new KuvertError(ErrCode.NotFound, `${clerk} is not a clerk of organisation ${id}.`);
    }
    return this.patch(id, { clerks: remaining }, actor);
  }

  /** Archives: the room becomes read-only and is kept. Archiving twice changes nothing. */
  async archive(id: string, actor: string): Promise<ApplyResult> {
    const result = await this.#db.transaction(async (tx): Promise<ApplyResult> => {
      const current = await this.#require(tx, id, true);
      if (current.state === "archived") return { outcome: "unchanged", organisation: current };
      await store.archiveOrganisation(tx, id);
      await audit(tx, { actor, action: "organisation.archived", organisationId: id, object: id, outcome: "ok" });
      await store.requestRoomSync(tx, id);
      return { outcome: "updated", organisation: (await store.findOrganisation(tx, id))! };
    });
    if (result.outcome !== "unchanged") this.#onRoomWork();
    return result;
  }

  async get(id: string): Promise<store.StoredOrganisation> {
    return this.#require(this.#db, id);
  }

  list(filter: store.ListFilter = {}): Promise<store.StoredOrganisation[]> {
    return store.listOrganisations(this.#db, filter);
  }

  async #require(q: Queryable, id: string, forUpdate = false): Promise<store.StoredOrganisation> {
    const org = await store.findOrganisation(q, id, forUpdate);
    if (!org) throw new KuvertError(ErrCode.NotFound, `There is no organisation with the id ${id}.`);
    return org;
  }

  /**
   * Records the staff of the configuration. People added or taken out change every room,
   * so all rooms are brought in line. Returns whether anything changed.
   */
  async syncStaff(staff: { userId: string; roles: Role[] }[]): Promise<boolean> {
    const changed = await this.#db.transaction(async (tx) => {
      const stored = new Map((await store.staffMembers(tx)).map((s) => [s.matrix_id, s]));
      let changed = false;
      for (const s of staff) {
        const roles = [...s.roles].sort();
        const old = stored.get(s.userId);
        if (old?.status === "active" && old.roles.join(",") === roles.join(",")) continue;
        await store.upsertStaff(tx, s.userId, roles, "active");
        await audit(tx, { actor: "kuvert", action: "staff.set", object: s.userId, outcome: "ok", details: { roles, source: "configuration" } });
        changed = true;
      }
      const configured = new Set(staff.map((s) => s.userId));
      for (const old of stored.values()) {
        if (old.status === "removed" || configured.has(old.matrix_id)) continue;
        await store.upsertStaff(tx, old.matrix_id, old.roles, "removed");
        await audit(tx, { actor: "kuvert", action: "staff.removed", object: old.matrix_id, outcome: "ok", details: { source: "configuration" } });
        changed = true;
      }
      if (changed) await store.requestRoomSyncForAll(tx);
      return changed;
    });
    if (changed) this.#onRoomWork();
    return changed;
  }
}
