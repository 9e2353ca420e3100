// The contract between Kuvert's core and a domain (calls, circulars, …). A domain is one folder
// with a module.ts that exports a KuvertModule; appservice/modules.ts lists them in order. The core
// (kuvert.ts, the HTTP server, retention, data-subject requests, the OpenAPI document, the command
// line) goes through that list and names no module. A plain typed
// object, like Synapse's module API: what a domain adds is data the core reads, nothing is patched
// in afterwards.
//
// A domain's SQL migrations live in its own `migrations/` folder; db/migrate.ts finds them there
// (every migration applies, module on or off), so they are not part of this object.
import type { Command as CliCommand } from "commander";
import type express from "express";
import type { z } from "zod";
import type { KuvertConfig, ModuleConfig } from "./config/schema.ts";
import type { Database, Queryable } from "./db/database.ts";
import type { ErrCode } from "./errors.ts";
import type { Command } from "./commands/commands.ts";
import type { Check, Readiness } from "./health.ts";
import type { MailOutbox, MailRenderer } from "./mail/outbox.ts";
import type { NotificationKind } from "./mail/templates.ts";
import type { RoomEventHandler } from "./matrix/events.ts";
import type { Homeserver, RoomEncryption } from "./matrix/homeserver.ts";
import type { TransactionPart } from "./matrix/inbox.ts";
import type { ClerkAccountHooks, Organisations } from "./organisations/service.ts";
import type { RoomContext } from "./rooms.ts";
import type { DocumentScanner } from "./scanning/policy.ts";
import type { StaffRoom } from "./staff/staffroom.ts";
import type { OpenIdTokenPurposes } from "./tokens/openid-purpose.ts";
import type { Scope } from "./tokens/tokens.ts";

/**
 * The public services of the loaded modules, by module name. Each domain adds its own entry from
 * its module.ts (`declare module "../module.ts" { interface ModuleServices { calls: Calls } }`),
 * so that `ctx.service("calls")` is typed without the core naming the domain.
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- filled in by each domain's module.ts
export interface ModuleServices {}

/** What a module receives when Kuvert starts it: the shared infrastructure and the modules before it. */
export interface ModuleContext {
  config: KuvertConfig;
  db: Database;
  homeserver: Homeserver;
  staffRoom: StaffRoom;
  scanner: DocumentScanner;
  outbox: MailOutbox;
  /** The organisations and their clerks (the core's). */
  organisations: Organisations;
  /** One record of OpenID tokens and their purposes, shared by everything that accepts them. */
  openIdPurposes: OpenIdTokenPurposes;
  /** Middleware that admits API tokens (or a console session) with one of these scopes. */
  requireScope(...scopes: Scope[]): express.RequestHandler;
  /** Kuvert's work queues by name (the core's and every module's): table names, for a status page. */
  queues: Readonly<Record<string, string>>;
  /** Kuvert's readiness (the core's checks and every module's), for a status page. */
  readiness: Readiness;
  /** Wakes the mail worker after an e-mail was queued outside a work item. */
  wakeMail(): void;
  /** Wakes the room worker (room changes, power levels). */
  wakeRooms(): void;
  /** Wakes the worker of room events (after a module made a held event ready). */
  wakeInbox(): void;
  /** The public service of a module listed before this one; null when that module is switched off. */
  service<K extends keyof ModuleServices>(name: K): ModuleServices[K] | null;
}

/** A background worker as the core drives it (workers/queue.ts's Worker is one). */
export interface BackgroundWorker {
  start(): void;
  /** Stops claiming work and lets claimed work finish. */
  stop(): Promise<void>;
}

