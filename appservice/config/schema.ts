// The configuration, as code. Every key has a description and a default where one is sane;
// config.sample.yaml is generated from the schema (`kuvert config sample`) and a test checks that
// the committed sample matches, so the documentation cannot drift.
//
// This file holds the core's sections. A module declares its own (its section, its switch under
// `modules`, its secrets from the environment) in its config.ts, an object that satisfies
// ModuleConfig, and adds itself to ModuleSections and ModuleSwitches there; config/composed.ts puts the whole schema together from the list
// of modules.
import { z } from "zod";

const port = z.number().int().min(0).max(65535);
const bindAddress = z.string().min(1);
const matrixUserId = z.string().regex(/^@[a-z0-9._=\-/+]+:[A-Za-z0-9.\-:[\]]+$/, "a Matrix user ID like @alice:example.org");

const listener = (defaults: { bindAddress: string; port: number }, what: string) =>
  z
    .object({
      bindAddress: bindAddress.default(defaults.bindAddress).describe(`Address the ${what} listens on.`),
      port: port.default(defaults.port).describe(`Port the ${what} listens on (0 picks a free one).`),
    })
    .strict()
    .prefault({})
    .describe(`Where the ${what} listens.`);

const s3Staging = z
  .object({
    endpoint: z.url().optional().describe("The store's URL, e.g. https://s3.example.org. Unset: AWS S3 of the region."),
    bucket: z.string().min(1).describe("The bucket (it must exist). Kuvert writes only under prefix."),
    region: z.string().min(1).default("us-east-1").describe("The region the store expects in signatures."),
    prefix: z.string().default("kuvert/").describe("Key prefix of Kuvert's objects: documents under <prefix>documents/, circular attachments under <prefix>circulars/."),
    forcePathStyle: z.boolean().default(false).describe("Address the bucket in the path (https://host/bucket/key), as most self-hosted stores need, instead of as a host name."),
    accessKeyId: z.string().optional().describe("Access key. Prefer KUVERT_S3_ACCESS_KEY_ID. Unset: the AWS SDK's usual sources (AWS_ACCESS_KEY_ID, instance roles)."),
    secretAccessKey: z.string().optional().describe("Secret key. Prefer KUVERT_S3_SECRET_ACCESS_KEY."),
  })
  .strict();
export type S3StagingConfig = z.infer<typeof s3Staging>;

export const roles = ["admin", "staff", "dpo"] as const;
export type Role = (typeof roles)[number];

