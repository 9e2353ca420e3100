// The calls part of the OpenAPI document (merged in by http/openapi.ts).
import { z } from "zod";
import { memberSessionInput } from "./member-link.ts";
import { guestLinkInput } from "./service.ts";

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: unknown) => ({ content: { "application/json": { schema } } });
const error = (description: string) => ({ description, ...json(ref("Error")) });
const staffAuth = { "401": error("Missing, unknown or revoked token."), "403": error("The token has neither the staff nor the admin scope.") };
const orgParam = { name: "id", in: "path", required: true, schema: { type: "string" }, description: "The organisation's slug id." };
const callParam = { name: "callId", in: "path", required: true, schema: { type: "string", format: "uuid" } };

export const callSchemas = {
  Call: {
    type: "object",
    properties: {
      id: { type: "string", format: "uuid" },
      organisationId: { type: "string" },
      roomId: { type: "string" },
      widgetId: { type: "string", description: "State key of the im.vector.modular.widgets event." },
      conferenceId: { type: "string", description: "The Jitsi conference: base32 of the room id with auth openidtoken-jwt, else random." },
      auth: { type: ["string", "null"], enum: ["openidtoken-jwt", null] },
      startedBy: { type: "string" },
      startedAt: { type: "string", format: "date-time" },
      expiresAt: { type: "string", format: "date-time" },
      running: { type: "boolean" },
      widgetPosted: { type: "boolean", description: "The widget is in the room (false while Kuvert still tries to post it, and after removal)." },
      endedAt: { type: ["string", "null"], format: "date-time" },
      endedBy: { type: ["string", "null"] },
      endReason: { type: ["string", "null"], enum: ["ended", "expired", null] },
    },
  },
  GuestSession: {
    type: "object",
    description: "Where and with which token a guest or member joins the conference.",
    properties: {
      domain: { type: "string" },
      scriptUrl: { type: "string", description: "The Jitsi deployment's external_api.js." },
      roomName: { type: "string" },
      jwt: { type: "string" },
      displayName: { type: "string" },
      organisationName: { type: "string" },
      expiresAt: { type: "string", format: "date-time" },
    },
  },
  GuestLinkInput: z.toJSONSchema(guestLinkInput, { io: "input", unrepresentable: "any" }),
  GuestLink: {
    type: "object",
    properties: {
      id: { type: "string", format: "uuid" },
      callId: { type: "string", format: "uuid" },
      name: { type: "string" },
      email: { type: "string" },
      createdBy: { type: "string" },
      createdAt: { type: "string", format: "date-time" },
      expiresAt: { type: "string", format: "date-time" },
      revokedAt: { type: ["string", "null"], format: "date-time" },
      revokedBy: { type: ["string", "null"] },
      state: { type: "string", enum: ["valid", "expired", "revoked"] },
    },
  },
};