/** What a started module adds to the running Kuvert; every part is optional. */
export interface ModuleParts<K extends keyof ModuleServices = keyof ModuleServices> {
  /** Its public service, offered to the modules after it under the module's name. */
  service?: ModuleServices[K];
  /** Routers on the public listener, mounted at the root before the admin API, in module order. */
  publicRoutes?: express.Router[];
  /** Routers inside the admin API (scope admin, JSON bodies already read), before the organisations' routes. */
  adminRoutes?: express.Router[];
  /** Routers on the appservice listener (the homeserver's side). */
  appserviceRoutes?: express.Router[];
  /** Handlers of room events, in module order: after the core's membership and power-level observers, before the commands. */
  roomHandlers?: RoomEventHandler<RoomContext>[];
  /** Commands typed into rooms (`!name`). */
  commands?: Command[];
  /** Parts of the homeserver's transactions beyond their events that it keeps (stored with the events, before the answer). */
  transactionParts?: TransactionPart[];
  /** Event types the room handlers see only once this module rewrote them (m.room.encrypted, once decrypted). */
  heldEventTypes?: string[];
  /** How Kuvert's events reach end-to-end-encrypted rooms (one module at most). */
  roomEncryption?: RoomEncryption;
  /** Background workers: started after the listeners, stopped before the database closes. */
  workers?: BackgroundWorker[];
  /** Readiness checks shown on the internal /readyz, by name. */
  readiness?: Record<string, Check>;
  /** How the mail outbox renders this module's kinds of e-mail. */
  mailRenderers?: Partial<Record<NotificationKind, MailRenderer>>;
  /** Creates homeserver accounts for clerks marked `createAccount` (one module at most provides them). */
  clerkAccounts?: ClerkAccountHooks;
  /** Runs once the listeners are up (e.g. a singleton job's lease). */
  start?(): Promise<void>;
  /** Runs at stop, after the listeners closed and before the workers stop. */
  stop?(): Promise<void>;
}

/** One category that retention deletes; returns how many it deleted. */
export interface RetentionRule {
  /** The name of its count in the retention run's audit row and result. */
  count: string;
  /**
   * "inside" (the default): runs in the retention transaction, on rows. "after": runs once that
   * transaction committed, for what lies outside the database (staging files), which a rollback
   * could not bring back.
   */
  when?: "inside" | "after";
  run(q: Queryable, cutoffs: RetentionCutoffs, config: KuvertConfig): Promise<number>;
}

/** The cut-offs of one retention run, from `retention.*`. */
export interface RetentionCutoffs {
  now: Date;
  /** documentDays back: finished documents, ended calls. */
  documents: Date;
  /** mailDays back: e-mails and what names an address (guest links). */
  mail: Date;
  /** operationalDays back: handled events and finished work items. */
  operational: Date;
  /** stagingOrphanHours back: staging files no waiting work needs. */
  stagingOrphans: Date;
}

/** What the OpenAPI document's parts are written with (http/openapi.ts). */
export interface OpenApiTools {
  baseUrl: string;
  /** A zod schema as JSON Schema, as the request is validated. */
  schema(s: z.ZodType): unknown;
  /** The responses every endpoint can give (400, 401, 403). */
  errors: Record<string, unknown>;
}

/** The module's part of the admin API's OpenAPI document (documented whether or not it is switched on). */
export interface OpenApiPart {
  /** Entries of components.schemas. */
  schemas?(tools: OpenApiTools): Record<string, unknown>;
  /** Entries of components.securitySchemes. */
  securitySchemes?: Record<string, unknown>;
  /** Entries of paths, relative to /api/v1; merged into a path the core or a module before it documents (e.g. a query parameter it answers on the core's route). */
  paths?(tools: OpenApiTools): Record<string, unknown>;
}

/** What a module's commands on the command line get from `kuvert` (cli.ts). */
export interface CliContext {
  /** Who runs the command, for the audit log (`cli:<user>`). */
  actor: string;
  /** The configuration the command names (--config). */
  config(cmd: CliCommand): KuvertConfig;
  /** Opens the database for the command (refused while a running Kuvert holds the embedded one) and closes it after. */
  withDatabase<T>(cfg: KuvertConfig, fn: (db: Database) => Promise<T>): Promise<T>;
  /** Where and with which token a command reaches a running Kuvert's API: --url (default publicApi.baseUrl) and --token (default $KUVERT_TOKEN); `scopes` names what the token needs, for the error without one. */
  apiAccess(cmd: CliCommand, opts: { url?: string; token?: string }, scopes: string): { url: string; token: string };
}

/** What a data-subject request names: a Matrix ID, or an e-mail address. */
export type SubjectKind = "matrix-id" | "email";

