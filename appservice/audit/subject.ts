// Data-subject requests (DESIGN.md flow 6): a report of everything Kuvert holds about one
// person, named by a Matrix ID or an e-mail address, and the erasure of what the law allows.
//
// One identifier at a time: a clerk record that also names a second identifier (the
// person's e-mail address beside their Matrix ID) is listed, and formatReport() says to run
// a report for it too. Kuvert does not join identifiers on its own: a shared mailbox
// (poststelle@…) would otherwise pull other people's data into the report or the erasure.
//
// What stays and why (also in ErasureResult.kept):
//  - audit rows: append-only and hash-chained, kept for the legal period (retention.auditYears);
//    the erasure itself is audited with the pseudonym only (`subject.erased`, details = counts);
//  - room events not yet handled: the worker still needs them; erase again once they are handled;
//  - what the modules keep, each with its reason (documents/subject.ts: the metadata of documents
//    the person sent, whose sender becomes the pseudonym; those still being scanned or delivered;
//    the documents delivered to the person's organisations, which are the organisations' records).
// Messages and files in the Matrix rooms are on the homeserver, not in Kuvert.
import { audit } from "./audit.ts";
import type { Database, Queryable } from "../db/database.ts";
import { ErrCode, KuvertError } from "../errors.ts";
import { pseudonym } from "../log.ts";
import type { ErasedPart, SubjectKind, SubjectSection } from "../module.ts";
import { modules } from "../modules.ts";

export type { SubjectKind } from "../module.ts";

export interface ReportSection {
  /** A stable key: the core's clerks, staff, mail, roomEvents, roomProblems, audit, and the modules' (accounts, consoleSessions, documentsSent, organisationDocuments, guestLinks, …). */
  name: string;
  /** What the rows are, in plain words (English; formatReport() has German too). */
  description: string;
  rows: Record<string, unknown>[];
}

export interface SubjectReport {
  subject: string;
  kind: SubjectKind;
  generatedAt: string;
  sections: ReportSection[];
}

export interface ErasureResult {
  erased: { what: string; count: number }[];
  kept: { what: string; count: number; why: string }[];
}

export interface ReportOptions {
  /** Who asked (the dpo): the actor of the `subject.report` audit row. */
  actor?: string;
  /** The pseudonym the audit row names the person by; log.ts's keyed hash unless given. */
  pseudonymOf?: (value: string) => string;
}

// Lenient on purpose: historical Matrix IDs may have upper-case letters.
const matrixIdPattern = /^@[^\s:@]+:[^\s@]+$/;
const emailPattern = /^[^\s@<>()[\]\\,;:"]+@[^\s@<>()[\]\\,;:"]+\.[^\s@<>()[\]\\,;:"]+$/;

/** The subject as Kuvert stores it: a Matrix ID as given, an e-mail address in lower case. */
export function parseSubject(raw: string): { subject: string; kind: SubjectKind } {
  const value = raw.trim();
  if (matrixIdPattern.test(value)) return { subject: value, kind: "matrix-id" };
  if (emailPattern.test(value)) return { subject: value.toLowerCase(), kind: "email" };
  throw new KuvertError(ErrCode.InvalidInput, `"${raw}" is neither a Matrix ID like @anna:example.org nor an e-mail address like anna@example.org.`, [{ path: "subject", message: "expected a Matrix ID or an e-mail address" }]);
}

/** A LIKE pattern that finds the subject as a whole JSON string inside jsonb::text (same output on PostgreSQL and PGlite). */
function jsonStringPattern(subject: string): string {
  return `%${JSON.stringify(subject).replace(/[\\%_]/g, (m) => `\\${m}`)}%`;
}

/** SQL that compares a text column with $1: exactly for a Matrix ID, ignoring case for an e-mail address. */
function same(column: string, kind: SubjectKind): string {
  return kind === "email" ? `lower(${column}) = $1` : `${column} = $1`;
}

function plain(row: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(row).map(([k, v]) => [k, v instanceof Date ? v.toISOString() : v]));
}