export function callPaths(baseUrl: string): Record<string, unknown> {
  const root = [{ url: baseUrl.replace(/\/$/, "") }];
  const staff = [{ bearer: [] }];
  const verifyBody = (roomId: boolean) => ({
    required: true,
    ...json({
      type: "object",
      required: roomId ? ["token", "room_id"] : ["token"],
      properties: {
        token: { type: "string", description: "A Matrix OpenID access token (CS API POST /user/{userId}/openid/request_token)." },
        ...(roomId ? { room_id: { type: "string" } } : {}),
        matrix_server_name: { type: "string", description: "Accepted and ignored: Kuvert asks its own homeserver." },
      },
    }),
  });
  return {
    "/organisations/{id}/call": {
      parameters: [orgParam],
      post: {
        summary: "Start a call in the organisation's room (Element's Jitsi widget), or get the running one",
        security: staff,
        responses: {
          "201": { description: "Started.", ...json({ type: "object", properties: { reused: { const: false }, call: ref("Call") } }) },
          "200": { description: "A call was already running: reused.", ...json({ type: "object", properties: { reused: { const: true }, call: ref("Call") } }) },
          "403": error("The token lacks the scope, or Kuvert's bot lacks the power level for the widget (KUVERT_POWER_LEVEL_MISSING)."),
          "404": error("Unknown organisation, or calls switched off (KUVERT_MODULE_NOT_LOADED)."),
          "409": error("Archived (KUVERT_ORGANISATION_ARCHIVED) or the room is not ready (KUVERT_ROOM_NOT_READY)."),
          "401": staffAuth["401"],
        },
      },
      get: { summary: "The running call", security: staff, responses: { "200": json(ref("Call")), "404": error("No call runs (KUVERT_NO_CALL) or unknown organisation."), ...staffAuth } },
      delete: { summary: "End the running call: its widget is removed", security: staff, responses: { "200": json(ref("Call")), "404": error("No call runs (KUVERT_NO_CALL)."), ...staffAuth } },
    },
    "/calls": {
      get: {
        summary: "Calls, newest first",
        security: staff,
        parameters: [
          { name: "state", in: "query", schema: { type: "string", enum: ["running", "ended"] } },
          { name: "organisation", in: "query", schema: { type: "string" } },
          { name: "limit", in: "query", schema: { type: "integer", minimum: 1, maximum: 1000, default: 100 } },
        ],
        responses: { "200": json({ type: "object", properties: { calls: { type: "array", items: ref("Call") } } }), "400": error("Bad query."), ...staffAuth },
      },
    },
    "/calls/{callId}/guest-links": {
      parameters: [callParam],
      post: {
        summary: "Issue a guest link (a signed Jitsi JWT) and e-mail it to the guest",
        security: staff,
        requestBody: { required: true, ...json(ref("GuestLinkInput")) },
        responses: {
          "201": { description: "Issued; the e-mail is on its way (outbox).", ...json({ type: "object", properties: { id: { type: "string" }, url: { type: "string" }, expiresAt: { type: "string", format: "date-time" } } }) },
          "400": error("Invalid input."),
          "404": error("Unknown call."),
          "409": error("The call has ended (KUVERT_CALL_NOT_RUNNING)."),
          "503": error("No secret for guest tokens is configured (KUVERT_NOT_CONFIGURED)."),
          ...staffAuth,
        },
      },
      get: { summary: "The call's guest links", security: staff, responses: { "200": json({ type: "object", properties: { guestLinks: { type: "array", items: ref("GuestLink") } } }), "404": error("Unknown call."), ...staffAuth } },
    },
    "/guest-links/{linkId}": {
      parameters: [{ name: "linkId", in: "path", required: true, schema: { type: "string", format: "uuid" } }],
      delete: {
        summary: "Revoke a guest link: the guest page refuses it from now on",
        security: staff,
        responses: { "200": json({ type: "object", properties: { outcome: { type: "string", enum: ["revoked", "unchanged"] }, link: ref("GuestLink") } }), "404": error("Unknown link."), ...staffAuth },
      },
    },
    "/guest/session": {
      post: {
        summary: "The guest page's question: is this guest link good, and where does it join?",
        security: [],
        requestBody: { required: true, ...json({ type: "object", required: ["token"], properties: { token: { type: "string" } } }) },
        responses: {
          "200": json(ref("GuestSession")),
          "401": error("Not a valid guest link (KUVERT_GUEST_LINK_INVALID)."),
          "410": error("Expired (KUVERT_GUEST_LINK_EXPIRED), revoked (KUVERT_GUEST_LINK_REVOKED), or the call ended (KUVERT_CALL_ENDED)."),
        },
      },
    },
    "/member-link/session": {
      post: {
        summary: "The members' call page (Element X, a browser): a room member proves membership with an OpenID token made for this page, and gets join details",
        security: [],
        requestBody: { required: true, ...json(z.toJSONSchema(memberSessionInput, { io: "input", unrepresentable: "any" })) },
        responses: {
          "200": json(ref("GuestSession")),
          "401": error("Not an OpenID token of this homeserver, used already (KUVERT_OPENID_TOKEN_USED) or made for something else (KUVERT_OPENID_TOKEN_WRONG_PURPOSE)."),
          "403": error("Not joined to the organisation's room (KUVERT_NOT_ROOM_MEMBER), or the room is no longer an active organisation's."),
          "404": error("Unknown call, or the members' link is not offered here (KUVERT_MODULE_DISABLED)."),
          "410": error("The call ended (KUVERT_CALL_ENDED)."),
          "429": error("Too many failed attempts from this address."),
        },
      },
    },
    "/verify/user": {
      servers: root,
      post: {
        summary: "matrix-user-verification-service API: is this OpenID token a user of the homeserver?",
        security: [],
        requestBody: verifyBody(false),
        responses: {
          "200": json({ type: "object", properties: { results: { type: "object", properties: { user: { type: "boolean" } } }, user_id: { type: ["string", "null"] }, errcode: { type: "string" } } }),
          "400": error("A field is missing."),
          "403": error("calls.verifyToken is set and the bearer token is missing or wrong."),
        },
      },
    },
    "/verify/user_in_room": {
      servers: root,
      post: {
        summary: "matrix-user-verification-service API: is this token's user a joined member of this (managed) room?",
        security: [],
        requestBody: verifyBody(true),
        responses: {
          "200": json({
            type: "object",
            properties: {
              results: { type: "object", properties: { user: { type: "boolean" }, room_membership: { type: ["boolean", "null"] } } },
              user_id: { type: ["string", "null"] },
              power_levels: { type: ["object", "null"], properties: { room: { type: "object" }, user: { type: "integer" } } },
              errcode: { type: "string", description: "Only on refusals: KUVERT_OPENID_TOKEN_INVALID, KUVERT_NOT_ROOM_MEMBER, KUVERT_ROOM_NOT_MANAGED." },
            },
          }),
          "400": error("A field is missing."),
          "403": error("calls.verifyToken is set and the bearer token is missing or wrong."),
        },
      },
    },
  };
}
