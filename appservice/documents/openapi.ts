// The documents part of the OpenAPI document (merged in by http/openapi.ts): the drop API, a
// document's state and its versions.
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: unknown) => ({ content: { "application/json": { schema } } });
const error = (description: string) => ({ description, ...json(ref("Error")) });
const dropAuth = { "401": error("Missing, unknown or revoked token."), "403": error("The token has neither the drop nor the admin scope, or may not deliver to this organisation.") };
const query = (name: string, description: string) => ({ name, in: "query", required: false, schema: { type: "string" }, description });

export const documentSchemas = {
  Document: {
    type: "object",
    properties: {
      id: { type: "string" },
      direction: { type: "string", enum: ["outbound", "inbound"] },
      organisationId: { type: "string" },
      source: { type: "string", description: "api, folder, batch, console (outbound); room (inbound)." },
      submittedBy: { type: "string" },
      filename: { type: "string" },
      kind: { type: ["string", "null"] },
      reference: { type: ["string", "null"] },
      mimetype: { type: ["string", "null"] },
      size: { type: "integer" },
      sha256: { type: ["string", "null"] },
      state: { type: "string", description: "received, scanning, held, rejected, delivered, checked, removed (the list may grow)." },
      reason: { type: ["string", "null"] },
      signature: { type: ["string", "null"] },
      eventId: { type: ["string", "null"] },
      createdAt: { type: "string", format: "date-time" },
      scannedAt: { type: ["string", "null"], format: "date-time" },
      finishedAt: { type: ["string", "null"], format: "date-time" },
      version: { type: "integer", minimum: 1, description: "1 for a first version; each correction one more than the version it replaces." },
      supersedes: { type: ["string", "null"], description: "The version this one replaces." },
      supersededBy: { type: ["string", "null"], description: "The version that replaces this one (set once it is accepted; cleared if the scanner rejects it)." },
      statusUrl: { type: "string" },
    },
  },
};

export const documentPaths = {
  "/organisations/{id}/documents": {
    post: {
      summary: "Deliver a document (streamed), optionally as a new version of an earlier one",
      description: "The body is the document (any binary type), or multipart/form-data with the fields before one file part. A retried request with the same Idempotency-Key answers the first result.",
      parameters: [
        { name: "id", in: "path", required: true, schema: { type: "string" }, description: "The organisation's slug id." },
        query("filename", "The file name (raw body)."),
        query("kind", "Kind of document, e.g. Beitragsbescheid."),
        query("reference", "The reference (Aktenzeichen)."),
        query("supersedes", "The id of the document this one replaces (same organisation, delivered, not replaced yet)."),
        query("supersedesReference", "Replace the current document with this reference in the same organisation (instead of supersedes)."),
        { name: "Idempotency-Key", in: "header", required: false, schema: { type: "string", maxLength: 200 } },
      ],
      requestBody: { required: true, content: { "application/octet-stream": { schema: { type: "string", format: "binary" } }, "multipart/form-data": { schema: { type: "object" } } } },
      responses: {
        "202": { description: "Accepted: staged and recorded; scanned and delivered next.", ...json(ref("Document")) },
        "400": error("Invalid input (file name, fields, supersedes together with supersedesReference)."),
        "404": error("Unknown organisation, or no document to replace."),
        "409": error("Archived organisation, or the named document cannot be replaced: KUVERT_DOCUMENT_ALREADY_REPLACED, KUVERT_DOCUMENT_NOT_DELIVERED, KUVERT_DOCUMENT_OF_ANOTHER_ORGANISATION, KUVERT_REFERENCE_AMBIGUOUS."),
        "413": error("Larger than Kuvert accepts or the scanner checks."),
        "415": error("A type Kuvert does not accept (judged by the content)."),
        "422": error("The Idempotency-Key was used for a different document."),
        ...dropAuth,
      },
    },
  },
  "/documents/{docId}": {
    get: {
      summary: "A document's state, and whether the clerks were notified",
      parameters: [{ name: "docId", in: "path", required: true, schema: { type: "string" } }],
      responses: { "200": json(ref("Document")), "404": error("Unknown document, or one outside the token's organisations."), ...dropAuth },
    },
  },
  "/documents/{docId}/versions": {
    get: {
      summary: "Every version of a document, oldest first, and the current one",
      parameters: [{ name: "docId", in: "path", required: true, schema: { type: "string" }, description: "Any version of the document." }],
      responses: {
        "200": json({ type: "object", properties: { current: { type: ["string", "null"], description: "The newest delivered version." }, versions: { type: "array", items: ref("Document") } } }),
        "404": error("Unknown document, or one outside the token's organisations."),
        ...dropAuth,
      },
    },
  },
};
