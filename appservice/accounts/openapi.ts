// The accounts part of the admin API's OpenAPI document (http/openapi.ts merges it in).
import type { z } from "zod";
import { lettersRequest } from "./api.ts";

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const jsonOf = (name: string) => ({ content: { "application/json": { schema: ref(name) } } });
const pdf = {
  description: "The letters as one PDF, one A4 page per clerk (header Kuvert-Letters: how many). It holds the passwords: print it, then delete it.",
  content: { "application/pdf": { schema: { type: "string", format: "binary" } } },
};
const refused = { description: "KUVERT_LETTER_ALREADY_ISSUED (a password reset first) or KUVERT_ACCOUNT_NOT_READY (still being created, failed, deactivated).", ...jsonOf("Error") };
const homeserver = {
  "502": { description: "KUVERT_HOMESERVER_FAILED: the homeserver refused or failed; nothing changed.", ...jsonOf("Error") },
  "503": { description: "KUVERT_HOMESERVER_ADMIN_UNAVAILABLE: no homeserver admin token, or not an admin's.", ...jsonOf("Error") },
};
const orgClerk = [
  { name: "id", in: "path", required: true, schema: { type: "string" }, description: "The organisation's slug id." },
  { name: "clerk", in: "path", required: true, schema: { type: "string" }, description: "The clerk's Matrix ID or e-mail address." },
];
const language = { name: "language", in: "query", schema: { type: "string", enum: ["de", "en"] }, description: "Unset: letters.language, by default organisations.language." };

export function accountSchemas(schema: (s: z.ZodType) => unknown): Record<string, unknown> {
  return {
    LettersRequest: schema(lettersRequest),
    Account: {
      type: "object",
      properties: {
        matrixId: { type: "string" },
        email: { type: "string" },
        name: { type: "string" },
        organisationId: { type: "string", description: "The organisation the account was asked for." },
        state: {
          type: "string",
          enum: ["requested", "letter_ready", "letter_issued", "failed", "deactivated"],
          description: "requested: being created; letter_ready: on the homeserver, its letter can be produced; letter_issued: produced (another only after a password reset); failed: see failure.",
        },
        failure: { type: ["string", "null"] },
        requestedAt: { type: "string", format: "date-time" },
        createdAt: { type: ["string", "null"], format: "date-time" },
        lettersIssued: { type: "integer" },
        letterIssuedAt: { type: ["string", "null"], format: "date-time" },
        passwordResets: { type: "integer" },
        deactivatedAt: { type: ["string", "null"], format: "date-time" },
        organisations: { type: "array", items: { type: "string" }, description: "Organisations whose active clerk this account is." },
      },
    },
  };
}

/** Query parameters of DELETE /organisations/{id}/clerks/{clerk} for a clerk whose account Kuvert created. */
const removalParameters = [
  { name: "confirm", in: "query", schema: { type: "boolean" }, description: "For a clerk whose account Kuvert created: also deactivate the account on the homeserver. Without it (or keepAccount), 409 KUVERT_CONFIRMATION_REQUIRED says what would happen." },
  { name: "keepAccount", in: "query", schema: { type: "boolean" }, description: "Remove the clerk only; the account stays." },
];

export function accountPaths(errors: Record<string, unknown>): Record<string, unknown> {
  return {
    // The core's removal of a clerk, for a clerk whose account Kuvert created (accounts/api.ts answers it first).
    "/organisations/{id}/clerks/{clerk}": {
      delete: {
        parameters: removalParameters,
        responses: {
          "409": { description: "KUVERT_CONFIRMATION_REQUIRED: the clerk's account was created by Kuvert; the message says what confirm=true would do (or that the clerk is still in another organisation).", ...jsonOf("Error") },
        },
      },
    },
    "/accounts": {
      get: {
        summary: "Clerk accounts Kuvert created",
        parameters: [
          { name: "organisation", in: "query", schema: { type: "string" } },
          { name: "state", in: "query", schema: { type: "string", enum: ["requested", "letter_ready", "letter_issued", "failed", "deactivated"] } },
        ],
        responses: { "200": { description: "Accounts.", content: { "application/json": { schema: { type: "object", properties: { accounts: { type: "array", items: ref("Account") } } } } } }, ...errors },
      },
    },
    "/accounts/{matrixId}": {
      parameters: [{ name: "matrixId", in: "path", required: true, schema: { type: "string" } }],
      get: { summary: "One account", responses: { "200": jsonOf("Account"), "404": { description: "Kuvert made no such account.", ...jsonOf("Error") }, ...errors } },
    },
    "/organisations/{id}/clerks/{clerk}/letter": {
      parameters: orgClerk,
      post: {
        summary: "Produce the clerk's password letter (once; sets a new random password on the homeserver)",
        parameters: [language],
        responses: { "200": pdf, "409": refused, ...homeserver, ...errors },
      },
    },
    "/organisations/{id}/clerks/{clerk}/password-reset": {
      parameters: orgClerk,
      post: {
        summary: "Reset the clerk's password: the old one stops working now, the clerk gets an e-mail, one new letter can be produced",
        responses: {
          "200": { description: "Reset.", content: { "application/json": { schema: { type: "object", properties: { account: ref("Account"), letterUrl: { type: "string" } } } } } },
          "409": { description: "KUVERT_ACCOUNT_NOT_READY: no letter was produced since the last reset, or the account is not on the homeserver.", ...jsonOf("Error") },
          ...homeserver,
          ...errors,
        },
      },
    },
    "/letters": {
      post: {
        summary: "Produce every letter due among organisations' clerks, and/or of named accounts, as one PDF",
        requestBody: { required: true, ...jsonOf("LettersRequest") },
        responses: { "200": pdf, "409": refused, ...homeserver, ...errors },
      },
    },
  };
}
