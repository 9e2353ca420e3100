// The accounts' part of a data-subject request: the homeserver accounts Kuvert created for the person.
import { ErrCode, KuvertError } from "../errors.ts";
import type { SubjectKind, SubjectPart } from "../module.ts";

const match = (kind: SubjectKind) => (kind === "matrix-id" ? "matrix_id = $1" : "lower(email) = $1");

export const accountsSubject: SubjectPart = {
  sections: [
    {
      name: "accounts",
      after: "clerks",
      sql: (kind) => `SELECT matrix_id AS "matrixId", display_name AS name, email, organisation_id AS organisation, state, failure,
                             created_at AS "requestedAt", account_created_at AS "createdAt", letters_issued AS "letters",
                             letter_issued_at AS "letterAt", password_resets AS "passwordResets", deactivated_at AS "deactivatedAt"
                        FROM clerk_accounts WHERE ${match(kind)} ORDER BY id`,
      texts: {
        de: {
          title: "Konten auf dem Homeserver",
          description: "Konten, die Kuvert für die Person auf dem Homeserver angelegt hat: Benutzername (Matrix-ID), Name, E-Mail-Adresse, Zustand und wann Passwortbriefe erstellt wurden. Das Passwort speichert Kuvert nie.",
          labels: { failure: "Fehler", requestedAt: "beantragt", createdAt: "angelegt", letters: "Passwortbriefe", letterAt: "letzter Brief", passwordResets: "Passwort zurückgesetzt", deactivatedAt: "deaktiviert" },
        },
        en: {
          title: "Accounts on the homeserver",
          description: "Accounts Kuvert created for the person on the homeserver: username (Matrix ID), name, e-mail address, state, and when password letters were produced. Kuvert never keeps the password.",
          labels: { failure: "failure", requestedAt: "requested", createdAt: "created", letters: "password letters", letterAt: "last letter", passwordResets: "password resets", deactivatedAt: "deactivated" },
        },
      },
    },
  ],
  // The homeserver account must be deactivated first (Kuvert keeps track of it until then).
  async erase(tx, { subject, kind, pseudonym }) {
    const live = (await tx.query<{ matrix_id: string }>(`SELECT matrix_id FROM clerk_accounts WHERE ${match(kind)} AND state <> 'deactivated' AND state <> 'failed' FOR UPDATE`, [subject])).rows;
    if (live.length > 0) {
      throw new KuvertError(
        ErrCode.SubjectStillActive,
        `Kuvert created the account ${live.map((a) => a.matrix_id).join(", ")} on the homeserver for ${subject} and it is still active: deactivate it first (DELETE …/clerks/{clerk}?confirm=true or \`kuvert account deactivate\`), then erase.`,
      );
    }
    const { rowCount } = await tx.query(`UPDATE clerk_accounts SET matrix_id = $2 || '#' || id, email = $2, display_name = $2, failure = CASE WHEN failure IS NULL THEN NULL ELSE $2 END WHERE ${match(kind)}`, [subject, pseudonym]);
    return [{ key: "accounts", what: "records of homeserver accounts Kuvert created (deactivated): Matrix ID, e-mail address and name replaced by the pseudonym", count: rowCount }];
  },
};