/** Stands for another person's Matrix ID or e-mail address in a row that names several people. */
export const OTHER_PERSON = "[another person]";
const anyMatrixId = /@[A-Za-z0-9._=\-/+]+:[A-Za-z0-9.\-]+(?::\d+)?/g;
const anyEmail = /[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}/g;

/**
 * Replaces other people's identifiers in audit rows and room notes (e.g. the other clerks an
 * organisation was created with), so that a report about one person does not disclose others.
 */
function redactOthers(value: unknown, subject: string, kind: SubjectKind): unknown {
  if (typeof value === "string") {
    const keep = (m: string) => (kind === "email" ? m.toLowerCase() === subject : m === subject);
    return value.replace(anyMatrixId, (m) => (keep(m) ? m : OTHER_PERSON)).replace(anyEmail, (m) => (keep(m) ? m : OTHER_PERSON));
  }
  if (Array.isArray(value)) return value.map((v) => redactOthers(v, subject, kind));
  if (value && typeof value === "object" && !(value instanceof Date)) {
    return Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [redactOthers(k, subject, kind) as string, redactOthers(v, subject, kind)]));
  }
  return value;
}

const descriptions: Record<string, string> = {
  clerks: "Records of the person as a clerk of a member organisation: organisation, name, e-mail address, Matrix ID, whether they are still a clerk, and their room membership as the homeserver last told Kuvert.",
  staff: "The person's roles as staff of the operating body, as configured.",
  mail: "Notification e-mails to the person's address: what they were about, and when they were written and sent. They never contain documents.",
  roomEvents: "Room events from the homeserver that the person sent (or that are about their membership), stored so Kuvert can handle them in order and deleted on the retention schedule: how many, and when.",
  roomProblems: "Notes on an organisation's room that name the person, e.g. an invitation the homeserver refused.",
  audit: "Rows of the audit log that name the person as the one who acted, as the one acted on, or in the details. The audit log is append-only and kept for the legal retention period.",
};

async function section(q: Queryable, name: string, description: string, sql: string, params: unknown[]): Promise<ReportSection> {
  const { rows } = await q.query<Record<string, unknown>>(sql, params);
  return { name, description, rows: rows.map(plain) };
}

/** The modules' report sections (each module's, switched on or not: its tables exist either way). */
const moduleSections = (): SubjectSection[] => modules.flatMap((m) => m.subject?.sections ?? []);

/** The rows the report and the erasure look at, for one subject. */
function queries(kind: SubjectKind) {
  const isMatrix = kind === "matrix-id";
  const clerkMatch = (alias: string) => (isMatrix ? `${alias}.matrix_id = $1` : `lower(${alias}.email) = $1`);
  return {
    clerkMatch,
    clerks: `SELECT c.organisation_id AS organisation, o.display_name AS "organisationName", c.display_name AS name, c.email,
                    c.matrix_id AS "matrixId", c.status, c.membership, c.created_at AS "addedAt", c.removed_at AS "removedAt"
               FROM clerks c JOIN organisations o ON o.id = c.organisation_id
              WHERE ${clerkMatch("c")} ORDER BY c.organisation_id, c.id`,
    staff: isMatrix ? `SELECT roles, status, updated_at AS "updatedAt" FROM staff_members WHERE matrix_id = $1` : null,
    mail: isMatrix
      ? null
      : `SELECT id, kind, organisation_id AS organisation, organisation_name AS "organisationName", items, state,
                created_at AS "writtenAt", sent_at AS "sentAt"
           FROM mail_outbox WHERE lower(recipient) = $1 ORDER BY id`,
    eventMatch: "(event->>'sender' = $1 OR event->>'state_key' = $1)",
    roomEvents: isMatrix
      ? `SELECT state, count(*)::int AS count, min(received_at) AS "firstReceivedAt", max(received_at) AS "lastReceivedAt",
                array_agg(DISTINCT event_type ORDER BY event_type) AS "eventTypes"
           FROM inbound_events WHERE (event->>'sender' = $1 OR event->>'state_key' = $1)
          GROUP BY state ORDER BY state`
      : null,
    roomProblems: isMatrix ? `SELECT id AS organisation, room_problem AS problem FROM organisations WHERE strpos(room_problem, $1) > 0 ORDER BY id` : null,
    auditWhere: `(${same("actor", kind)} OR ${same("object", kind)} OR ${isMatrix ? "details::text" : "lower(details::text)"} LIKE $2)`,
  };
}

