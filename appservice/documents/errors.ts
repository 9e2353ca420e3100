// The error codes of documents, each with its one HTTP status (see defineErrorCodes in ../errors.ts).
import { defineErrorCodes } from "../errors.ts";

export const DocumentErr = defineErrorCodes({
  AlreadyReplaced: ["KUVERT_DOCUMENT_ALREADY_REPLACED", 409],
  NotDelivered: ["KUVERT_DOCUMENT_NOT_DELIVERED", 409],
  OtherOrganisation: ["KUVERT_DOCUMENT_OF_ANOTHER_ORGANISATION", 409],
  ReferenceAmbiguous: ["KUVERT_REFERENCE_AMBIGUOUS", 409],
  FormatVersion: ["KUVERT_FORMAT_VERSION_UNKNOWN", 400],
  // The upload check's endpoint is not there until appservice.uploadCheckToken switches it on.
  UploadCheckOff: ["KUVERT_UPLOAD_CHECK_OFF", 404],
});

declare module "../errors.ts" {
  interface ModuleErrorCodes {
    documents: (typeof DocumentErr)[keyof typeof DocumentErr];
  }
}
