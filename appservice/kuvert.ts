// Kuvert as one running service: database, homeserver side, the two listeners, the workers.
import { createHash } from "node:crypto";
import type { Server } from "node:http";
import { audit } from "./audit/audit.ts";
import { CommandHandler } from "./commands/commands.ts";
import { environmentKeys } from "./config/composed.ts";
import type { KuvertConfig } from "./config/schema.ts";
import { openDatabase, type Database } from "./db/database.ts";
import { databaseSchemaVersion, migrate } from "./db/migrate.ts";
import { buildInfo } from "./version.ts";
import { acquireEmbeddedLock, type EmbeddedLock } from "./db/lock.ts";
import { publicApp } from "./http/server.ts";
import { ErrCode, KuvertError } from "./errors.ts";
import { configureLogging, logger } from "./log.ts";
import { readiness, type Readiness } from "./health.ts";
import { scheduleRetention } from "./retention/retention.ts";
import { bindDatabase, registry } from "./metrics.ts";
import express from "express";
import { Homeserver } from "./matrix/homeserver.ts";
import { Inbox } from "./matrix/inbox.ts";
import { appserviceApp, boundPort, closeServer, listen } from "./matrix/listener.ts";
import { readRegistration, registrationMismatches, RegistrationError, type Registration } from "./matrix/registration.ts";
import { MembershipObserver, PowerLevelsObserver } from "./organisations/membership.ts";
import { Organisations, type ClerkAccountHooks } from "./organisations/service.ts";
import { RoomSync } from "./organisations/sync.ts";
import { RoomEventRouter } from "./rooms.ts";
import { texts } from "./i18n.ts";
import { MailOutbox } from "./mail/outbox.ts";
import type { NotificationKind } from "./mail/templates.ts";
import { DocumentScanner } from "./scanning/policy.ts";
import type { Scanner } from "./scanning/scanner.ts";
import { StaffRoom } from "./staff/staffroom.ts";
import { OpenIdTokenPurposes } from "./tokens/openid-purpose.ts";
import { requireScope } from "./http/auth.ts";
import { moduleEnabled, type BackgroundWorker, type ModuleContext, type ModuleParts, type ModuleServices } from "./module.ts";
import { modules } from "./modules.ts";
import { queues } from "./queues.ts";

const log = logger("kuvert");

/**
 * What Kuvert records about its configuration when it starts: a digest, never the secrets. Every key
 * that environmentKeys lists (the secrets, whichever section they are in) counts only as set or unset.
 */
function configDigest(config: KuvertConfig): string {
  const shown = JSON.parse(JSON.stringify(config)) as Record<string, unknown>;
  for (const path of Object.values(environmentKeys)) {
    const key = path[path.length - 1]!;
    const parent = path.slice(0, -1).reduce<Record<string, unknown> | undefined>((at, k) => at?.[k] as Record<string, unknown> | undefined, shown);
    if (parent) parent[key] = parent[key] ? "set" : "unset";
  }
  return createHash("sha256").update(JSON.stringify(shown)).digest("hex");
}

export interface StartOptions {
  /** Use this registration instead of reading appservice.registrationFile. */
  registration?: Registration;
  /** Apply the configured staff to rooms at start (default true). */
  syncStaff?: boolean;
  /** Where logs go (default: standard output). */
  logDestination?: NodeJS.WritableStream;
}

/** The parts of a running Kuvert that other parts (and tests) talk to. */
export interface Services {
  organisations: Organisations;
  roomSync: RoomSync;
  staffRoom: StaffRoom;
  scanner: Scanner;
  outbox: MailOutbox;
}

/**
 * The core's services and, under each module's name, its service. Asking for the service of a
 * module that is switched off throws KUVERT_MODULE_NOT_LOADED; `Kuvert.service(name)` says null instead.
 */
export type ServicesView = Services & ModuleServices;

export class Kuvert {
  readonly config: KuvertConfig;
  readonly db: Database;
  readonly homeserver: Homeserver;
  readonly services: ServicesView;
  readonly #moduleServices: ReadonlyMap<string, unknown>;
  readonly #moduleParts: readonly ModuleParts[];
  readonly #workers: BackgroundWorker[];
  readonly #servers: Server[];
  readonly #lock: EmbeddedLock | undefined;
  #stopping: Promise<void> | undefined;
  #botTimer: NodeJS.Timeout | undefined;
  #retention: { stop(): void } | undefined;