/** A section of the data-subject report that the module's tables give. */
export interface SubjectSection {
  /** A stable key (the report's section name). */
  name: string;
  /** The core's section it follows in the report (clerks, staff, mail, roomEvents, roomProblems); those with the same place follow in module order. */
  after: string;
  /** Its rows for one subject: $1 is the Matrix ID as given or the e-mail address in lower case. Null: nothing for this kind. */
  sql(kind: SubjectKind): string | null;
  /** Its title and description (the English one goes into the report itself), and words for its fields, by language. */
  texts: Record<"de" | "en", { title: string; description: string; labels?: Record<string, string> }>;
}

/** What the module erased of one person, or kept, one line each (`key` is the count's name in the `subject.erased` audit row). */
export interface ErasedPart {
  key: string;
  what: string;
  count: number;
  /** Set for what is kept rather than erased: why (listed under `kept`, and counted there in the audit row). */
  why?: string;
}

/** The module's part of a data-subject request; used whether or not it is switched on (its tables exist either way). */
export interface SubjectPart {
  sections?: SubjectSection[];
  /**
   * Erases the person from its tables, inside the erasure's transaction, after the core's own
   * checks. May refuse (KUVERT_SUBJECT_STILL_ACTIVE): the whole erasure is then rolled back.
   */
  erase?(tx: Queryable, person: { subject: string; kind: SubjectKind; pseudonym: string; actor: string }): Promise<ErasedPart[]>;
}

export interface KuvertModule<K extends keyof ModuleServices = keyof ModuleServices> {
  /** The module's name: its folder, its entry in ModuleServices. */
  readonly name: K;
  /**
   * Its part of the configuration (its config.ts): its switch
   * `modules.<name>`, its section `<name>`, its secrets from the environment. Part of the schema
   * whether or not it is switched on.
   */
  readonly config?: ModuleConfig;
  /**
   * Whether the configuration switches it on; a module switched off is not started. Unset: its
   * switch `modules.<name>` when its config declares one, otherwise always.
   */
  enabled?(config: KuvertConfig): boolean;
  /** Starts the module; runs in list order, after the core's infrastructure is up. */
  start(ctx: ModuleContext): Promise<ModuleParts<K>> | ModuleParts<K>;
  /**
   * What stands in for the module while it is switched off: routes and commands that say so
   * (KUVERT_MODULE_NOT_LOADED, a sentence in the room) rather than "no such endpoint".
   */
  whenOff?(ctx: ModuleContext): ModuleParts<K> | Promise<ModuleParts<K>>;
  /**
   * Creates homeserver accounts for clerks marked `createAccount` outside a running Kuvert (the
   * command line's `kuvert org create` and `import`); a running Kuvert takes them from the started
   * module's ModuleParts.clerkAccounts. One module at most provides them.
   */
  clerkAccounts?(db: Database, config: KuvertConfig): ClerkAccountHooks;
  /** Adds its commands to `kuvert` (whether or not it is switched on; a command says so where that matters). */
  cli?(program: CliCommand, ctx: CliContext): void;
  /** Its work queues by name, each a table with the queue columns (counted in kuvert_queue_depth and on the status page). */
  readonly queues?: Readonly<Record<string, string>>;
  /** Its part of data-subject reports and erasure. */
  readonly subject?: SubjectPart;
  /** Its endpoints in the OpenAPI document. */
  readonly openApi?: OpenApiPart;
  /** What retention deletes of its tables; runs whether or not the module is switched on (its tables exist either way). */
  readonly retention?: readonly RetentionRule[];
  /** Its error codes, as its errors.ts defines them with their statuses (defineErrorCodes): listed in the OpenAPI document. */
  readonly errors?: Readonly<Record<string, ErrCode>>;
}

/** Declares a module with its name's service type checked (a plain object; this only infers K). */
export function defineModule<K extends keyof ModuleServices>(module: KuvertModule<K>): KuvertModule<K> {
  return module;
}

/** Whether the configuration switches the module on (its enabled(), or else its switch). */
export function moduleEnabled(module: KuvertModule, config: KuvertConfig): boolean {
  if (module.enabled) return module.enabled(config);
  if (module.config?.switch === undefined) return true;
  const switches: Partial<Record<string, boolean>> = { ...config.modules };
  return switches[module.name] !== false;
}