async function collect(q: Queryable, subject: string, kind: SubjectKind): Promise<ReportSection[]> {
  const s = queries(kind);
  const redacted = (sec: ReportSection): ReportSection => ({ ...sec, rows: sec.rows.map((r) => redactOthers(r, subject, kind) as Record<string, unknown>) });
  const one = async (name: string, description: string, sql: string | null) => (sql ? section(q, name, description, sql, [subject]) : { name, description, rows: [] });
  const core: [string, string | null][] = [
    ["clerks", s.clerks],
    ["staff", s.staff],
    ["mail", s.mail],
    ["roomEvents", s.roomEvents],
    ["roomProblems", s.roomProblems],
  ];
  const fromModules = moduleSections();
  const sections: ReportSection[] = [];
  for (const [name, sql] of core) {
    // Room notes may name other people: those are replaced.
    const found = await one(name, descriptions[name]!, sql);
    sections.push(name === "roomProblems" ? redacted(found) : found);
    for (const m of fromModules.filter((m) => m.after === name)) sections.push(await one(m.name, m.texts.en.description, m.sql(kind)));
  }
  sections.push(redacted(await section(q, "audit", descriptions.audit!, `SELECT seq, at, actor, action, organisation_id AS organisation, object, outcome, details FROM audit_log WHERE ${s.auditWhere} ORDER BY seq`, [subject, jsonStringPattern(subject)])));
  return sections;
}

function inTransaction<T>(db: Queryable | Database, fn: (tx: Queryable) => Promise<T>): Promise<T> {
  return "transaction" in db && typeof db.transaction === "function" ? db.transaction(fn) : fn(db);
}

/**
 * Everything Kuvert holds about one person. Writes the audit row `subject.report`, which names
 * the person only by their pseudonym. Given a transaction (a Queryable), runs and audits inside it.
 */
export async function subjectReport(db: Queryable | Database, raw: string, opts: ReportOptions = {}): Promise<SubjectReport> {
  const { subject, kind } = parseSubject(raw);
  const pseudonymOf = opts.pseudonymOf ?? pseudonym;
  return inTransaction(db, async (tx) => {
    const sections = await collect(tx, subject, kind);
    await audit(tx, {
      actor: opts.actor ?? "kuvert",
      action: "subject.report",
      object: pseudonymOf(subject),
      outcome: "ok",
      details: { kind, rows: Object.fromEntries(sections.map((s) => [s.name, s.name === "roomEvents" ? s.rows.reduce((n, r) => n + Number(r.count), 0) : s.rows.length])) },
    });
    return { subject, kind, generatedAt: new Date().toISOString(), sections };
  });
}

const handledEvent = "state IN ('done', 'failed')";

/**
 * Erases what the law allows about one person, in one transaction, and audits it as
 * `subject.erased` with the pseudonym and counts only. Refused (and nothing changed) while
 * the person is an active clerk or configured staff, or Kuvert has not yet taken them out
 * of a room: erasing then would leave a room membership Kuvert no longer knows about.
 */
