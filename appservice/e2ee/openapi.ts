// The encryption part of the OpenAPI document (merged in by http/openapi.ts).
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: unknown) => ({ content: { "application/json": { schema } } });
const error = (description: string) => ({ description, ...json(ref("Error")) });
const adminAuth = { "401": error("Missing, unknown or revoked token."), "403": error("The token lacks the admin scope.") };

export const e2eeSchemas = {
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
