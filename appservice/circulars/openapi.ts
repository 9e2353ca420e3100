// The circulars part of the OpenAPI document, from the same schemas that check the input.
import { z } from "zod";
import { circularInput, circularStates, correctionInput } from "./model.ts";

const schema = (s: z.ZodType) => z.toJSONSchema(s, { io: "input", unrepresentable: "any" });
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (name: string) => ({ content: { "application/json": { schema: ref(name) } } });
const error = (description: string) => ({ description, ...json("Error") });

const summary = {
  type: "object",
  properties: { pending: { type: "integer" }, delivered: { type: "integer" }, failed: { type: "integer" } },
};

export const circularSchemas = {
  CircularInput: schema(circularInput),
  CorrectionInput: schema(correctionInput),
  Circular: {
    type: "object",
    properties: {
      id: { type: "string" },
      state: {
        type: "string",
        enum: [...circularStates],
        description: "scanning: attachments are checked and uploaded; stopped: an attachment was not clean and no room got anything (see reason).",
      },
      reason: { type: ["string", "null"] },
      text: { type: "string", description: "The Markdown as written." },
      targets: schema(circularInput.shape.targets),
      author: { type: "string" },
      source: { type: "string", enum: ["api", "room"] },
      scheduledAt: { type: ["string", "null"], format: "date-time" },
      createdAt: { type: "string", format: "date-time" },
      startedAt: { type: ["string", "null"], format: "date-time" },
      finishedAt: { type: ["string", "null"], format: "date-time" },
      attachments: {
        type: "array",
        items: {
          type: "object",
          properties: {
            filename: { type: "string" },
            mimetype: { type: "string" },
            size: { type: "integer" },
            verdict: { type: ["string", "null"], enum: ["clean", "infected", "too-large", null] },
            signature: { type: ["string", "null"] },
            mxcUri: { type: ["string", "null"], description: "The one media URI every room's file event references." },
          },
        },
      },
      summary: { ...summary, description: "Deliveries of the circular by state." },
      corrections: {
        type: "array",
        items: { type: "object", properties: { revision: { type: "integer" }, text: { type: "string" }, author: { type: "string" }, createdAt: { type: "string", format: "date-time" }, summary } },
      },
      deliveries: {
        type: "array",
        description: "Per organisation (only in GET /circulars/{id}).",
        items: {
          type: "object",
          properties: {
            organisationId: { type: "string" },
            state: { type: "string", enum: ["pending", "delivered", "failed"] },
            reason: { type: ["string", "null"] },
            eventId: { type: ["string", "null"] },
            deliveredAt: { type: ["string", "null"], format: "date-time" },
          },
        },
      },
      statusUrl: { type: "string" },
    },
  },
};

const idParam = { name: "id", in: "path", required: true, schema: { type: "string" }, description: "The circular's id (circ_…)." };
const scope = "Scope staff or admin.";

export const circularPaths = {
  "/circulars": {
    get: {
      summary: "List circulars, newest first",
      description: scope,
      parameters: [
        { name: "limit", in: "query", schema: { type: "integer", minimum: 1, maximum: 1000, default: 100 } },
        { name: "before", in: "query", schema: { type: "string" }, description: "Page on: the last id of the previous page." },
      ],
      responses: { "200": { description: "Circulars with their summaries.", content: { "application/json": { schema: { type: "object", properties: { circulars: { type: "array", items: ref("Circular") } } } } } } },
    },
    post: {
      summary: "Send a circular to all organisations, a tag or a list, now or at scheduledAt",
      description: `${scope} With attachments: multipart/form-data with the fields text, targets (JSON) and scheduledAt, then one or more files named attachment (streamed; each scanned once and uploaded once). Nothing is stored when anything is refused.`,
      requestBody: {
        required: true,
        content: {
          "application/json": { schema: ref("CircularInput") },
          "multipart/form-data": {
            schema: {
              type: "object",
              required: ["text", "targets"],
              properties: {
                text: { type: "string" },
                targets: { type: "string", description: 'JSON: {"all":true}, {"tag":"schools"} or {"organisations":["a","b"]}' },
                scheduledAt: { type: "string", format: "date-time" },
                attachment: { type: "array", items: { type: "string", format: "binary" } },
              },
            },
          },
        },
      },
      responses: {
        "201": { description: "Stored: scheduled, to be checked and sent.", ...json("Circular") },
        "400": error("KUVERT_CIRCULAR_EMPTY, KUVERT_UNKNOWN_TAG, KUVERT_UNKNOWN_ORGANISATIONS, KUVERT_SCHEDULE_IN_PAST, KUVERT_INVALID_INPUT, KUVERT_EMPTY_FILE, KUVERT_INVALID_FILENAME."),
        "401": error("Missing, unknown or revoked token."),
        "403": error("The token lacks the scope, or circulars are switched off (KUVERT_MODULE_DISABLED)."),
        "409": error("An organisation in the list is archived."),
        "413": error("An attachment is larger than Kuvert scans."),
        "415": error("An attachment's type (judged by its content) is not accepted, or the body is neither JSON nor multipart."),
      },
    },
  },
  "/circulars/{id}": {
    parameters: [idParam],
    get: { summary: "A circular with its summary and the delivery per organisation", description: scope, responses: { "200": json("Circular"), "404": error("Unknown id.") } },
  },
  "/circulars/{id}/cancel": {
    parameters: [idParam],
    post: {
      summary: "Cancel a circular that has not started sending",
      description: scope,
      responses: { "200": { description: "Cancelled (or already was).", ...json("Circular") }, "404": error("Unknown id."), "409": error("KUVERT_CIRCULAR_STATE: it is sending or sent.") },
    },
  },
  "/circulars/{id}/corrections": {
    parameters: [idParam],
    post: {
      summary: "Correct a sent circular: an edit (m.replace) of the original in exactly the rooms that got it",
      description: scope,
      requestBody: { required: true, ...json("CorrectionInput") },
      responses: {
        "201": { description: "The correction is on its way.", content: { "application/json": { schema: { type: "object", properties: { revision: { type: "integer" }, rooms: { type: "integer" }, circular: ref("Circular") } } } } },
        "400": error("KUVERT_CIRCULAR_EMPTY or invalid input."),
        "404": error("Unknown id."),
        "409": error("KUVERT_CIRCULAR_STATE: not sent (yet)."),
      },
    },
  },
};