export async function eraseSubject(db: Database, raw: string, actor: string, pseudonymOf: (value: string) => string): Promise<ErasureResult> {
  const { subject, kind } = parseSubject(raw);
  const p = pseudonymOf(subject);
  const s = queries(kind);
  const isMatrix = kind === "matrix-id";
  return db.transaction(async (tx) => {
    const count = async (sql: string, params: unknown[] = [subject]) => Number((await tx.query<{ n: string | number }>(sql, params)).rows[0]?.n ?? 0);
    const changed = async (sql: string, params: unknown[] = [subject, p]) => (await tx.query(sql, params)).rowCount;

    // Lock the person's organisations as the organisation service does, so no clerk is added or removed meanwhile.
    const orgs = (await tx.query<{ id: string; state: string }>(`SELECT id, state FROM organisations WHERE id IN (SELECT c.organisation_id FROM clerks c WHERE ${s.clerkMatch("c")}) ORDER BY id FOR UPDATE`, [subject])).rows;
    const clerkRows = (
      await tx.query<{ organisation_id: string; status: string; membership: string | null; sync_pending: boolean }>(
        `SELECT c.organisation_id, c.status, c.membership,
                EXISTS (SELECT 1 FROM room_sync r WHERE r.organisation_id = c.organisation_id AND r.state = 'pending') AS sync_pending
           FROM clerks c WHERE ${s.clerkMatch("c")} ORDER BY c.organisation_id`,
        [subject],
      )
    ).rows;
    const active = clerkRows.filter((c) => c.status === "active").map((c) => c.organisation_id);
    if (active.length > 0) {
      const archived = orgs.filter((o) => o.state === "archived" && active.includes(o.id)).map((o) => o.id);
      throw new KuvertError(
        ErrCode.SubjectStillActive,
        `${subject} is still an active clerk of ${list(active)}: remove the clerk from ${active.length > 1 ? "these organisations" : "that organisation"} first, ` +
          `so that Kuvert takes them out of the room, then erase.` +
          (archived.length ? ` ${list(archived)} ${archived.length > 1 ? "are" : "is"} archived, and an archived organisation's clerks cannot be removed.` : ""),
      );
    }
    const stillInRoom = clerkRows.filter((c) => c.sync_pending || c.membership === "join" || c.membership === "invite" || c.membership === "knock").map((c) => c.organisation_id);
    if (stillInRoom.length > 0) {
      throw new KuvertError(ErrCode.SubjectStillActive, `${subject} was removed, but Kuvert has not yet taken them out of the room of ${list([...new Set(stillInRoom)])}: try again once the room is in line (see \`kuvert org show\`).`);
    }
    let staffDeleted = 0;
    if (isMatrix) {
      const staff = (await tx.query<{ status: string }>("SELECT status FROM staff_members WHERE matrix_id = $1 FOR UPDATE", [subject])).rows[0];
      if (staff?.status === "active") {
        throw new KuvertError(ErrCode.SubjectStillActive, `${subject} is configured as staff: take them out of the staff configuration first, then erase.`);
      }
      if (staff && (await count("SELECT count(*) AS n FROM room_sync WHERE state = 'pending'", [])) > 0) {
        throw new KuvertError(ErrCode.SubjectStillActive, `${subject} was taken out of the staff, but Kuvert is still taking them out of the rooms: try again once the rooms are in line.`);
      }
      staffDeleted = await changed("DELETE FROM staff_members WHERE matrix_id = $1", [subject]);
    }

    // The modules' tables (accounts, console sessions, documents, guest links, …), before the clerk
    // records lose the link to the person; a module may still refuse.
    const fromModules: ErasedPart[] = [];
    for (const m of modules) if (m.subject?.erase) fromModules.push(...(await m.subject.erase(tx, { subject, kind, pseudonym: p, actor })));
    const erasedByModules = fromModules.filter((e) => e.why === undefined);
    const keptByModules = fromModules.filter((e): e is ErasedPart & { why: string } => e.why !== undefined);

    const clerks = await changed(
      `UPDATE clerks c SET matrix_id = CASE WHEN matrix_id IS NULL THEN NULL ELSE $2 END,
                           email = CASE WHEN email IS NULL THEN NULL ELSE $2 END,
                           display_name = CASE WHEN display_name IS NULL THEN NULL ELSE $2 END
        WHERE ${s.clerkMatch("c")}`,
    );

    let eventsStubbed = 0;
    let eventsPending = 0;
    let roomProblems = 0;
    if (isMatrix) {
      eventsStubbed = await changed(`UPDATE inbound_events SET event = '{"redacted": true}'::jsonb, last_error = NULL WHERE ${s.eventMatch} AND ${handledEvent}`, [subject]);
      eventsPending = await count(`SELECT count(*) AS n FROM inbound_events WHERE ${s.eventMatch} AND NOT ${handledEvent}`);
      roomProblems = await changed("UPDATE organisations SET room_problem = replace(room_problem, $1, $2) WHERE strpos(room_problem, $1) > 0");
    }

    let mailSent = 0;
    let mailPending = 0;
    if (!isMatrix) {
      mailPending = await count("SELECT count(*) AS n FROM mail_outbox WHERE lower(recipient) = $1 AND state = 'pending'");
      // Rows that went out inside another row's e-mail point at it: they go first.
      const deleted = (await changed("DELETE FROM mail_outbox WHERE lower(recipient) = $1 AND combined_into IS NOT NULL", [subject])) + (await changed("DELETE FROM mail_outbox WHERE lower(recipient) = $1", [subject]));
      mailSent = deleted - mailPending;
    }
    const auditRows = await count(`SELECT count(*) AS n FROM audit_log WHERE ${s.auditWhere}`, [subject, jsonStringPattern(subject)]);

    const erased = {
      clerks,
      staff: staffDeleted,
      mailSent,
      mailPending,
      roomEvents: eventsStubbed,
      roomProblems,
      ...Object.fromEntries(erasedByModules.map((e) => [e.key, e.count])),
    };
    const kept = { ...Object.fromEntries(keptByModules.map((e) => [e.key, e.count])), roomEventsPending: eventsPending, auditRows };
    await audit(tx, { actor, action: "subject.erased", object: p, outcome: "ok", details: { kind, erased, kept } });

    return {
      erased: [
        { what: "clerk records: e-mail address, name and Matrix ID replaced by the pseudonym (the organisation keeps a removed clerk, but no person)", count: clerks },
        { what: "staff record deleted", count: staffDeleted },
        { what: "notification e-mails to the address that were sent or given up: deleted", count: mailSent },
        { what: "notification e-mails to the address not yet sent: deleted, they will not be sent", count: mailPending },
        { what: "stored room events they sent or that were about them, already handled: content replaced by a stub", count: eventsStubbed },
        { what: "room notes naming them: the name replaced by the pseudonym", count: roomProblems },
        ...erasedByModules.map(({ what, count }) => ({ what, count })),
      ],
      kept: [
        ...keptByModules.map(({ what, count, why }) => ({ what, count, why })),
        {
          what: "stored room events not yet handled",
          count: eventsPending,
          why: "the worker still has to handle them; they are deleted by retention after retention.operationalDays, or erase again once handled.",
        },
        {
          what: "audit log rows that name the person",
          count: auditRows,
          why: "the audit log is append-only and hash-chained and kept for the legal retention period (retention.auditYears): changing a row would break the chain that proves the log complete. Retention deletes them when the period ends. This erasure is recorded with the pseudonym only.",
        },
      ],
    };
  });
}

