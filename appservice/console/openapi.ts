// The console's endpoints in the OpenAPI document (merged into /api/v1/openapi.json).
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: unknown, description: string) => ({ description, content: { "application/json": { schema } } });
const error = (description: string) => json(ref("Error"), description);
const session = { session: [], bearer: [] };

const sessionSchema = {
  type: "object",
  properties: {
    userId: { type: "string" },
    roles: { type: "array", items: { type: "string", enum: ["admin", "staff", "dpo"] } },
    scopes: { type: "array", items: { type: "string", enum: ["admin", "staff", "drop", "audit"] } },
    createdAt: { type: "string", format: "date-time" },
    expiresAt: { type: "string", format: "date-time", description: "The latest end (console.maxHours); it ends earlier after console.idleMinutes without a request." },
    idleMinutes: { type: "number" },
  },
};

const auditEntry = {
  type: "object",
  properties: {
    seq: { type: "string" },
    at: { type: "string", format: "date-time" },
    actor: { type: "string", description: "A Matrix ID, token:<name>, cli:<user>, kuvert or anonymous." },
    action: { type: "string" },
    organisationId: { type: ["string", "null"] },
    object: { type: ["string", "null"] },
    outcome: { type: "string", enum: ["ok", "refused", "failed"] },
    details: { type: "object" },
  },
};

const timeParam = (name: string, description: string) => ({ name, in: "query", schema: { type: "string", format: "date-time" }, description });

export const consoleSecurityScheme = {
  type: "apiKey",
  in: "cookie",
  name: "kuvert_session",
  description: "A console session (POST /session). Requests that change something must also send the header X-Kuvert-Console: 1. Roles give scopes: admin → admin, staff, drop; staff → staff, drop; dpo → audit.",
};

