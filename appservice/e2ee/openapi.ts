// The encryption part of the OpenAPI document (merged in by http/openapi.ts).
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: unknown) => ({ content: { "application/json": { schema } } });
const error = (description: string) => ({ description, ...json(ref("Error")) });
const adminAuth = { "401": error("Missing, unknown or revoked token."), "403": error("The token lacks the admin scope.") };

const verification = {
  type: "object",
  properties: {
    flowId: { type: "string" },
    userId: { type: "string", description: "Who started it in Element." },
    deviceId: { type: ["string", "null"] },
    state: { type: "string", enum: ["requested", "comparing", "verified", "cancelled"] },
    emoji: { type: ["array", "null"], items: { type: "object", properties: { symbol: { type: "string" }, description: { type: "string" } } }, description: "The seven emoji both sides show, once there (state comparing)." },
    reason: { type: ["string", "null"], description: "Why it was cancelled." },
    decision: { type: ["string", "null"], enum: ["match", "mismatch", null] },
    decidedBy: { type: ["string", "null"] },
    createdAt: { type: "string", format: "date-time" },
    updatedAt: { type: "string", format: "date-time" },
  },
};

export const e2eeSchemas = {
  Verification: verification,
  EncryptionStatus: {
    type: "object",
    properties: {
      deviceId: { type: "string", description: "The bot's device ID (e2ee.deviceId)." },
      userId: { type: "string" },
      ready: { type: "boolean", description: "A Kuvert process has the device open." },
      detail: { type: "string" },
      ed25519: { type: ["string", "null"], description: "The device's Ed25519 key as the homeserver publishes it: its fingerprint, which Element shows as the session key. Null before the device published its keys." },
      crossSigned: { type: "boolean", description: "The bot has cross-signing keys on the homeserver (its device signed by its self-signing key)." },
      newRoomsEncrypted: { type: "boolean", description: "organisations.encryption" },
    },
  },
  RoomEncryption: {
    type: "object",
    properties: {
      organisation: { type: "string" },
      roomId: { type: ["string", "null"] },
      encrypted: { type: "boolean", description: "The room is end-to-end encrypted." },
      available: { type: "boolean", description: "This Kuvert can encrypt (e2ee.secret is set)." },
      switchedNow: { type: "boolean", description: "POST only: switched by this request." },
    },
  },
};

export const e2eePaths = {
  "/encryption/verifications": {
    get: {
      summary: "Verifications of the bot's device that staff started in Element",
      description: "Staff verify the bot in Element (its profile → Sessions → KUVERT → Verify, emoji). Kuvert accepts requests from staff only and shows the emoji here; an admin compares them with Element's and decides.",
      tags: ["encryption"],
      security: [{ bearer: [] }],
      responses: { "200": { description: "Those of the last day, newest first.", ...json({ type: "object", properties: { verifications: { type: "array", items: ref("Verification") } } }) }, ...adminAuth },
    },
  },
  "/encryption/verifications/{flowId}": {
    post: {
      summary: "Say whether a verification's emoji match Element's",
      tags: ["encryption"],
      security: [{ bearer: [] }],
      parameters: [{ name: "flowId", in: "path", required: true, schema: { type: "string" } }],
      requestBody: { required: true, ...json({ type: "object", required: ["match"], properties: { match: { type: "boolean", description: "true: the same emoji (the bot confirms); false: they differ (it cancels)." } } }) },
      responses: {
        "200": { description: "Decided; the bot's device carries it out.", ...json(ref("Verification")) },
        ...adminAuth,
        "404": error("No such verification (KUVERT_NOT_FOUND)."),
        "409": error("Nothing to compare now: not yet, or decided, verified or cancelled (KUVERT_VERIFICATION_NOT_COMPARING)."),
      },
    },
  },
  "/encryption": {
    get: {
      summary: "The bot's device for end-to-end encrypted rooms",
      tags: ["encryption"],
      security: [{ bearer: [] }],
      responses: { "200": { description: "Its state.", ...json(ref("EncryptionStatus")) }, ...adminAuth },
    },
  },
  "/organisations/{id}/encryption": {
    get: {
      summary: "Whether an organisation's room is end-to-end encrypted",
      tags: ["encryption"],
      security: [{ bearer: [] }],
      parameters: [{ name: "id", in: "path", required: true, schema: { type: "string" }, description: "The organisation's slug id." }],
      responses: { "200": { description: "Its state.", ...json(ref("RoomEncryption")) }, ...adminAuth, "404": error("No such organisation (KUVERT_NOT_FOUND).") },
    },
    post: {
      summary: "Switch an organisation's room to end-to-end encryption (one way)",
      description: "Sends m.room.encryption (m.megolm.v1.aes-sha2) into the room and tells the room. From then on everything Kuvert sends there is encrypted, and clerks' encrypted events are decrypted and scanned. A room cannot be unencrypted again.",
      tags: ["encryption"],
      security: [{ bearer: [] }],
      parameters: [{ name: "id", in: "path", required: true, schema: { type: "string" }, description: "The organisation's slug id." }],
      responses: {
        "201": { description: "Switched now.", ...json(ref("RoomEncryption")) },
        "200": { description: "It was encrypted already.", ...json(ref("RoomEncryption")) },
        ...adminAuth,
        "404": error("No such organisation (KUVERT_NOT_FOUND), or encryption is off in this Kuvert: no e2ee.secret (KUVERT_MODULE_NOT_LOADED)."),
        "409": error("The room is still being made (KUVERT_NO_ROOM_YET)."),
      },
    },
  },
};
