// The error codes of calls, each with its one HTTP status (see defineErrorCodes in ../errors.ts).
import { defineErrorCodes } from "../errors.ts";

export const CallErr = defineErrorCodes({
  NoCall: ["KUVERT_NO_CALL", 404],
  PowerLevelMissing: ["KUVERT_POWER_LEVEL_MISSING", 403],
  // Gone for the guest who holds a link; a conflict for staff who ask for a new link.
  CallEnded: ["KUVERT_CALL_ENDED", 410],
  CallNotRunning: ["KUVERT_CALL_NOT_RUNNING", 409],
  RoomNotReady: ["KUVERT_ROOM_NOT_READY", 409],
  NotConfigured: ["KUVERT_NOT_CONFIGURED", 503],
  GuestLinkInvalid: ["KUVERT_GUEST_LINK_INVALID", 401],
  GuestLinkExpired: ["KUVERT_GUEST_LINK_EXPIRED", 410],
  GuestLinkRevoked: ["KUVERT_GUEST_LINK_REVOKED", 410],
  NotRoomMember: ["KUVERT_NOT_ROOM_MEMBER", 403],
  RoomNotManaged: ["KUVERT_ROOM_NOT_MANAGED", 403],
});

declare module "../errors.ts" {
  interface ModuleErrorCodes {
    calls: (typeof CallErr)[keyof typeof CallErr];
  }
}
