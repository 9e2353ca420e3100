// The calls' part of a data-subject request: guest links sent to the person's address.
import type { SubjectPart } from "../module.ts";
import { eraseGuestLinks } from "./store.ts";

export const callsSubject: SubjectPart = {
  sections: [
    {
      name: "guestLinks",
      after: "mail",
      sql: (kind) =>
        kind === "email"
          ? `SELECT id, call_id AS "call", guest_name AS name, email, created_at AS "issuedAt", expires_at AS "validUntil", revoked_at AS "revokedAt"
               FROM guest_links WHERE lower(email) = $1 ORDER BY created_at, id`
          : null,
      texts: {
        de: {
          title: "Einladungen zu Videoberatungen",
          description: "Links zu Videoberatungen, zu denen die Person als Gast eingeladen wurde: Name und Adresse, die die Mitarbeitenden angegeben haben, wann der Link ausgestellt wurde, bis wann er galt und ob er zurückgezogen wurde.",
          labels: { call: "Videoberatung", issuedAt: "ausgestellt", validUntil: "gültig bis", revokedAt: "zurückgezogen" },
        },
        en: {
          title: "Invitations to video consultations",
          description: "Links to video consultations the person was invited to as a guest: the name and address staff gave, when the link was issued, until when it was valid, and whether it was withdrawn.",
          labels: { call: "video consultation", issuedAt: "issued", validUntil: "valid until", revokedAt: "withdrawn" },
        },
      },
    },
  ],
  // A guest's links keep no name or address, and one still valid is withdrawn.
  async erase(tx, { subject, kind, pseudonym, actor }) {
    const count = kind === "email" ? await eraseGuestLinks(tx, subject, pseudonym, actor) : 0;
    return [{ key: "guestLinks", what: "guest links to video consultations: name and address replaced by the pseudonym, links still valid withdrawn", count }];
  },
};
