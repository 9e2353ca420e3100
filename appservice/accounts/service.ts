// Clerk accounts on the homeserver: chosen and checked when an admin asks for them, created by a
// worker through Synapse's admin API, then a normal clerk (invited by RoomSync). The password of
// the letter is generated and set on the homeserver only when the letter is produced, and is
// never stored; the letter can be produced once, another only after an (audited) password reset.
import { randomUUID } from "node:crypto";
import { audit } from "../audit/audit.ts";
import type { KuvertConfig } from "../config/schema.ts";
import type { Database, Queryable } from "../db/database.ts";
import { ErrCode, KuvertError } from "../errors.ts";
import { letterLanguage, type Language } from "../i18n.ts";
import { logger, pseudonym } from "../log.ts";
import { enqueueNotification } from "../mail/outbox.ts";
import type { ClerkInput } from "../organisations/model.ts";
import { requestRoomSync } from "../organisations/store.ts";
import { Worker, WorkQueue, type QueueRow } from "../workers/queue.ts";
import { renderLetters, type Letter } from "./letter.ts";
import { signInUrl } from "./mail.ts";
import { accountFailedAlert } from "./texts.ts";
import { generatePassword } from "./password.ts";
import * as store from "./store.ts";
import { KUVERT_AUTH_PROVIDER, SynapseAdmin, SynapseAdminError, adminErrorToKuvert, type SynapseUser } from "./synapse.ts";
import { derivedCandidates, localpartProblem, preferredLocalpart } from "./username.ts";
import { AccountErr } from "./errors.ts";

const log = logger("accounts");

interface CreationRow extends QueueRow {
  account_id: string;
}

/** What removing a clerk with a Kuvert account would do. */
export interface DeactivationPlan {
  matrixId: string;
  state: store.AccountState;
  /** Other organisations the person is still a clerk of. */
  otherOrganisations: string[];
}

/** Where staff hear of accounts that could not be created (the staff room and mailbox; accounts/module.ts). */
export interface AccountAlerts {
  /** Written in the transaction that marks the account failed (the staff mailbox). */
  inTransaction(tx: Queryable, alert: { key: string; body: string }, organisationId: string): Promise<void>;
  /** After the commit (the staff room); a failure here is logged, not retried. */
  post(alert: { key: string; body: string }): Promise<void>;
}

export class Accounts {
  readonly queue: WorkQueue<CreationRow>;
  /** Absent (the command line, tests): a failed account is logged and shown in its record only. */
  readonly alerts: AccountAlerts | undefined;
  readonly admin: SynapseAdmin;
  readonly #db: Database;
  readonly #config: KuvertConfig;
  /** Called after an account was created, to wake the room worker (the clerk is invited). */
  readonly #onCreated: () => void;
  #worker: Worker<CreationRow> | undefined;

  constructor(db: Database, config: KuvertConfig, onCreated: () => void = () => undefined, admin = new SynapseAdmin(config), alerts?: AccountAlerts) {
    this.#db = db;
    this.alerts = alerts;
    this.#config = config;
    this.#onCreated = onCreated;
    this.admin = admin;
    this.queue = new WorkQueue<CreationRow>(db, { table: "account_creation", key: "account_id", order: "q.requested_at", maxAttempts: 10 }, config.workers.leaseSeconds);
  }

