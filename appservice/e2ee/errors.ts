// The error codes of end-to-end encryption, each with its one HTTP status (see defineErrorCodes in ../errors.ts).
import { defineErrorCodes } from "../errors.ts";

export const E2eeErr = defineErrorCodes({
  // The organisation has no room yet (it is being made): encryption can be switched on once it is there.
  NoRoomYet: ["KUVERT_NO_ROOM_YET", 409],
  // A decision on a verification whose emoji are not (or no longer) there to compare.
  VerificationNotComparing: ["KUVERT_VERIFICATION_NOT_COMPARING", 409],
});

declare module "../errors.ts" {
  interface ModuleErrorCodes {
    e2ee: (typeof E2eeErr)[keyof typeof E2eeErr];
  }
}