export const coreConfigSchema = z
  .object({
    homeserver: z
      .object({
        url: z.url().describe("Client-server API base URL of the homeserver, as Kuvert reaches it (e.g. http://synapse:8008).").default("http://localhost:8008"),
        domain: z
          .string()
          .regex(/^[A-Za-z0-9.\-]+(:\d+)?$/, "a server name like example.org")
          .describe("The homeserver's server name: the part after the colon in user IDs.")
          .default("example.org"),
        publicUrl: z.url().optional().describe("Homeserver URL as clerks' clients reach it; used in letters and e-mails. Defaults to homeserver.url."),
        adminToken: z.string().optional().describe("Access token of a homeserver admin, for Synapse's admin API. Prefer the environment variable KUVERT_HOMESERVER_ADMIN_TOKEN."),
      })
      .strict()
      .prefault({})
      .describe("The Matrix homeserver Kuvert serves."),
    appservice: z
      .object({
        id: z
          .string()
          .regex(/^[a-zA-Z0-9_.-]+$/)
          .default("kuvert")
          .describe("Application service id in the registration."),
        registrationFile: z.string().default("registration.yaml").describe("Path of the registration file the homeserver loads (made by `kuvert generate-registration`)."),
        url: z.url().default("http://localhost:9993").describe("URL at which the homeserver reaches Kuvert's application service listener."),
        botLocalpart: z
          .string()
          .regex(/^[a-z0-9._=\-/]+$/)
          .default("kuvert")
          .describe("Localpart of Kuvert's bot user (the registration's sender_localpart)."),
        botDisplayName: z.string().default("Kuvert").describe("Display name of Kuvert's bot user."),
        userPrefix: z
          .string()
          .regex(/^[a-z0-9._=\-/]+$/)
          .default("kuvert_")
          .describe("Prefix of the exclusive user and alias namespaces Kuvert claims."),
        listener: listener({ bindAddress: "127.0.0.1", port: 9993 }, "application service API (homeserver → Kuvert; internal network only)"),
        uploadCheckToken: z
          .string()
          .min(1)
          .optional()
          .describe("Token of the Synapse module that has every upload scanned by Kuvert before Synapse stores it (deploy/synapse/kuvert_upload_scan.py, its kuvert_token; the module wants at least 32 characters). Unset: that endpoint is off. Prefer KUVERT_UPLOAD_CHECK_TOKEN."),
      })
      .strict()
      .prefault({})
      .describe("The application service: how the homeserver and Kuvert find each other."),
    publicApi: z
      .object({
        baseUrl: z.url().default("http://localhost:8080").describe("Public base URL of Kuvert's HTTP API and web pages."),
        listener: listener({ bindAddress: "127.0.0.1", port: 8080 }, "public HTTP API and web pages"),
        trustProxy: z.boolean().default(false).describe("Trust X-Forwarded-* headers from a reverse proxy (needed for per-client rate limits behind one)."),
        rateLimitPerMinute: z.number().int().min(1).default(1200).describe("Requests one client address may make per minute to the public listener."),
        failedAuthPerMinute: z.number().int().min(1).default(30).describe("Requests with a missing or wrong token one client address may make per minute before it is refused for a while."),
      })
      .strict()
      .prefault({})
      .describe("The public HTTP API (admin API, OpenAPI document, health)."),
    metrics: z
      .object({
        enabled: z.boolean().default(true).describe("Serve Prometheus metrics at /metrics on their own listener."),
        listener: listener({ bindAddress: "127.0.0.1", port: 9464 }, "Prometheus metrics listener"),
      })
      .strict()
      .prefault({})
      .describe("Prometheus metrics (documents by state, scans, queues, e-mail, transaction lag, homeserver latency)."),
    database: z
      .object({
        url: z.string().optional().describe("PostgreSQL connection URL. Unset: the embedded PGlite database in database.embeddedDir. Prefer KUVERT_DATABASE_URL."),
        embeddedDir: z.string().default("data/db").describe("Directory of the embedded PGlite database (used when database.url is unset)."),
        poolSize: z.number().int().min(2).max(200).default(10).describe("Maximum PostgreSQL connections of one Kuvert process."),
      })
      .strict()
      .prefault({})
      .describe("Where Kuvert keeps its state."),
    staff: z
      .array(
        z
          .object({
            userId: matrixUserId.describe("The person's Matrix ID."),
            roles: z.array(z.enum(roles)).min(1).describe("admin (includes staff), staff, dpo."),
          })
          .strict(),
      )
      .default([])
      .describe("Staff of the operating body: invited to every organisation room with power level 50 (admin and staff)."),
    organisations: z
      .object({
        language: z.enum(["de", "en"]).default("de").describe("The organisations' language: room texts (welcome, replies), the e-mails to clerks and staff, and the console's fallback when the browser asks for neither."),
        roomNamePrefix: z.string().default("").describe("Prefix of organisation room names, e.g. 'Kuvert: '."),
        encryption: z
          .boolean()
          .default(false)
          .describe(
            "New organisation rooms are end-to-end encrypted (needs e2ee.secret, and a homeserver that gives appservices to-device messages and device lists; see the README). An existing room is switched, one way, by `kuvert encryption enable`, the API or the console. Unset: off, so that an installation keeps its rooms as they are; the deployment's configuration (deploy/kuvert/config.yaml) turns it on.",
          ),
      })
      .strict()
      .prefault({})
      .describe("Organisation rooms."),
    documents: z
      .object({
        stagingDir: z
          .string()
          .default("data/staging")
          .describe("Where documents wait between arrival and delivery; every Kuvert process must reach the same one. Kuvert deletes each file after delivery or rejection. With documents.stagingS3 set, only this host's short-lived local copies are kept here."),
        stagingS3: s3Staging.optional().describe("Staging on an S3-compatible object store (documents and circular attachments) instead of documents.stagingDir, which then holds only local copies while a file is scanned or uploaded. Unset: the directory."),
        maxBytes: z
          .number()
          .int()
          .min(1)
          .default(100 * 1024 * 1024)
          .describe("Largest document accepted. Documents larger than scanning.maxStreamBytes are refused too: nothing is delivered unscanned."),
        intakeBacklog: z
          .number()
          .int()
          .min(0)
          .default(64)
          .describe(
            "While this many documents wait for delivery (in all processes), a new upload (drop API, drop folder, batch) waits before it is read until deliveries bring the number down, so intake goes at the homeserver's pace and leaves it the CPU on a shared machine. Never while nothing is delivered: with no document finished for 3 s, uploads are taken at once and wait in the queue; and none longer than 30 s. 0: uploads never wait.",
          ),
        allowedTypes: z
          .array(z.string().regex(/^[a-z0-9.+-]+\/[a-z0-9.+*-]+$/, "a MIME type like application/pdf or image/*"))
          .default([
            "application/pdf",
            "image/png",
            "image/jpeg",
            "image/tiff",
            "text/plain",
            "text/csv",
            "application/zip",
            "application/xml",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "application/vnd.oasis.opendocument.text",
            "application/vnd.oasis.opendocument.spreadsheet",
          ])
          .describe("Types accepted, checked against the content (not the file name). `type/*` allows a whole family. The file name's extension must fit the type found in the content (KUVERT_TYPE_MISMATCH)."),
        activeContent: z
          .boolean()
          .default(false)
          .describe("Accept active content: HTML and SVG (which a browser runs) and scripts (#!, @echo off), judged by the content. Off: refused with KUVERT_ACTIVE_CONTENT. On, the type must still be in allowedTypes and the name fit it (.html, .svg, .sh, .bat)."),
        dropFolder: z
          .object({
            enabled: z.boolean().default(false).describe("Watch the drop folder and take documents from it."),
            dir: z.string().default("data/drop").describe("The drop folder: one sub-folder per organisation id (made by the operator). Write files as `.name.part` or `name.tmp` and rename them when complete."),
            stableSeconds: z.number().int().min(1).max(3600).default(5).describe("A file is taken when its size and modification time have not changed for this long."),
            pollSeconds: z.number().int().min(1).max(3600).default(2).describe("How often the drop folder is looked at (polling: file change events are unreliable on network shares)."),
          })
          .strict()
          .prefault({})
          .describe("A folder the back office drops documents into. Files that cannot be delivered are moved to `unroutable/` inside it, with the reason beside them."),
      })
      .strict()
      .prefault({})
      .describe("Documents for organisations."),
    modules: z
      .object({
        inboundScanning: z.boolean().default(true).describe("Scan files that people post in organisation rooms. Off: such files are not checked, and Kuvert says so in the room."),
        batches: z.boolean().default(true).describe("Accept bulk batches (POST /api/v1/batches). Off: the API answers KUVERT_MODULE_DISABLED."),
      })
      .strict()
      .prefault({})
      .describe("Parts of Kuvert that can be switched off without affecting the rest (the drop folder: documents.dropFolder.enabled)."),
    scanning: z
      .object({
        host: z.string().default("127.0.0.1").describe("Host of clamd's TCP socket (TCPSocket/TCPAddr in clamd.conf)."),
        port: port.default(3310).describe("Port of clamd's TCP socket."),
        socket: z.string().optional().describe("Path of clamd's local socket (LocalSocket); used instead of host and port when set."),
        timeoutSeconds: z.number().int().min(1).max(3600).default(120).describe("How long one scan may take before the scanner counts as unavailable."),
        maxStreamBytes: z
          .number()
          .int()
          .min(1024)
          .default(25 * 1024 * 1024)
          .describe("Largest file clamd scans: set it to clamd's StreamMaxLength. Larger files are rejected, never passed unscanned."),
        canaryMinutes: z
          .number()
          .int()
          .min(1)
          .max(1440)
          .default(10)
          .describe(
            "How often Kuvert sends clamd its canaries (test files made at run time: EICAR plain, in an encrypted ZIP, nested past the limit, over StreamMaxLength), besides at start and whenever clamd comes back. While clamd would pass any of them, Kuvert is not ready and documents wait.",
          ),
        archives: z
          .object({
            maxDepth: z.number().int().min(1).max(16).default(5).describe("How deep archives may nest: a ZIP is depth 1, a ZIP in it depth 2. Deeper: refused as unscannable. Keep clamd's MaxRecursion above it."),
            maxMembers: z.number().int().min(1).max(1_000_000).default(10_000).describe("Most members (files and folders, at every depth together) an archive may hold. More: refused as unscannable. Keep clamd's MaxFiles at least this."),
            maxTotalBytes: z
              .number()
              .int()
              .min(1024)
              .default(400 * 1024 * 1024)
              .describe("Most bytes an archive may unpack to, at every depth together. More: refused as unscannable. Keep clamd's MaxScanSize at least this."),
            maxCompressionRatio: z.number().min(2).default(100).describe("Highest ratio of unpacked to packed size of one member larger than 1 MiB unpacked (zip bombs reach 1000). Higher: refused as unscannable."),
            unscannable: z
              .enum(["reject", "hold"])
              .default("reject")
              .describe(
                "What happens to a document that cannot be scanned whole (a password-protected archive or member, a format Kuvert cannot open, a limit above exceeded): reject it (KUVERT_UNSCANNABLE, deleted, staff alerted), or hold it for staff (never delivered, kept in staging, staff alerted).",
              ),
          })
          .strict()
          .prefault({})
          .describe("Kuvert opens ZIP archives (and the ZIP-based office formats) itself and has clamd scan every member; an archive is delivered only when every member in it was scanned."),
      })
      .strict()
      .prefault({})
      .describe("Virus scanning with ClamAV's clamd (INSTREAM). Kuvert fails closed: while clamd is unreachable, nothing is delivered."),
    mail: z
      .object({
        smtp: z
          .object({
            host: z.string().default("localhost").describe("SMTP server."),
            port: port.default(25).describe("SMTP port (465 for implicit TLS, 587 or 25 for STARTTLS)."),
            secure: z.boolean().default(false).describe("Implicit TLS (port 465). Otherwise STARTTLS is used when the server offers it."),
            user: z.string().optional().describe("SMTP user name, if the server wants one."),
            password: z.string().optional().describe("SMTP password. Prefer KUVERT_SMTP_PASSWORD."),
          })
          .strict()
          .prefault({})
          .describe("Where Kuvert hands its e-mails over."),
        from: z.string().default("Kuvert <kuvert@example.org>").describe("Sender of Kuvert's e-mails."),
        staffMailbox: z.string().optional().describe("Address of the staff mailbox: uploads from clerks and alerts go there."),
        language: z.enum(["de", "en"]).optional().describe("Language of e-mails, only to differ from organisations.language (unset: organisations.language)."),
        roomLinkBase: z.string().default("https://matrix.to/#/").describe("Start of the link into a room, followed by the room id: https://matrix.to/#/ or an Element Web URL ending in #/room/."),
        combineWindowSeconds: z.number().int().min(0).max(3600).default(60).describe("Notifications to one address within this window go out as one e-mail."),
        maxAttempts: z.number().int().min(1).max(100).default(10).describe("Attempts to send an e-mail before it is marked dead and staff are alerted."),
      })
      .strict()
      .prefault({})
      .describe("E-mail notifications (never the document itself)."),
    letters: z
      .object({
        sender: z
          .object({
            name: z.string().default("Kuvert").describe("Name of the operating body, at the top of letters and in the return address."),
            address: z.array(z.string()).max(6).default([]).describe('Address lines of the operating body, e.g. ["Musterstraße 1", "12345 Musterstadt"].'),
            contact: z.string().optional().describe('A line for questions, e.g. "Fragen: 0123 456789, service@body.example".'),
          })
          .strict()
          .prefault({})
          .describe("The operating body, as it appears on letters."),
        language: z.enum(["de", "en"]).optional().describe("Language of password letters and account e-mails, only to differ from organisations.language (unset: organisations.language; a request can ask for the other)."),
      })
      .strict()
      .prefault({})
      .describe("Printed letters (PDF) with initial passwords."),
    workers: z
      .object({
        concurrency: z.number().int().min(1).max(64).default(4).describe("How many work items of one kind a Kuvert process handles at once."),
        maxDocumentsInFlight: z
          .number()
          .int()
          .min(1)
          .max(256)
          .default(16)
          .describe(
            "At most this many documents on their way to the homeserver at once per process. From workers.concurrency up, Kuvert adapts the number to the homeserver's answers: it tries one more and keeps it while the homeserver gets more done with it (documents in flight ÷ the latency of its room events), takes it back when not, halves it on a 429. Equal to workers.concurrency: fixed.",
          ),
        leaseSeconds: z.number().int().min(2).max(3600).default(60).describe("How long a claimed work item stays reserved; a crashed worker's items are taken over after this."),
        pollMilliseconds: z.number().int().min(50).max(60000).default(1000).describe("How often idle workers look for work written by other processes."),
      })
      .strict()
      .prefault({})
      .describe("Background workers."),
    retention: z
      .object({
        enabled: z.boolean().default(true).describe("Delete what is due on a schedule; each run is audited with its counts."),
        intervalHours: z
          .number()
          .min(0.01)
          .max(24 * 7)
          .default(24)
          .describe("Hours between retention runs (the first runs an hour after start)."),
        stagingOrphanHours: z.number().min(1).default(24).describe("Staging files no waiting document needs (left by a crash) are deleted after this many hours."),
        documentDays: z.number().int().min(1).default(365).describe("Metadata of finished documents (delivered, rejected, checked, removed) and of ended calls is deleted after this many days."),
        mailDays: z.number().int().min(1).default(30).describe("E-mail notifications that were sent, combined or given up, and guest links that expired, are deleted after this many days."),
        operationalDays: z.number().int().min(1).default(14).describe("Handled homeserver events and transaction ids, finished batches and work items are deleted after this many days."),
        auditYears: z.number().int().min(1).max(100).default(10).describe("Audit rows are kept this many years (the legal period), then removed from the start of the chain."),
      })
      .strict()
      .prefault({})
      .describe("Retention: how long Kuvert keeps what it stores."),
    logging: z
      .object({
        level: z.enum(["trace", "debug", "info", "warn", "error", "fatal"]).default("info").describe("Lowest level written."),
        pseudonymKey: z.string().optional().describe("Key of the keyed hash that pseudonymises people in logs. Prefer KUVERT_PSEUDONYM_KEY. Unset: a random key per start."),
      })
      .strict()
      .prefault({})
      .describe("Operational logs: JSON lines on standard output."),
  })
  .strict();

