// The documents' part of a data-subject request: the documents the person sent, and those
// delivered to their organisations while they were a clerk there (metadata only: Kuvert keeps no
// content after delivery). Erasure replaces the sender of finished documents by the pseudonym.
import type { SubjectKind, SubjectPart } from "../module.ts";

const finishedDocument = "state IN ('delivered', 'rejected', 'checked', 'removed', 'failed')";

/** The documents delivered into the rooms of the person's organisations while they were a clerk there, by others. */
function organisationDocuments(kind: SubjectKind): string {
  const clerk = kind === "matrix-id" ? "c.matrix_id = $1" : "lower(c.email) = $1";
  return `SELECT d.id, d.organisation_id AS organisation, d.filename, d.kind, d.state, d.version, d.supersedes,
                 d.created_at AS "receivedAt", d.finished_at AS "deliveredAt"
            FROM documents d
           WHERE d.direction = 'outbound' AND d.state = 'delivered' AND d.submitted_by <> $1
             AND EXISTS (SELECT 1 FROM clerks c
                          WHERE c.organisation_id = d.organisation_id AND ${clerk}
                            AND d.created_at >= c.created_at AND (c.removed_at IS NULL OR d.created_at <= c.removed_at))
           ORDER BY d.created_at, d.id`;
}

const labels = {
  de: { direction: "Richtung", filename: "Dateiname", reference: "Aktenzeichen", version: "Version", supersedes: "ersetzt", receivedAt: "eingegangen", finishedAt: "abgeschlossen", deliveredAt: "zugestellt" },
  en: { direction: "direction", filename: "filename", reference: "reference", version: "version", supersedes: "replaces", receivedAt: "received", finishedAt: "finished", deliveredAt: "delivered" },
};

export const documentsSubject: SubjectPart = {
  sections: [
    {
      name: "documentsSent",
      after: "staff",
      // Only people with a Matrix ID send documents (in a room, or in the console).
      sql: (kind) =>
        kind === "matrix-id"
          ? `SELECT id, direction, organisation_id AS organisation, filename, kind, reference, state, version, supersedes,
                    created_at AS "receivedAt", finished_at AS "finishedAt"
               FROM documents WHERE submitted_by = $1 ORDER BY created_at, id`
          : null,
      texts: {
        de: {
          title: "Von der Person gesendete Dokumente",
          description: "Dokumente, die die Person in einem Raum oder in der Webkonsole hochgeladen hat: nur Metadaten, denn Kuvert behält nach der Zustellung keine Inhalte.",
          labels: labels.de,
        },
        en: {
          title: "Documents the person sent",
          description: "Documents the person sent (uploaded in a room or in the web console): metadata only, since Kuvert keeps no document content after delivery.",
          labels: labels.en,
        },
      },
    },
    {
      name: "organisationDocuments",
      after: "staff",
      sql: organisationDocuments,
      texts: {
        de: {
          title: "Dokumente an Organisationen der Person",
          description: "Dokumente, die in den Raum einer Organisation zugestellt wurden, während die Person dort Sachbearbeitung war: nur Metadaten. Sie gehören zu den Unterlagen der Organisation und nennen die Person nicht.",
          labels: labels.de,
        },
        en: {
          title: "Documents for the person's organisations",
          description: "Documents delivered into the room of an organisation while the person was one of its clerks: metadata only. They are the organisation's records and do not name the person.",
          labels: labels.en,
        },
      },
    },
  ],
  // Runs before the clerk records lose the link to the person: the organisations' documents are counted through it.
  async erase(tx, { subject, kind, pseudonym }) {
    const count = async (sql: string) => Number((await tx.query<{ n: string | number }>(sql, [subject])).rows[0]?.n ?? 0);
    const inOrganisations = await count(`SELECT count(*) AS n FROM (${organisationDocuments(kind)}) d`);
    let sent = 0;
    let inProgress = 0;
    if (kind === "matrix-id") {
      sent = (await tx.query(`UPDATE documents SET submitted_by = $2 WHERE submitted_by = $1 AND ${finishedDocument}`, [subject, pseudonym])).rowCount;
      inProgress = await count(`SELECT count(*) AS n FROM documents WHERE submitted_by = $1 AND NOT ${finishedDocument}`);
    }
    return [
      { key: "documentsSent", what: "documents the person sent: the sender replaced by the pseudonym", count: sent },
      {
        key: "documentMetadata",
        what: "metadata of the documents the person sent (filename, kind, reference, dates)",
        count: sent,
        why: "the organisation's and the operating body's record of what was exchanged; it now names only the pseudonym, and Kuvert kept no content after delivery. Deleted by retention after retention.documentDays.",
      },
      {
        key: "documentsInProgress",
        what: "documents the person sent that are still being scanned or delivered",
        count: inProgress,
        why: "Kuvert needs the sender to finish them (who is notified depends on it); erase again once they are done.",
      },
      {
        key: "organisationDocuments",
        what: "documents delivered to organisations where the person was a clerk",
        count: inOrganisations,
        why: "they are the organisation's records and do not name the person; the link to the person went with the clerk record.",
      },
    ];
  },
};