  worker(): Worker<CreationRow> {
    this.#worker = new Worker<CreationRow>({
      name: "accounts",
      queue: this.queue,
      concurrency: Math.min(2, this.#config.workers.concurrency),
      pollMilliseconds: this.#config.workers.pollMilliseconds,
      handle: async (row) => {
        await this.create(row.account_id);
        await this.queue.complete(row);
      },
      onGaveUp: async (row, err) => {
        await this.#fail(row.account_id, `the homeserver kept failing: ${(err as Error).message}`);
      },
    });
    return this.#worker;
  }

  wake(): void {
    this.#worker?.wake();
  }

  #domain(): string {
    return this.#config.homeserver.domain;
  }

  /**
   * Turns clerks marked createAccount into clerks with the Matrix ID their account will have:
   * an account Kuvert already runs for the same e-mail address is reused, a preferred username
   * is checked, otherwise one is derived from the name (anna.beispiel, then anna.beispiel2, …).
   * Throws a KuvertError naming the clerk when a username is taken or invalid, or the homeserver
   * admin API cannot be used; nothing is changed then.
   */
  async prepare(clerks: ClerkInput[]): Promise<ClerkInput[]> {
    if (!clerks.some((c) => c.createAccount)) return clerks;
    if (!this.#config.modules.accounts) {
      throw new KuvertError(ErrCode.ModuleRequired, "Creating accounts is switched off (modules.accounts); give the clerk's Matrix ID instead.");
    }
    this.admin.requireToken();
    const prefix = this.#config.appservice.userPrefix;
    const chosen = new Set<string>();
    const out: ClerkInput[] = [];
    for (const c of clerks) {
      if (!c.createAccount) {
        out.push(c);
        continue;
      }
      const label = `Clerk ${c.name ?? c.email}`;
      const email = c.email!;
      let matrixId: string | undefined;
      if (!c.matrixId && !c.username) {
        const existing = await store.activeByEmail(this.#db, email);
        if (existing) matrixId = existing.matrix_id;
      }
      if (!matrixId && (c.matrixId || c.username)) {
        const localpart = preferredLocalpart(c.username ?? c.matrixId!, this.#domain(), prefix);
        matrixId = `@${localpart}:${this.#domain()}`;
        const existing = await store.byMatrixId(this.#db, matrixId);
        if (existing?.state === "deactivated") {
          throw new KuvertError(AccountErr.UsernameTaken, `${label}: the username ${localpart} belonged to an account that was deactivated; the homeserver never gives a name out again. Choose another.`);
        }
        if (existing && existing.email.toLowerCase() !== email.toLowerCase()) {
          throw new KuvertError(AccountErr.UsernameTaken, `${label}: the username ${localpart} is the account of another clerk.`);
        }
        if (!existing) await this.#available(localpart, label);
      }
      if (!matrixId) {
        for (const candidate of derivedCandidates(c.name!, email)) {
          if (localpartProblem(candidate, prefix)) continue;
          const id = `@${candidate}:${this.#domain()}`;
          if (chosen.has(id) || (await store.byMatrixId(this.#db, id))) continue;
          try {
            await this.admin.usernameAvailable(candidate, this.#domain());
          } catch (err) {
            if (err instanceof SynapseAdminError && (err.errcode === "M_USER_IN_USE" || err.errcode === "M_EXCLUSIVE")) continue;
            throw adminErrorToKuvert(err, label);
          }
          matrixId = id;
          break;
        }
        if (!matrixId) throw new KuvertError(AccountErr.UsernameTaken, `${label}: no free username could be derived from the name; give one (username).`);
      }
      if (chosen.has(matrixId)) throw new KuvertError(ErrCode.InvalidInput, `${label}: ${matrixId} is listed twice.`);
      chosen.add(matrixId);
      out.push({ matrixId, email, name: c.name!, createAccount: true });
    }
    return out;
  }

  async #available(localpart: string, label: string): Promise<void> {
    try {
      await this.admin.usernameAvailable(localpart, this.#domain());
    } catch (err) {
      throw adminErrorToKuvert(err, `${label} (username ${localpart})`);
    }
  }

  /** Records the account to be created, inside the organisation change's transaction. Answers whether it is new. */
  notYetCreated(q: Queryable, organisationId: string): Promise<Set<string>> {
    return store.notYetCreated(q, organisationId);
  }

  async recordIn(tx: Queryable, organisationId: string, clerk: ClerkInput, actor: string): Promise<boolean> {
    if (!clerk.createAccount || !clerk.matrixId) return false;
    if (await store.byMatrixId(tx, clerk.matrixId)) return false;
    const { rows } = await tx.query<{ id: string }>("INSERT INTO clerk_accounts (matrix_id, email, display_name, organisation_id, marker) VALUES ($1, $2, $3, $4, $5) RETURNING id", [clerk.matrixId, clerk.email!.toLowerCase(), clerk.name!, organisationId, randomUUID()]);
    await tx.query("INSERT INTO account_creation (account_id) VALUES ($1)", [rows[0]!.id]);
    await audit(tx, { actor, action: "account.requested", organisationId, object: clerk.matrixId, outcome: "ok" });
    return true;
  }

  /** Whether an account found on the homeserver is the one an earlier attempt of Kuvert made. */
  static madeByKuvert(user: SynapseUser, account: store.AccountRow): boolean {
    if (Array.isArray(user.external_ids)) {
      return user.external_ids.some((e) => e.auth_provider === KUVERT_AUTH_PROVIDER && e.external_id === account.marker);
    }
    // An older Synapse neither stores nor reports external ids: an account created after
    // Kuvert's first attempt began, carrying the clerk's address, is taken as Kuvert's.
    if (!account.create_started_at || typeof user.creation_ts !== "number") return false;
    const started = Math.floor(account.create_started_at.getTime() / 1000) - 1;
    return user.creation_ts >= started && (user.threepids ?? []).some((t) => t.medium === "email" && t.address.toLowerCase() === account.email.toLowerCase());
  }

  /** The worker's step: creates (or adopts) the account on the homeserver, then makes it a normal clerk. */
  async create(accountId: string): Promise<void> {
    let account = await store.byId(this.#db, accountId);
    if (!account || account.state !== "requested") return;
    if (!this.admin.configured) {
      await this.#fail(accountId, "no homeserver admin token is configured (homeserver.adminToken)");
      return;
    }
    if (!account.create_started_at) {
      const { rows } = await this.#db.query<store.AccountRow>("UPDATE clerk_accounts SET create_started_at = now() WHERE id = $1 RETURNING *", [accountId]);
      account = rows[0]!;
    }
    let adopted = false;
    try {
      const existing = await this.admin.getUser(account.matrix_id);
      if (existing) {
        if (!Accounts.madeByKuvert(existing, account)) {
          await this.#fail(accountId, `an account ${account.matrix_id} already existed on the homeserver and was not made by Kuvert; it is left alone`);
          return;
        }
        adopted = true;
      } else {
        // A random password nobody learns: no one can sign in before the letter sets the real one.
        const unknowable = generatePassword({ ...this.#config.accounts.password, length: 48 });
        const result = await this.admin.putUser(account.matrix_id, {
          password: unknowable,
          displayname: account.display_name,
          threepids: [{ medium: "email", address: account.email }],
          admin: false,
          external_ids: [{ auth_provider: KUVERT_AUTH_PROVIDER, external_id: account.marker }],
        });
        if (!result.created) {
          await this.#fail(accountId, `the account ${account.matrix_id} appeared on the homeserver while Kuvert created it, and the homeserver changed it instead: check it by hand`);
          log.error({ account: accountId, user: pseudonym(account.matrix_id) }, "an account appeared on the homeserver between Kuvert's check and its creation");
          return;
        }
      }
    } catch (err) {
      if (err instanceof SynapseAdminError && !err.transient) {
        await this.#fail(accountId, adminErrorToKuvert(err, "creating the account").message);
        return;
      }
      throw err;
    }
    const final = account;
    await this.#db.transaction(async (tx) => {
      const { rowCount } = await tx.query("UPDATE clerk_accounts SET state = 'letter_ready', account_created_at = now() WHERE id = $1 AND state = 'requested'", [accountId]);
      if (rowCount === 0) return;
      await audit(tx, { actor: "kuvert", action: "account.created", organisationId: final.organisation_id, object: final.matrix_id, outcome: "ok", details: adopted ? { adopted: true } : {} });
      const orgs = (await store.organisationsOf(tx, [final.matrix_id])).get(final.matrix_id) ?? [];
      await this.#mail(tx, final, "created", orgs[0]?.name);
      for (const org of orgs) await requestRoomSync(tx, org.id);
    });
    log.info({ account: accountId, user: pseudonym(account.matrix_id), adopted }, "clerk account created on the homeserver");
    this.#onCreated();
  }

  async #mail(tx: Queryable, account: store.AccountRow, kind: "created" | "reset", organisationName: string | undefined): Promise<void> {
    await enqueueNotification(tx, {
      kind: "account",
      to: account.email,
      organisationId: account.organisation_id,
      ...(organisationName ? { organisationName } : {}),
      items: [{ title: account.matrix_id, kind }],
      language: letterLanguage(this.#config),
      dedupeKey: `account-${kind}:${account.id}:${account.password_resets}`,
    });
  }

  async #fail(accountId: string, reason: string): Promise<void> {
    const alert = await this.#db.transaction(async (tx) => {
      const { rows } = await tx.query<store.AccountRow>("UPDATE clerk_accounts SET state = 'failed', failure = $2 WHERE id = $1 AND state = 'requested' RETURNING *", [accountId, reason.slice(0, 1000)]);
      const row = rows[0];
      if (!row) return undefined;
      await audit(tx, { actor: "kuvert", action: "account.failed", organisationId: row.organisation_id, object: row.matrix_id, outcome: "failed", details: { reason } });
      const a = { key: `account-failed:${row.id}`, body: accountFailedAlert(this.#config.organisations.language, row.matrix_id, row.organisation_id, reason) };
      await this.alerts?.inTransaction(tx, a, row.organisation_id);
      return a;
    });
    log.warn({ account: accountId, reason }, "clerk account could not be created");
    if (alert) await this.alerts?.post(alert).catch((err: unknown) => log.error({ err }, "the staff room could not be told of a failed account"));
  }

  /**
   * Produces the password letters of these accounts as one PDF: sets a fresh password on the
   * homeserver for each, renders, and marks the letters issued, in one transaction. A letter
   * already issued, or an account not (yet) on the homeserver, refuses the whole request.
   */
  async issueLetters(matrixIds: string[], actor: string, language: Language = letterLanguage(this.#config)): Promise<{ pdf: Buffer; count: number }> {
    if (matrixIds.length === 0) throw new KuvertError(AccountErr.AccountNotReady, "There is no account whose letter is due.");
    return this.#db.transaction(async (tx) => {
      const { rows } = await tx.query<store.AccountRow>("SELECT * FROM clerk_accounts WHERE matrix_id = ANY ($1) ORDER BY display_name, id FOR UPDATE", [matrixIds]);
      for (const id of matrixIds) {
        if (!rows.some((r) => r.matrix_id === id)) throw new KuvertError(ErrCode.NotFound, `Kuvert made no account ${id}.`);
      }
      for (const r of rows) this.#requireLetterReady(r);
      this.admin.requireToken();
      const orgs = await store.organisationsOf(
        tx,
        rows.map((r) => r.matrix_id),
      );
      const letters: Letter[] = [];
      for (const r of rows) {
        const password = generatePassword(this.#config.accounts.password);
        try {
          await this.admin.resetPassword(r.matrix_id, password);
        } catch (err) {
          throw adminErrorToKuvert(err, `Setting the password of ${r.matrix_id}`);
        }
        const names = (orgs.get(r.matrix_id) ?? []).map((o) => o.name);
        letters.push({ clerkName: r.display_name, organisations: names.length ? names : [r.organisation_id], matrixId: r.matrix_id, password, reset: r.password_resets > 0 });
      }
      const pdf = await renderLetters(letters, {
        sender: this.#config.letters.sender,
        language,
        signInUrl: signInUrl(this.#config),
        keyBackup: this.#config.accounts.keyBackup,
      });
      letters.length = 0;
      for (const r of rows) {
        await tx.query("UPDATE clerk_accounts SET state = 'letter_issued', letters_issued = letters_issued + 1, letter_issued_at = now() WHERE id = $1", [r.id]);
        await audit(tx, { actor, action: "account.letter-issued", organisationId: r.organisation_id, object: r.matrix_id, outcome: "ok", details: { letter: r.letters_issued + 1, language, accounts: rows.length } });
      }
      log.info({ accounts: rows.length, users: rows.map((r) => pseudonym(r.matrix_id)) }, "password letters produced");
      return { pdf, count: rows.length };
    });
  }

  #requireLetterReady(r: store.AccountRow): void {
    switch (r.state) {
      case "letter_ready":
        return;
      case "letter_issued":
        throw new KuvertError(AccountErr.LetterAlreadyIssued, `The letter for ${r.matrix_id} was already produced (${r.letter_issued_at?.toISOString() ?? "earlier"}); a password is shown only once. Reset the password (POST …/password-reset) for a new letter.`);
      case "requested":
        throw new KuvertError(AccountErr.AccountNotReady, `The account ${r.matrix_id} is still being created on the homeserver; try again shortly.`);
      case "failed":
        throw new KuvertError(AccountErr.AccountNotReady, `The account ${r.matrix_id} could not be created: ${r.failure ?? "unknown reason"}.`);
      case "deactivated":
        throw new KuvertError(AccountErr.AccountNotReady, `The account ${r.matrix_id} is deactivated.`);
    }
  }

  /** Matrix IDs of the accounts whose letter is due, among the active clerks of these organisations. */
  async dueLetters(organisationIds: string[]): Promise<string[]> {
    const { rows } = await this.#db.query<{ matrix_id: string }>(
      `SELECT DISTINCT a.matrix_id FROM clerk_accounts a JOIN clerks c ON c.matrix_id = a.matrix_id
        WHERE c.organisation_id = ANY ($1) AND c.status = 'active' AND a.state = 'letter_ready'`,
      [organisationIds],
    );
    return rows.map((r) => r.matrix_id);
  }

  /**
   * Resets the password: the homeserver gets a new random password at once (the old one stops
   * working, every session ends), the account's letter is due again, the clerk gets the e-mail.
   */
  async resetPassword(matrixId: string, actor: string): Promise<store.Account> {
    const row = await this.#db.transaction(async (tx) => {
      const r = await store.byMatrixId(tx, matrixId, true);
      if (!r) throw new KuvertError(ErrCode.NotFound, `Kuvert made no account ${matrixId}.`);
      if (r.state === "letter_ready") {
        throw new KuvertError(AccountErr.AccountNotReady, `No letter was produced for ${matrixId} since the account was made or last reset: produce the letter instead.`);
      }
      if (r.state !== "letter_issued") this.#requireLetterReady(r);
      this.admin.requireToken();
      try {
        await this.admin.resetPassword(matrixId, generatePassword({ ...this.#config.accounts.password, length: 48 }));
      } catch (err) {
        throw adminErrorToKuvert(err, `Resetting the password of ${matrixId}`);
      }
      const { rows } = await tx.query<store.AccountRow>("UPDATE clerk_accounts SET state = 'letter_ready', password_resets = password_resets + 1 WHERE id = $1 RETURNING *", [r.id]);
      const updated = rows[0]!;
      await audit(tx, { actor, action: "account.password-reset", organisationId: r.organisation_id, object: matrixId, outcome: "ok", details: { reset: updated.password_resets } });
      const orgs = (await store.organisationsOf(tx, [matrixId])).get(matrixId) ?? [];
      await this.#mail(tx, updated, "reset", orgs[0]?.name);
      return updated;
    });
    log.info({ user: pseudonym(matrixId) }, "clerk password reset; a new letter is due");
    return this.get(row.matrix_id);
  }

  async get(matrixId: string): Promise<store.Account> {
    const r = await store.byMatrixId(this.#db, matrixId);
    if (!r) throw new KuvertError(ErrCode.NotFound, `Kuvert made no account ${matrixId}.`);
    const orgs = (await store.organisationsOf(this.#db, [matrixId])).get(matrixId) ?? [];
    return store.present(
      r,
      orgs.map((o) => o.id),
    );
  }

  async list(filter: { organisationId?: string | undefined; state?: store.AccountState | undefined } = {}): Promise<store.Account[]> {
    const rows = await store.list(this.#db, filter);
    const orgs = await store.organisationsOf(
      this.#db,
      rows.map((r) => r.matrix_id),
    );
    return rows.map((r) =>
      store.present(
        r,
        (orgs.get(r.matrix_id) ?? []).map((o) => o.id),
      ),
    );
  }

  /** What removing this clerk of this organisation would do to a Kuvert account, or null when there is none. */
  async deactivationPlan(organisationId: string, matrixId: string | null): Promise<DeactivationPlan | null> {
    if (!matrixId) return null;
    const r = await store.byMatrixId(this.#db, matrixId);
    if (!r || r.state === "deactivated") return null;
    const orgs = (await store.organisationsOf(this.#db, [matrixId])).get(matrixId) ?? [];
    return { matrixId, state: r.state, otherOrganisations: orgs.map((o) => o.id).filter((id) => id !== organisationId) };
  }

  /**
   * Deactivates the account on the homeserver (when it was created there) and records it. The
   * caller removes the clerk from the organisation right after; deactivating twice is harmless.
   */
  async deactivate(plan: DeactivationPlan, organisationId: string, actor: string): Promise<void> {
    const onHomeserver = plan.state === "letter_ready" || plan.state === "letter_issued";
    if (onHomeserver) {
      this.admin.requireToken();
      try {
        await this.admin.deactivate(plan.matrixId);
      } catch (err) {
        if (!(err instanceof SynapseAdminError && err.status === 404)) throw adminErrorToKuvert(err, `Deactivating ${plan.matrixId}`);
      }
    }
    await this.#db.transaction(async (tx) => {
      const { rowCount } = await tx.query("UPDATE clerk_accounts SET state = 'deactivated', deactivated_at = now(), failure = NULL WHERE matrix_id = $1 AND state <> 'deactivated'", [plan.matrixId]);
      if (rowCount === 0) return;
      await tx.query("UPDATE account_creation SET state = 'done', lease_until = NULL WHERE account_id = (SELECT id FROM clerk_accounts WHERE matrix_id = $1) AND state = 'pending'", [plan.matrixId]);
      await audit(tx, { actor, action: "account.deactivated", organisationId, object: plan.matrixId, outcome: "ok", details: { onHomeserver } });
    });
    log.info({ user: pseudonym(plan.matrixId), onHomeserver }, "clerk account deactivated");
  }
}