/** What a module adds to the configuration (its config.ts). */
export interface ModuleConfig {
  /** What its switch `modules.<name>` does (on by default). Unset: the module has no switch. */
  readonly switch?: string;
  /** Its section `<name>` (an object schema with defaults, as the core's sections are). */
  readonly section?: z.ZodType;
  /** Environment variables that set its secrets, by the path inside its section. */
  readonly environment?: Readonly<Record<string, readonly string[]>>;
  /** Keys the application service registration needs for the module (e.g. unstable homeserver features), for a configuration that switches it on. */
  registration?(config: KuvertConfig): Record<string, unknown>;
  /** What the whole configuration must hold for the module, beyond its section: one problem per entry, with its path. */
  check?(config: KuvertConfig): { path: string[]; message: string }[];
}

/**
 * The modules' sections of the configuration, by module name, and their switches under `modules`.
 * Each module adds its entries from its config.ts
 * (`declare module "../config/schema.ts" { interface ModuleSections { calls: z.output<typeof callsConfig.section> } }`),
 * so that `config.calls` and `config.modules.calls` are typed without the core naming the module.
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- filled in by each module's config.ts
export interface ModuleSections {}
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- filled in by each module's config.ts
export interface ModuleSwitches {}

type CoreConfig = z.infer<typeof coreConfigSchema>;

/** Kuvert's configuration: the core's sections and every module's. */
export interface KuvertConfig extends Omit<CoreConfig, "modules">, ModuleSections {
  modules: CoreConfig["modules"] & ModuleSwitches;
}