export const consolePaths: Record<string, unknown> = {
  "/session": {
    get: {
      summary: "The current console session, if any",
      security: [{}, { session: [] }],
      responses: { "200": json({ type: "object", properties: { signedIn: { type: "boolean" }, ended: { type: "boolean", description: "The cookie named a session that has ended." }, session: sessionSchema } }, "Signed in or not.") },
    },
    post: {
      summary: "Sign in: exchange a Matrix OpenID token for a console session",
      description:
        "The browser asks the homeserver for an OpenID token (POST /_matrix/client/v3/user/{userId}/openid/request_token) and sends it here with the header X-Kuvert-Console: 1. Kuvert checks it with the homeserver (GET /_matrix/federation/v1/openid/userinfo) and starts a session for people with a role in staff[]; the session id comes back as an HttpOnly, Secure, SameSite=Strict cookie. Failed and refused sign-ins are audited and rate limited per address.",
      security: [{}],
      requestBody: {
        required: true,
        content: {
          "application/json": {
            schema: { type: "object", required: ["access_token", "matrix_server_name"], properties: { access_token: { type: "string" }, matrix_server_name: { type: "string" }, token_type: { type: "string" }, expires_in: { type: "number" } }, additionalProperties: false },
          },
        },
      },
      responses: {
        "201": json({ type: "object", properties: { signedIn: { const: true }, session: sessionSchema } }, "Signed in; Set-Cookie carries the session."),
        "400": error("Not an OpenID token."),
        "401": error("KUVERT_SIGN_IN_FAILED: the homeserver does not know the token, or it is from another server."),
        "403": error("KUVERT_NOT_STAFF: the person holds no role; KUVERT_CONSOLE_HEADER_MISSING."),
        "429": error("Too many failed sign-ins from this address."),
        "503": error("The homeserver cannot be reached to check the token."),
      },
    },
    delete: {
      summary: "Sign out: end the session",
      security: [{ session: [] }],
      responses: { "200": json({ type: "object", properties: { signedIn: { const: false }, ended: { type: "boolean" } } }, "Signed out; the cookie is cleared.") },
    },
  },
  "/console/organisations": {
    get: {
      summary: "Organisations to deliver documents to (scope admin, staff or drop; a drop token sees its organisations)",
      security: [session],
      parameters: [{ name: "search", in: "query", schema: { type: "string" }, description: "Part of the id or name." }],
      responses: {
        "200": json(
          {
            type: "object",
            properties: { organisations: { type: "array", items: { type: "object", properties: { id: { type: "string" }, name: { type: "string" }, tags: { type: "array", items: { type: "string" } }, state: { type: "string" }, roomState: { type: "string" } } } } },
          },
          "By name.",
        ),
      },
    },
  },
  "/audit": {
    get: {
      summary: "The audit log, newest first (scope audit or admin)",
      security: [session],
      parameters: [
        timeParam("from", "Entries at or after this time."),
        timeParam("to", "Entries before this time."),
        { name: "actor", in: "query", schema: { type: "string" } },
        { name: "organisation", in: "query", schema: { type: "string" } },
        { name: "action", in: "query", schema: { type: "string" }, description: "An action, or a prefix ending in * (organisation.*)." },
        { name: "before", in: "query", schema: { type: "string" }, description: "Page on: entries with a smaller seq (the previous page's next)." },
        { name: "limit", in: "query", schema: { type: "integer", minimum: 1, maximum: 500, default: 100 } },
      ],
      responses: { "200": json({ type: "object", properties: { entries: { type: "array", items: auditEntry }, next: { type: ["string", "null"] } } }, "A page of entries."), "400": error("A bad filter.") },
    },
  },
  "/audit/export": {
    get: {
      summary: "Export the audit log as CSV or JSON Lines (audited as audit.exported)",
      security: [session],
      parameters: [{ name: "format", in: "query", schema: { type: "string", enum: ["csv", "jsonl"], default: "csv" } }, timeParam("from", "From this time."), timeParam("to", "Before this time.")],
      responses: { "200": { description: "The rows in order, as an attachment.", content: { "text/csv": { schema: { type: "string" } }, "application/x-ndjson": { schema: { type: "string" } } } } },
    },
  },
  "/audit/verify": {
    post: {
      summary: "Walk the hash chain and report the first broken row (audited as audit.verified)",
      security: [session],
      responses: {
        "200": json({ type: "object", properties: { ok: { type: "boolean" }, rows: { type: "integer" }, brokenAt: { type: "object", properties: { seq: { type: "string" }, reason: { type: "string" } } } } }, "The result."),
      },
    },
  },
  "/status": {
    get: {
      summary: "Readiness of database, homeserver, scanner and mail, and the depth of every work queue (scope admin)",
      security: [session],
      responses: {
        "200": json(
          {
            type: "object",
            properties: {
              ready: { type: "boolean" },
              checks: { type: "object", additionalProperties: { type: "object", properties: { ok: { type: "boolean" }, detail: { type: "string" } } } },
              queues: { type: "array", items: { type: "object", properties: { queue: { type: "string" }, table: { type: "string" }, pending: { type: "integer" }, failed: { type: "integer" }, oldestPendingSince: { type: ["string", "null"] } } } },
            },
          },
          "Status.",
        ),
      },
    },
  },
  "/mail/dead": {
    get: {
      summary: "E-mails given up after their last attempt (scope admin)",
      security: [session],
      responses: {
        "200": json(
          {
            type: "object",
            properties: {
              mails: {
                type: "array",
                items: {
                  type: "object",
                  properties: {
                    id: { type: "string" },
                    kind: { type: "string" },
                    recipient: { type: "string" },
                    organisationId: { type: ["string", "null"] },
                    attempts: { type: "integer" },
                    lastError: { type: ["string", "null"] },
                    createdAt: { type: "string" },
                    notifications: { type: "integer", description: "Notifications combined in this e-mail." },
                  },
                },
              },
            },
          },
          "Newest first.",
        ),
      },
    },
  },
  "/mail/{id}/retry": {
    parameters: [{ name: "id", in: "path", required: true, schema: { type: "string" } }],
    post: {
      summary: "Send a dead e-mail again, from attempt one (audited as mail.retried; scope admin)",
      security: [session],
      responses: { "200": json({ type: "object", properties: { id: { type: "string" }, state: { const: "pending" }, notifications: { type: "integer" } } }, "Pending again."), "404": error("No such dead e-mail.") },
    },
  },
};
