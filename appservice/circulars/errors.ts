// The error codes of circulars, each with its one HTTP status (see defineErrorCodes in ../errors.ts).
import { defineErrorCodes } from "../errors.ts";

export const CircularErr = defineErrorCodes({
  Empty: ["KUVERT_CIRCULAR_EMPTY", 400],
  UnknownTag: ["KUVERT_UNKNOWN_TAG", 400],
  UnknownOrganisations: ["KUVERT_UNKNOWN_ORGANISATIONS", 400],
  ScheduleInPast: ["KUVERT_SCHEDULE_IN_PAST", 400],
  State: ["KUVERT_CIRCULAR_STATE", 409],
});

declare module "../errors.ts" {
  interface ModuleErrorCodes {
    circulars: (typeof CircularErr)[keyof typeof CircularErr];
  }
}