/** Environment variables that set the core's secrets (and the database URL) without writing them into the file. */
export const coreEnvironmentKeys = {
  KUVERT_DATABASE_URL: ["database", "url"],
  KUVERT_HOMESERVER_ADMIN_TOKEN: ["homeserver", "adminToken"],
  KUVERT_PSEUDONYM_KEY: ["logging", "pseudonymKey"],
  KUVERT_SMTP_PASSWORD: ["mail", "smtp", "password"],
  KUVERT_UPLOAD_CHECK_TOKEN: ["appservice", "uploadCheckToken"],
  KUVERT_S3_ACCESS_KEY_ID: ["documents", "stagingS3", "accessKeyId"],
  KUVERT_S3_SECRET_ACCESS_KEY: ["documents", "stagingS3", "secretAccessKey"],
} as const satisfies Record<string, readonly string[]>;

/** The configured people holding any of these roles; admin includes staff. */
export function roleHolders(config: KuvertConfig, wanted: readonly Role[]): string[] {
  const holds = (roles: readonly Role[], role: Role) => roles.includes(role) || (role === "staff" && roles.includes("admin"));
  return config.staff.filter((s) => wanted.some((role) => holds(s.roles, role))).map((s) => s.userId);
}

/** Members of staff who belong in organisation rooms (admin ⊃ staff). */
export function roomStaff(config: KuvertConfig): string[] {
  return roleHolders(config, ["staff"]);
}