function list(ids: string[]): string {
  const unique = [...new Set(ids)];
  return unique.length === 1 ? `organisation ${unique[0]}` : `organisations ${unique.join(", ")}`;
}

// ---------------------------------------------------------------------------------------
// The report as text, for the dpo to read or hand to the person.

interface ReportTexts {
  title: string;
  subject: string;
  kinds: Record<SubjectKind, string>;
  generated: string;
  none: string;
  sections: Record<string, { title: string; description: string }>;
  labels: Record<string, string>;
  related(ids: string[]): string;
  homeserver: string;
  audit: string;
}

const texts: Record<"de" | "en", ReportTexts> = {
  de: {
    title: "Auskunft: Was Kuvert über eine Person gespeichert hat",
    subject: "Person",
    kinds: { "matrix-id": "Matrix-ID", email: "E-Mail-Adresse" },
    generated: "Erstellt",
    none: "Keine Einträge.",
    sections: {
      clerks: {
        title: "Sachbearbeitung in Mitgliedsorganisationen",
        description: "Einträge der Person als Sachbearbeiterin oder Sachbearbeiter einer Organisation: Organisation, Name, E-Mail-Adresse, Matrix-ID, ob sie noch dabei ist, und ihre Raummitgliedschaft, wie der Homeserver sie Kuvert zuletzt gemeldet hat.",
      },
      staff: { title: "Mitarbeitende der Stelle", description: "Die Rollen der Person als Mitarbeitende der betreibenden Stelle, wie konfiguriert." },
      mail: {
        title: "E-Mails an die Person",
        description: "Benachrichtigungen an die Adresse der Person: worum es ging, wann sie geschrieben und versandt wurden. Sie enthalten nie Dokumente.",
      },
      roomEvents: {
        title: "Gespeicherte Raumereignisse",
        description: "Ereignisse vom Homeserver, die die Person gesendet hat oder die ihre Mitgliedschaft betreffen; gespeichert, damit Kuvert sie der Reihe nach bearbeitet, und nach Frist gelöscht: wie viele und wann.",
      },
      roomProblems: { title: "Hinweise zu Räumen", description: "Hinweise zum Raum einer Organisation, die die Person nennen, z. B. eine vom Homeserver abgelehnte Einladung." },
      audit: {
        title: "Einträge im Prüfprotokoll",
        description: "Einträge des Prüfprotokolls, die die Person als Handelnde, als Betroffene oder in den Einzelheiten nennen. Das Prüfprotokoll kann nur ergänzt werden und wird für die gesetzliche Frist aufbewahrt.",
      },
    },
    labels: {
      organisation: "Organisation",
      organisationName: "Name der Organisation",
      name: "Name",
      email: "E-Mail",
      matrixId: "Matrix-ID",
      status: "Status",
      membership: "Raummitgliedschaft",
      addedAt: "hinzugefügt",
      removedAt: "entfernt",
      roles: "Rollen",
      updatedAt: "geändert",
      id: "Kennung",
      kind: "Art",
      state: "Stand",
      items: "Inhalt der Benachrichtigung",
      writtenAt: "geschrieben",
      sentAt: "versandt",
      count: "Anzahl",
      firstReceivedAt: "erstes",
      lastReceivedAt: "letztes",
      eventTypes: "Arten",
      problem: "Hinweis",
      seq: "Nr.",
      at: "Zeit",
      actor: "handelnd",
      action: "Aktion",
      object: "Gegenstand",
      outcome: "Ergebnis",
      details: "Einzelheiten",
    },
    related: (ids) => `Die Einträge zur Sachbearbeitung nennen auch ${ids.join(", ")}. Kuvert sucht nach genau einer Kennung: Für eine vollständige Auskunft bitte auch dafür eine Auskunft erstellen.`,
    homeserver: "Nachrichten und Dateien in den Matrix-Räumen liegen auf dem Homeserver, nicht in Kuvert; Auskunft und Löschung dort richten sich nach dessen Verfahren.",
    audit: "Einträge im Prüfprotokoll können nicht geändert oder gelöscht werden: Das Protokoll ist verkettet und wird für die gesetzliche Frist aufbewahrt. Eine Löschung wird dort nur mit einem Pseudonym vermerkt.",
  },
  en: {
    title: "Data-subject report: what Kuvert holds about one person",
    subject: "Person",
    kinds: { "matrix-id": "Matrix ID", email: "e-mail address" },
    generated: "Generated",
    none: "Nothing.",
    sections: Object.fromEntries(
      Object.entries(descriptions).map(([name, description]) => [
        name,
        {
          title: {
            clerks: "Clerk of member organisations",
            staff: "Staff of the operating body",
            mail: "E-mails to the person",
            roomEvents: "Stored room events",
            roomProblems: "Notes on rooms",
            audit: "Audit log rows",
          }[name]!,
          description,
        },
      ]),
    ),
    labels: {
      organisation: "organisation",
      organisationName: "organisation name",
      name: "name",
      email: "e-mail",
      matrixId: "Matrix ID",
      status: "status",
      membership: "room membership",
      addedAt: "added",
      removedAt: "removed",
      roles: "roles",
      updatedAt: "changed",
      id: "id",
      kind: "kind",
      state: "state",
      items: "what it listed",
      writtenAt: "written",
      sentAt: "sent",
      count: "count",
      firstReceivedAt: "first",
      lastReceivedAt: "last",
      eventTypes: "types",
      problem: "note",
      seq: "no.",
      at: "time",
      actor: "actor",
      action: "action",
      object: "object",
      outcome: "outcome",
      details: "details",
    },
    related: (ids) => `The clerk records also name ${ids.join(", ")}. Kuvert looks for exactly one identifier: for a complete report, run a report for that one too.`,
    homeserver: "Messages and files in the Matrix rooms are on the homeserver, not in Kuvert; reports and erasure there follow the homeserver's own procedure.",
    audit: "Audit log rows cannot be changed or deleted: the log is chained and kept for the legal retention period. An erasure is recorded there with a pseudonym only.",
  },
};

