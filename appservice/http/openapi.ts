// The admin API's OpenAPI 3.1 document. Request bodies come from the same schemas that
// validate them, so the document cannot promise what the code refuses.
import { z } from "zod";
import { ErrCode } from "../errors.ts";
import { apiVersion, version } from "../version.ts";
import { clerkInput, organisationInput, organisationPatch } from "../organisations/model.ts";
import { modules } from "../modules.ts";

const schema = (s: z.ZodType) => z.toJSONSchema(s, { io: "input", unrepresentable: "any" });

const error = {
  type: "object",
  required: ["errcode", "error"],
  properties: {
    errcode: { type: "string", enum: [...Object.values(ErrCode), ...modules.flatMap((m) => Object.values(m.errors ?? {}))] },
    error: { type: "string", description: "What went wrong, in a sentence." },
    details: { type: "array", items: { type: "object", properties: { path: { type: "string" }, message: { type: "string" } } } },
  },
};

const errors = {
  "400": { description: "Invalid input; nothing was changed.", content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } } },
  "401": { description: "Missing, unknown or revoked token.", content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } } },
  "403": { description: "The token lacks the admin scope.", content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } } },
};

const organisationResult = {
  type: "object",
  properties: { outcome: { type: "string", enum: ["created", "updated", "unchanged"] }, organisation: { $ref: "#/components/schemas/Organisation" } },
};

const idParam = { name: "id", in: "path", required: true, schema: { type: "string" }, description: "The organisation's slug id." };

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

/** Merges a module's paths into the document's: a module may add operations, parameters and responses to a path the core or a module before it documents (lists are joined). */
function mergePaths(into: Json, from: Json): Json {
  for (const [key, value] of Object.entries(from)) {
    const have = into[key];
    if (isObject(have) && isObject(value)) into[key] = mergePaths({ ...have }, value);
    else if (Array.isArray(have) && Array.isArray(value)) into[key] = [...(have as unknown[]), ...(value as unknown[])];
    else into[key] = value;
  }
  return into;
}

