// The error codes of accounts, each with its one HTTP status (see defineErrorCodes in ../errors.ts).
import { defineErrorCodes } from "../errors.ts";

export const AccountErr = defineErrorCodes({
  UsernameTaken: ["KUVERT_USERNAME_TAKEN", 409],
  UsernameInvalid: ["KUVERT_USERNAME_INVALID", 400],
  HomeserverAdmin: ["KUVERT_HOMESERVER_ADMIN_UNAVAILABLE", 503],
  HomeserverFailed: ["KUVERT_HOMESERVER_FAILED", 502],
  AccountNotReady: ["KUVERT_ACCOUNT_NOT_READY", 409],
  LetterAlreadyIssued: ["KUVERT_LETTER_ALREADY_ISSUED", 409],
  ConfirmationRequired: ["KUVERT_CONFIRMATION_REQUIRED", 409],
});

declare module "../errors.ts" {
  interface ModuleErrorCodes {
    accounts: (typeof AccountErr)[keyof typeof AccountErr];
  }
}