function formatValue(value: unknown): string {
  if (value === null || value === undefined) return "–";
  if (Array.isArray(value)) {
    if (value.every((v) => typeof v !== "object" || v === null)) return value.map(String).join(", ") || "–";
    return value.map((v) => formatValue(v)).join("; ");
  }
  if (typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>);
    return entries.length ? entries.map(([k, v]) => `${k}: ${formatValue(v)}`).join(", ") : "–";
  }
  return String(value);
}

/** A readable text report for the dpo, in German or English. */
export function formatReport(report: SubjectReport, language: "de" | "en"): string {
  const t = texts[language];
  const fromModules = new Map(moduleSections().map((m) => [m.name, m.texts[language]]));
  const labels: Record<string, string> = { ...Object.assign({}, ...[...fromModules.values()].map((m) => m.labels ?? {})), ...t.labels };
  const lines: string[] = [t.title, "=".repeat(t.title.length), "", `${t.subject}: ${report.subject} (${t.kinds[report.kind]})`, `${t.generated}: ${report.generatedAt}`];
  for (const s of report.sections) {
    const { title, description } = t.sections[s.name] ?? fromModules.get(s.name) ?? { title: s.name, description: s.description };
    const heading = `${title} (${s.name === "roomEvents" ? s.rows.reduce((n, r) => n + Number(r.count), 0) : s.rows.length})`;
    lines.push("", heading, "-".repeat(heading.length), description, "");
    if (s.rows.length === 0) lines.push(`  ${t.none}`);
    for (const row of s.rows) {
      const fields = Object.entries(row);
      fields.forEach(([key, value], i) => lines.push(`${i === 0 ? "  - " : "    "}${labels[key] ?? key}: ${formatValue(value)}`));
    }
  }
  const clerks = report.sections.find((s) => s.name === "clerks")?.rows ?? [];
  const related = [...new Set(clerks.flatMap((r) => [r.email, r.matrixId]).filter((v): v is string => typeof v === "string" && !v.startsWith("p:") && v.toLowerCase() !== report.subject.toLowerCase()))];
  lines.push("");
  if (related.length) lines.push(t.related(related));
  lines.push(t.audit, t.homeserver, "");
  return lines.join("\n");
}