export function openApiDocument(baseUrl: string): Record<string, unknown> {
  const parts = modules.map((m) => m.openApi ?? {});
  const tools = { baseUrl, schema, errors };
  const json = (ref: string) => ({ content: { "application/json": { schema: { $ref: `#/components/schemas/${ref}` } } } });
  return {
    openapi: "3.1.0",
    // info.version: the API version (README "API versions"); x-kuvert-version: the program that answered.
    info: { title: "Kuvert admin API", version: apiVersion, "x-kuvert-version": version },
    servers: [{ url: `${baseUrl.replace(/\/$/, "")}/api/v1` }],
    security: [{ bearer: [] }],
    components: {
      securitySchemes: {
        bearer: { type: "http", scheme: "bearer", description: "An API token with the admin scope (`kuvert token create NAME --scope admin`)." },
        ...Object.assign({}, ...parts.map((p) => p.securitySchemes ?? {})),
      },
      schemas: {
        Error: error,
        OrganisationInput: schema(organisationInput),
        OrganisationPatch: schema(organisationPatch),
        ClerkInput: schema(clerkInput),
        ...Object.assign({}, ...parts.map((p) => p.schemas?.(tools) ?? {})),
        Organisation: {
          type: "object",
          properties: {
            id: { type: "string" },
            name: { type: "string" },
            tags: { type: "array", items: { type: "string" } },
            state: { type: "string", enum: ["active", "archived"] },
            roomId: { type: ["string", "null"] },
            roomState: { type: "string", enum: ["pending", "ready", "lost"], description: "pending: the room is being made; lost: Kuvert can no longer act in it (see roomProblem)." },
            roomProblem: { type: ["string", "null"] },
            powerLevelsProblem: {
              type: ["string", "null"],
              description: "Set while the homeserver refuses Kuvert's power levels (e.g. a hand edit left another member at level 100); the room otherwise works.",
            },
            createdAt: { type: "string", format: "date-time" },
            updatedAt: { type: "string", format: "date-time" },
            archivedAt: { type: ["string", "null"], format: "date-time" },
            clerks: {
              type: "array",
              items: {
                type: "object",
                properties: {
                  matrixId: { type: ["string", "null"] },
                  email: { type: ["string", "null"] },
                  name: { type: ["string", "null"] },
                  status: { type: "string", enum: ["active", "removed"] },
                  membership: { type: ["string", "null"], enum: ["invite", "join", "leave", "ban", "knock", null] },
                },
              },
            },
          },
        },
      },
    },
    paths: parts.reduce<Json>((all, p) => mergePaths(all, (p.paths?.(tools) ?? {}) as Json), {
      "/organisations": {
        get: {
          summary: "List organisations",
          parameters: [
            { name: "tag", in: "query", schema: { type: "string" } },
            { name: "state", in: "query", schema: { type: "string", enum: ["active", "archived"] } },
            { name: "search", in: "query", schema: { type: "string" }, description: "Part of the id or name." },
            { name: "after", in: "query", schema: { type: "string" }, description: "Page on: the last id of the previous page." },
            { name: "limit", in: "query", schema: { type: "integer", minimum: 1, maximum: 5000, default: 1000 } },
          ],
          responses: { "200": { description: "Organisations by id.", content: { "application/json": { schema: { type: "object", properties: { organisations: { type: "array", items: { $ref: "#/components/schemas/Organisation" } } } } } } }, ...errors },
        },
        post: {
          summary: "Create an organisation, or bring an existing one to this state (idempotent)",
          description: "Clerks not listed are removed (kicked from the room). The room is made and people invited in the background; roomState tells the progress.",
          requestBody: { required: true, ...json("OrganisationInput") },
          responses: {
            "201": { description: "Created.", content: { "application/json": { schema: organisationResult } } },
            "200": { description: "Updated or unchanged.", content: { "application/json": { schema: organisationResult } } },
            "409": { description: "The organisation is archived.", ...json("Error") },
            ...errors,
          },
        },
      },
      "/organisations/import": {
        post: {
          summary: "Import organisations from CSV (columns id, name, tags, clerks)",
          parameters: [{ name: "dryRun", in: "query", schema: { type: "boolean" }, description: "Only check the rows; change nothing." }],
          requestBody: { required: true, content: { "text/csv": { schema: { type: "string" } } } },
          responses: {
            "200": {
              description:
                "A result per row: created, updated, unchanged or error (with errcode and reason). A bad row changes nothing; the others are applied. With dryRun, the outcome each row would have and its changes (name, tagsAdded, tagsRemoved, clerksAdded, clerksRemoved, clerksChanged), compared with what is stored.",
              content: { "application/json": { schema: { type: "object" } } },
            },
            ...errors,
          },
        },
      },
      "/organisations/{id}": {
        parameters: [idParam],
        get: { summary: "One organisation", responses: { "200": json("Organisation"), "404": { description: "Unknown id.", ...json("Error") }, ...errors } },
        patch: {
          summary: "Change name, tags or clerks (fields given replace the stored ones)",
          requestBody: { required: true, ...json("OrganisationPatch") },
          responses: { "200": { description: "Updated or unchanged.", content: { "application/json": { schema: organisationResult } } }, "404": { description: "Unknown id.", ...json("Error") }, "409": { description: "Archived.", ...json("Error") }, ...errors },
        },
      },
      "/organisations/{id}/archive": {
        parameters: [idParam],
        post: { summary: "Archive: the room becomes read-only and is kept", responses: { "200": { description: "Archived (or already was).", content: { "application/json": { schema: organisationResult } } }, ...errors } },
      },
      "/organisations/{id}/clerks": {
        parameters: [idParam],
        post: { summary: "Add a clerk (invited to the room)", requestBody: { required: true, ...json("ClerkInput") }, responses: { "201": { description: "Added.", content: { "application/json": { schema: organisationResult } } }, ...errors } },
      },
      "/organisations/{id}/clerks/{clerk}": {
        parameters: [idParam, { name: "clerk", in: "path", required: true, schema: { type: "string" }, description: "The clerk's Matrix ID or e-mail address." }],
        delete: {
          summary: "Remove a clerk (kicked from the room)",
          responses: { "200": { description: "Removed.", content: { "application/json": { schema: organisationResult } } }, "404": { description: "Not a clerk of this organisation.", ...json("Error") }, ...errors },
        },
      },
    }),
  };
}
