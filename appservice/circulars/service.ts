// Circulars as staff and programs use them: create (targets resolved and every check made
// before anything is stored), cancel, correct, and the delivery view.
import { audit } from "../audit/audit.ts";
import type { KuvertConfig } from "../config/schema.ts";
import type { Database, Queryable } from "../db/database.ts";
import { ErrCode, KuvertError, parseInput } from "../errors.ts";
import { checkContent } from "../files/content.ts";
import { checkFilename } from "../files/names.ts";
import type { Staging } from "../files/staging.ts";
import { renderMarkdown } from "./markdown.ts";
import { checkCircular, checkText, correctionInput, describeTargets, newCircularId, type CircularState, type DeliveryState, type Targets } from "./model.ts";
import * as store from "./store.ts";
import { organisationStates } from "../organisations/store.ts";
import { CircularErr } from "./errors.ts";

/** An attachment that arrives with the circular: staged by Kuvert (API) or a file posted in the staff room. */
export type AttachmentInput = { filename: string; mimetype: string; size: number; sha256: string; staged: true } | { filename: string; mimetype: string; size: number; sourceMxc: string; sourceFile: Record<string, unknown> | null; staffFileEventId: string };

export interface CircularMeta {
  /** token:<name> or a Matrix ID. */
  author: string;
  source: "api" | "room";
  /** The staff-room command it came from: the same command again answers the same circular. */
  sourceEventId?: string;
}

export interface CircularStatus {
  id: string;
  state: CircularState;
  reason: string | null;
  text: string;
  targets: Targets;
  author: string;
  source: "api" | "room";
  scheduledAt: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  attachments: { filename: string; mimetype: string; size: number; verdict: string | null; signature: string | null; mxcUri: string | null }[];
  summary: { pending: number; delivered: number; failed: number };
  corrections: { revision: number; text: string; author: string; createdAt: string; summary: { pending: number; delivered: number; failed: number } }[];
  deliveries?: { organisationId: string; state: DeliveryState; reason: string | null; eventId: string | null; deliveredAt: string | null }[];
  statusUrl: string;
}

const empty = () => ({ pending: 0, delivered: 0, failed: 0 });

/** Where attachments wait: circulars.stagingDir, or beside the documents' staging area (whose retention then leaves them alone). */
export function circularStagingDir(config: KuvertConfig): string {
  return config.circulars.stagingDir ?? `${config.documents.stagingDir.replace(/[/\\]+$/, "")}-circulars`;
}

/** The name of an attachment in the staging area. */
export function attachmentStagingId(circularId: string, position: number): string {
  return `${circularId}.${position}`;
}

export class Circulars {
  readonly #db: Database;
  readonly #config: KuvertConfig;
  readonly staging: Staging;
  readonly #onWork: () => void;

  constructor(db: Database, config: KuvertConfig, staging: Staging, onWork: () => void) {
    this.#db = db;
    this.#config = config;
    this.staging = staging;
    this.#onWork = onWork;
  }

