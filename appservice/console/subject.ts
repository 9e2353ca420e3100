// The console's part of a data-subject request: a staff member's sessions.
import type { SubjectPart } from "../module.ts";

export const consoleSubject: SubjectPart = {
  sections: [
    {
      name: "consoleSessions",
      after: "staff",
      sql: (kind) => (kind === "matrix-id" ? `SELECT created_at AS "signedInAt", last_seen_at AS "lastSeenAt", expires_at AS "endsAt", user_agent AS "browser" FROM console_sessions WHERE user_id = $1 ORDER BY created_at` : null),
      texts: {
        de: {
          title: "Sitzungen in der Konsole",
          description: "Die Sitzungen der Person in der Konsole der Stelle: wann sie sich angemeldet hat, zuletzt aktiv war und die Sitzung endet, und der Browser. Beendete Sitzungen werden gelöscht.",
          labels: { signedInAt: "angemeldet", lastSeenAt: "zuletzt aktiv", endsAt: "endet spätestens", browser: "Browser" },
        },
        en: {
          title: "Staff console sessions",
          description: "The person's sessions in the staff console: when they signed in, were last active and the session ends, and the browser. Ended sessions are deleted.",
          labels: { signedInAt: "signed in", lastSeenAt: "last active", endsAt: "ends at the latest", browser: "browser" },
        },
      },
    },
  ],
  async erase(tx, { subject, kind }) {
    const count = kind === "matrix-id" ? (await tx.query("DELETE FROM console_sessions WHERE user_id = $1", [subject])).rowCount : 0;
    return [{ key: "consoleSessions", what: "staff console sessions deleted", count }];
  },
};