  private constructor(parts: {
    config: KuvertConfig;
    db: Database;
    homeserver: Homeserver;
    services: ServicesView;
    moduleServices: ReadonlyMap<string, unknown>;
    moduleParts: readonly ModuleParts[];
    workers: BackgroundWorker[];
    servers: Server[];
    lock: EmbeddedLock | undefined;
  }) {
    this.config = parts.config;
    this.db = parts.db;
    this.homeserver = parts.homeserver;
    this.services = parts.services;
    this.#moduleServices = parts.moduleServices;
    this.#moduleParts = parts.moduleParts;
    this.#workers = parts.workers;
    this.#servers = parts.servers;
    this.#lock = parts.lock;
  }

  /** A module's public service, or null when that module is switched off. */
  service<K extends keyof ModuleServices>(name: K): ModuleServices[K] | null {
    // The map holds under each module's name the service its start returned (typed by defineModule).
    return (this.#moduleServices.get(name) ?? null) as ModuleServices[K] | null;
  }

  get appservicePort(): number {
    return boundPort(this.#servers[0]!);
  }

  get publicPort(): number {
    return boundPort(this.#servers[1]!);
  }

  /** The metrics listener's port, or null when metrics are switched off. */
  get metricsPort(): number | null {
    return this.#servers[2] ? boundPort(this.#servers[2]) : null;
  }

  static async start(config: KuvertConfig, opts: StartOptions = {}): Promise<Kuvert> {
    configureLogging({ level: config.logging.level, pseudonymKey: config.logging.pseudonymKey, ...(opts.logDestination ? { destination: opts.logDestination } : {}) });
    const registration = opts.registration ?? readRegistration(config.appservice.registrationFile);
    const mismatches = registrationMismatches(config, registration);
    if (mismatches.length > 0) {
      throw new RegistrationError(`The registration does not match the configuration:\n  - ${mismatches.join("\n  - ")}\nMake a new one with \`kuvert generate-registration --force\`.`);
    }
    const lock = config.database.url ? undefined : acquireEmbeddedLock(config.database.embeddedDir);
    let db: Database | undefined;
    // Set once listening: a start that fails later stops what it started, so no half-started process lingers.
    let started: Kuvert | undefined;
    let ready = false;
    try {
      db = await openDatabase(config.database);
      const applied = await migrate(db);
      if (applied.length) log.info({ applied }, "database migrated");
      log.info({ ...buildInfo(), databaseSchemaVersion: await databaseSchemaVersion(db) }, "Kuvert starting");
      await db.transaction((tx) => audit(tx, { actor: "kuvert", action: "configuration.loaded", outcome: "ok", details: { digest: configDigest(config), database: db!.kind, version: buildInfo().version, commit: buildInfo().commit } }));

      const database = db;
      const homeserver = new Homeserver(config, registration);
      await homeserver.start();
      const workers: BackgroundWorker[] = [];
      const staffRoom = new StaffRoom(db, homeserver, config);
      // The module that creates clerk accounts (if any) starts below, after the organisations.
      const clerkAccounts: { from?: ClerkAccountHooks } = {};
      const roomSync = new RoomSync(db, homeserver, config, staffRoom, () => clerkAccounts.from);
      const roomWorker = roomSync.worker();
      const organisations = new Organisations(
        db,
        () => roomWorker.wake(),
        () => clerkAccounts.from,
      );
      const isOwnUser = (userId: string) => userId === homeserver.botUserId || userId.startsWith(`@${config.appservice.userPrefix}`);
      const scanner = new DocumentScanner(config.scanning, config.documents.stagingDir);
      // Staff hear once (per problem and day) that clamd would let malware through and documents wait.
      scanner.canaries.onUnsafe = async ({ key, problem }) => {
        await database.transaction((tx) => staffRoom.alertByMail(tx, { key, mail: problem }));
        await staffRoom.post({ key, body: problem });
      };
      const outbox = new MailOutbox(db, config);
      outbox.onDead = async (row) => {
        const body = texts(config.organisations.language).mailDead(row.id, row.attempts, row.last_error ?? "?");
        await staffRoom.post({ key: `mail-dead:${row.id}`, body });
      };
      const mailWorker = outbox.worker();
      // One record of OpenID tokens and their purposes for /verify, the console and the call link page.
      const openIdPurposes = new OpenIdTokenPurposes(db);
      // The worker of room events is made once the modules said which event types it holds back.
      const inboxWake = { now: (): void => undefined };
      const { parts: moduleParts, services: moduleServices } = await startModules({
        config,
        db,
        homeserver,
        staffRoom,
        scanner,
        outbox,
        organisations,
        openIdPurposes,
        queues,
        requireScope: (...scopes) => requireScope(database, ...scopes),
        wakeMail: () => mailWorker.wake(),
        wakeRooms: () => roomWorker.wake(),
        wakeInbox: () => inboxWake.now(),
        // The checks below include the modules' own, so they are made after the modules started.
        readiness: { check: () => readinessChecks.check() },
      });
      clerkAccounts.from = moduleParts.find((p) => p.clerkAccounts)?.clerkAccounts;
      const fromModules = <T>(part: (p: ModuleParts) => T[] | undefined): T[] => moduleParts.flatMap((p) => part(p) ?? []);
      const encryption = moduleParts.find((p) => p.roomEncryption)?.roomEncryption;
      if (encryption) homeserver.useEncryption(encryption);
      const inbox = new Inbox(db, isOwnUser, config.workers.leaseSeconds, { parts: fromModules((p) => p.transactionParts), held: fromModules((p) => p.heldEventTypes) });
      for (const p of moduleParts) for (const [kind, render] of Object.entries(p.mailRenderers ?? {})) if (render) outbox.renderWith(kind as NotificationKind, render);
      const router = new RoomEventRouter(db, [
        new MembershipObserver(db, homeserver.botUserId, roomSync),
        new PowerLevelsObserver(db, homeserver.botUserId, () => roomWorker.wake()),
        ...fromModules((p) => p.roomHandlers),
        new CommandHandler(
          homeserver,
          config,
          fromModules((p) => p.commands),
        ),
      ]);
      const inboxWorker = inbox.worker((event) => router.dispatch(event), config.workers.concurrency, config.workers.pollMilliseconds);
      inboxWake.now = () => inboxWorker.wake();
      workers.push(inboxWorker, roomWorker, mailWorker, ...fromModules((p) => p.workers));
      const services = servicesView({ organisations, roomSync, staffRoom, scanner, outbox }, moduleServices);

      const checks = readiness(
        {
          database: async () => {
            await database.query("SELECT 1");
            return { ok: true, detail: database.kind };
          },
          homeserver: () => homeserver.ping(),
          scanner: () => scanner.ping(),
          mail: () => outbox.ping(),
          ...Object.assign({}, ...moduleParts.map((p) => p.readiness ?? {})),
        },
        // Checks of other services (and every module's) are cached.
        new Set(["homeserver", "scanner", "mail", ...moduleParts.flatMap((p) => Object.keys(p.readiness ?? {}))]),
      );
      // Not ready until the start is through (bot, staff room, workers, staff sync): an orchestrator
      // sends no traffic to, and a test does not pause the database under, a half-started Kuvert.
      const readinessChecks: Readiness = {
        async check() {
          const result = await checks.check();
          return ready ? result : { ready: false, checks: { ...result.checks, startup: { ok: false, detail: "starting" } } };
        },
      };

      const asServer = await listen(
        appserviceApp({
          hsToken: registration.hs_token,
          inbox,
          onStored: () => inboxWorker.wake(),
          readiness: readinessChecks,
          routes: fromModules((p) => p.appserviceRoutes),
        }),
        config.appservice.listener.bindAddress,
        config.appservice.listener.port,
      );
      const publicServer = await listen(
        publicApp({
          db,
          organisations,
          readiness: readinessChecks,
          baseUrl: config.publicApi.baseUrl,
          trustProxy: config.publicApi.trustProxy,
          rateLimitPerMinute: config.publicApi.rateLimitPerMinute,
          failedAuthPerMinute: config.publicApi.failedAuthPerMinute,
          moduleRoutes: fromModules((p) => p.publicRoutes),
          moduleAdminRoutes: fromModules((p) => p.adminRoutes),
        }),
        config.publicApi.listener.bindAddress,
        config.publicApi.listener.port,
      );
      bindDatabase(db);
      const servers = [asServer, publicServer];
      if (config.metrics.enabled) {
        const metricsApp = express();
        metricsApp.get("/metrics", async (_req, res) => {
          res.type(registry.contentType).send(await registry.metrics());
        });
        servers.push(await listen(metricsApp, config.metrics.listener.bindAddress, config.metrics.listener.port));
      }
      const kuvert = new Kuvert({ config, db, homeserver, services, moduleServices, moduleParts, workers, servers, lock });
      started = kuvert;
      log.info({ appservicePort: kuvert.appservicePort, publicPort: kuvert.publicPort, database: db.kind }, "Kuvert listening");
      await kuvert.#prepareBot();
      // clamd gets its canaries at start; the first scan waits for the answer.
      void scanner.canaries.check().catch((err: unknown) => log.warn({ err }, "the scanner's canaries could not be sent; they are sent again before the first scan"));
      for (const w of workers) w.start();
      for (const p of moduleParts) await p.start?.();
      kuvert.#retention = scheduleRetention(db, config);
      if (opts.syncStaff !== false) await organisations.syncStaff(config.staff);
      ready = true;
      return kuvert;
    } catch (err) {
      if (started) {
        await started.stop().catch(() => undefined);
      } else {
        await db?.close().catch(() => undefined);
        lock?.release();
      }
      throw err;
    }
  }

  /** The bot must exist before rooms are made; while the homeserver is unreachable, Kuvert keeps trying. */
  async #prepareBot(attempt = 1): Promise<void> {
    try {
      await this.homeserver.prepareBot();
      await this.services.staffRoom.ensure().catch((err: unknown) => log.error({ err }, "the staff room could not be set up; alerts will try again"));
    } catch (err) {
      const delay = Math.min(60_000, 1000 * 2 ** Math.min(attempt, 6));
      log.warn({ err, retryInMs: delay }, "the homeserver is not answering yet; Kuvert keeps trying");
      if (this.#stopping) return;
      this.#botTimer = setTimeout(() => void this.#prepareBot(attempt + 1), delay);
    }
  }

  /** Stops taking work, lets claimed work finish, closes listeners and the database. */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      clearTimeout(this.#botTimer);
      this.#retention?.stop();
      log.info("stopping");
      await Promise.all(this.#servers.map((s) => closeServer(s)));
      for (const p of this.#moduleParts) await p.stop?.();
      await Promise.all(this.#workers.map((w) => w.stop()));
      this.services.outbox.close();
      await this.db.close();
      this.#lock?.release();
      log.info("stopped");
    })();
    return this.#stopping;
  }
}

/** Starts the modules switched on, in list order (each sees the services of those before it), and the stand-ins of those switched off. */
async function startModules(shared: Omit<ModuleContext, "service">): Promise<{ parts: ModuleParts[]; services: Map<string, unknown> }> {
  const services = new Map<string, unknown>();
  // Each module's service is stored under its own name, as its defineModule typed it.
  const ctx: ModuleContext = { ...shared, service: (name) => (services.get(name) ?? null) as ModuleServices[typeof name] | null };
  const parts: ModuleParts[] = [];
  for (const m of modules) {
    const on = moduleEnabled(m, shared.config);
    const p = on ? await m.start(ctx) : ((await m.whenOff?.(ctx)) ?? {});
    if (on && p.service !== undefined) services.set(m.name, p.service);
    parts.push(p);
    log.debug({ module: m.name, on }, "module started");
  }
  return { parts, services };
}

/** The core's services with each module's under its name (a getter: a module switched off has none to give). */
function servicesView(core: Services, moduleServices: ReadonlyMap<string, unknown>): ServicesView {
  const getters: PropertyDescriptorMap = {};
  for (const m of modules) {
    getters[m.name] = {
      enumerable: true,
      get: () => {
        if (!moduleServices.has(m.name)) throw new KuvertError(ErrCode.ModuleNotLoaded, `The module ${m.name} is switched off in this Kuvert (modules.${m.name}).`);
        return moduleServices.get(m.name);
      },
    };
  }
  // Every module in the list has its getter; each returns the service its own start gave (typed by defineModule).
  return Object.defineProperties({ ...core }, getters) as ServicesView;
}