  /** Largest attachment: the documents' limit, never more than clamd scans. */
  get limitBytes(): number {
    return Math.min(this.#config.documents.maxBytes, this.#config.scanning.maxStreamBytes);
  }

  /** Checks one attachment at the door (name, type judged by content or declared, size); throws what is wrong. */
  checkAttachment(a: { filename: string | undefined; mimetype: string; size: number }, position: number): string {
    const filename = checkFilename(a.filename);
    if (position >= this.#config.circulars.maxAttachments) {
      throw new KuvertError(ErrCode.InvalidInput, `A circular takes at most ${this.#config.circulars.maxAttachments} attachments.`, [{ path: "attachment", message: "too many" }]);
    }
    if (a.size === 0) throw new KuvertError(ErrCode.EmptyFile, `The attachment ${filename} is empty.`);
    if (a.size > this.limitBytes) throw new KuvertError(ErrCode.TooLarge, `The attachment ${filename} is larger than the ${this.limitBytes} bytes Kuvert scans and accepts.`);
    // The same rules as documents: name and content agree, no active content unless configured.
    checkContent(filename, a.mimetype, this.#config.documents);
    return filename;
  }

  /** The organisations a circular goes to; throws when the targets name nothing or something unknown. */
  async resolveTargets(q: Queryable, targets: Targets): Promise<string[]> {
    if ("all" in targets) {
      const rows = await organisationStates(q, { active: true });
      if (rows.length === 0) throw new KuvertError(ErrCode.InvalidInput, "There are no active organisations to send to.", [{ path: "targets", message: "no organisations" }]);
      return rows.map((r) => r.id);
    }
    if ("tag" in targets) {
      const rows = await organisationStates(q, { tag: targets.tag });
      if (rows.length === 0) {
        throw new KuvertError(CircularErr.UnknownTag, `No organisation has the tag ${targets.tag}.`, [{ path: "targets.tag", message: "no organisation has this tag" }]);
      }
      const active = rows.filter((r) => r.state === "active").map((r) => r.id);
      if (active.length === 0) {
        throw new KuvertError(CircularErr.UnknownTag, `Every organisation with the tag ${targets.tag} is archived.`, [{ path: "targets.tag", message: "only archived organisations" }]);
      }
      return active;
    }
    const wanted = [...new Set(targets.organisations)];
    const rows = await organisationStates(q, { ids: wanted });
    const known = new Map(rows.map((r) => [r.id, r.state]));
    const unknown = wanted.filter((id) => !known.has(id));
    if (unknown.length > 0) {
      throw new KuvertError(
        CircularErr.UnknownOrganisations,
        `Unknown organisation${unknown.length === 1 ? "" : "s"}: ${unknown.slice(0, 20).join(", ")}${unknown.length > 20 ? ` and ${unknown.length - 20} more` : ""}.`,
        unknown.map((id) => ({ path: `targets.organisations.${targets.organisations.indexOf(id)}`, message: `unknown organisation ${id}` })),
      );
    }
    const archived = wanted.filter((id) => known.get(id) === "archived");
    if (archived.length > 0) throw new KuvertError(ErrCode.Archived, `Archived organisations receive no circulars: ${archived.join(", ")}.`);
    return wanted.sort();
  }

  /**
   * Stores a circular with one delivery row per organisation, in one transaction, after every
   * check: on any error nothing is stored. The same staff-room command again answers the first.
   */
  async create(raw: unknown, meta: CircularMeta, attachmentsIn: AttachmentInput[] = [], id = newCircularId()): Promise<{ circular: CircularStatus; replayed: boolean }> {
    const input = checkCircular(raw);
    const rendered = renderMarkdown(input.text);
    attachmentsIn.forEach((a, i) => this.checkAttachment(a, i));
    const result = await this.#db.transaction(async (tx) => {
      if (meta.sourceEventId) {
        const earlier = await store.findBySourceEvent(tx, meta.sourceEventId);
        if (earlier) return { id: earlier.id, replayed: true, rows: 0 };
      }
      const organisations = await this.resolveTargets(tx, input.targets);
      await store.insertCircular(tx, {
        id,
        markdown: input.text,
        body: rendered.body,
        html: rendered.html,
        targets: input.targets,
        author: meta.author,
        source: meta.source,
        sourceEventId: meta.sourceEventId ?? null,
        scheduledAt: input.scheduledAt,
      });
      for (const [position, a] of attachmentsIn.entries()) {
        await store.insertAttachment(tx, id, position, {
          filename: a.filename,
          mimetype: a.mimetype,
          size: a.size,
          sha256: "sha256" in a ? a.sha256 : null,
          sourceMxc: "sourceMxc" in a ? a.sourceMxc : null,
          sourceFile: "sourceFile" in a ? a.sourceFile : null,
        });
        if ("staffFileEventId" in a) await store.takeStaffFile(tx, a.staffFileEventId, id);
      }
      await store.insertDeliveries(tx, id, organisations);
      await store.requestWork(tx, id, input.scheduledAt);
      await audit(tx, {
        actor: meta.author,
        action: "circular.created",
        object: id,
        outcome: "ok",
        details: {
          targets: describeTargets(input.targets),
          organisations: organisations.length,
          attachments: attachmentsIn.map((a) => a.filename),
          scheduledAt: input.scheduledAt?.toISOString() ?? null,
          source: meta.source,
        },
      });
      return { id, replayed: false, rows: organisations.length };
    });
    // Hundreds of new rows to claim: fresh statistics keep the claim on its index from the first
    // claim on (measured: with the statistics of a smaller table, the first claims of a
    // 1,000-room fan-out took 300–500 ms each instead of 2 ms).
    if (!result.replayed && result.rows >= 100) await store.analyzeDeliveries(this.#db);
    if (!result.replayed) this.#onWork();
    return { circular: (await this.status(result.id))!, replayed: result.replayed };
  }

  /** Cancels a circular that has not started sending. */
  async cancel(id: string, actor: string): Promise<CircularStatus> {
    await this.#db.transaction(async (tx) => {
      const c = await store.findCircular(tx, id, true);
      if (!c) throw new KuvertError(ErrCode.NotFound, `There is no circular ${id}.`);
      if (c.state === "cancelled") return;
      if (c.state !== "scheduled" && c.state !== "scanning") {
        throw new KuvertError(CircularErr.State, `Circular ${id} is ${c.state}; only a circular that has not started sending can be cancelled.`);
      }
      await store.setState(tx, id, "cancelled", { finished: true, reason: `cancelled by ${actor}` });
      await store.failPending(tx, id, "cancelled");
      // The worker cleans up staged attachments and ends its work item.
      await store.requestWork(tx, id);
      await audit(tx, { actor, action: "circular.cancelled", object: id, outcome: "ok", details: { was: c.state } });
    });
    this.#onWork();
    return (await this.status(id))!;
  }

  /**
   * A correction: the new text goes, as an edit (m.replace) of the original, to exactly the rooms
   * that got the original. Only once the circular is sent (so that set is known).
   */
  async correct(id: string, raw: unknown, actor: string): Promise<{ circular: CircularStatus; revision: number; rooms: number }> {
    const text = checkText(parseInput(correctionInput, raw).text);
    const rendered = renderMarkdown(text);
    const out = await this.#db.transaction(async (tx) => {
      const c = await store.findCircular(tx, id, true);
      if (!c) throw new KuvertError(ErrCode.NotFound, `There is no circular ${id}.`);
      if (c.state !== "sent") {
        throw new KuvertError(CircularErr.State, `Circular ${id} is ${c.state}; a correction can be sent once the circular is sent (cancel and send anew before that).`);
      }
      const revision = await store.nextRevision(tx, id);
      await store.insertRevision(tx, id, { revision, markdown: text, body: rendered.body, html: rendered.html, author: actor });
      const rooms = await store.insertCorrectionDeliveries(tx, id, revision);
      await store.requestWork(tx, id);
      await audit(tx, { actor, action: "circular.corrected", object: id, outcome: "ok", details: { revision, rooms } });
      return { revision, rooms };
    });
    this.#onWork();
    return { circular: (await this.status(id))!, ...out };
  }

  async status(id: string, withDeliveries = true): Promise<CircularStatus | null> {
    const c = await store.findCircular(this.#db, id);
    if (!c) return null;
    const [atts, revs, sums] = await Promise.all([store.attachments(this.#db, id), store.revisions(this.#db, id), store.summaries(this.#db, id)]);
    const status = present(c, atts, revs, sums);
    if (withDeliveries) {
      status.deliveries = (await store.deliveries(this.#db, id)).map((d) => ({
        organisationId: d.organisation_id,
        state: d.state,
        reason: d.reason ?? (d.state === "failed" ? d.last_error : null),
        eventId: d.event_id,
        deliveredAt: d.delivered_at?.toISOString() ?? null,
      }));
    }
    return status;
  }

  async list(limit = 100, before?: string): Promise<CircularStatus[]> {
    const rows = await store.listCirculars(this.#db, limit, before);
    const out: CircularStatus[] = [];
    for (const c of rows) out.push((await this.status(c.id, false))!);
    return out;
  }
}

function present(c: store.CircularRow, atts: store.AttachmentRow[], revs: store.RevisionRow[], sums: Map<number, store.Summary>): CircularStatus {
  return {
    id: c.id,
    state: c.state,
    reason: c.reason,
    text: c.markdown,
    targets: c.targets,
    author: c.author,
    source: c.source,
    scheduledAt: c.scheduled_at?.toISOString() ?? null,
    createdAt: c.created_at.toISOString(),
    startedAt: c.started_at?.toISOString() ?? null,
    finishedAt: c.finished_at?.toISOString() ?? null,
    attachments: atts.map((a) => ({ filename: a.filename, mimetype: a.mimetype, size: Number(a.size), verdict: a.verdict, signature: a.signature, mxcUri: a.mxc_uri })),
    summary: sums.get(0) ?? empty(),
    corrections: revs.map((r) => ({ revision: r.revision, text: r.markdown, author: r.author, createdAt: r.created_at.toISOString(), summary: sums.get(r.revision) ?? empty() })),
    statusUrl: `/api/v1/circulars/${c.id}`,
  };
}
