// Errors that reach people: a stable code for programs, a sentence for humans.
import type { z } from "zod";

export const ErrCode = {
  BadJson: "KUVERT_BAD_JSON",
  InvalidInput: "KUVERT_INVALID_INPUT",
  UnknownField: "KUVERT_UNKNOWN_FIELD",
  NotFound: "KUVERT_NOT_FOUND",
  Archived: "KUVERT_ORGANISATION_ARCHIVED",
  Unauthorized: "KUVERT_UNAUTHORIZED",
  Forbidden: "KUVERT_FORBIDDEN",
  UnsupportedMediaType: "KUVERT_UNSUPPORTED_MEDIA_TYPE",
  TooLarge: "KUVERT_TOO_LARGE",
  Infected: "KUVERT_INFECTED",
  Unscannable: "KUVERT_UNSCANNABLE",
  EmptyFile: "KUVERT_EMPTY_FILE",
  InvalidFilename: "KUVERT_INVALID_FILENAME",
  TypeNotAllowed: "KUVERT_TYPE_NOT_ALLOWED",
  IdempotencyMismatch: "KUVERT_IDEMPOTENCY_KEY_REUSED",
  OutOfScope: "KUVERT_ORGANISATION_OUT_OF_SCOPE",
  RateLimited: "KUVERT_RATE_LIMITED",
  Unavailable: "KUVERT_UNAVAILABLE",
  ModuleDisabled: "KUVERT_MODULE_DISABLED",
  ModuleNotLoaded: "KUVERT_MODULE_NOT_LOADED",
  ModuleRequired: "KUVERT_MODULE_REQUIRED",
  SessionExpired: "KUVERT_SESSION_EXPIRED",
  ConsoleHeaderMissing: "KUVERT_CONSOLE_HEADER_MISSING",
  NotStaff: "KUVERT_NOT_STAFF",
  SignInFailed: "KUVERT_SIGN_IN_FAILED",
  CircularEmpty: "KUVERT_CIRCULAR_EMPTY",
  UnknownTag: "KUVERT_UNKNOWN_TAG",
  UnknownOrganisations: "KUVERT_UNKNOWN_ORGANISATIONS",
  ScheduleInPast: "KUVERT_SCHEDULE_IN_PAST",
  CircularState: "KUVERT_CIRCULAR_STATE",
  Internal: "KUVERT_INTERNAL",
  NoCall: "KUVERT_NO_CALL",
  PowerLevelMissing: "KUVERT_POWER_LEVEL_MISSING",
  CallEnded: "KUVERT_CALL_ENDED",
  CallNotRunning: "KUVERT_CALL_NOT_RUNNING",
  RoomNotReady: "KUVERT_ROOM_NOT_READY",
  NotConfigured: "KUVERT_NOT_CONFIGURED",
  GuestLinkInvalid: "KUVERT_GUEST_LINK_INVALID",
  GuestLinkExpired: "KUVERT_GUEST_LINK_EXPIRED",
  GuestLinkRevoked: "KUVERT_GUEST_LINK_REVOKED",
  OpenIdTokenInvalid: "KUVERT_OPENID_TOKEN_INVALID",
  OpenIdTokenUsed: "KUVERT_OPENID_TOKEN_USED",
  OpenIdTokenPurpose: "KUVERT_OPENID_TOKEN_WRONG_PURPOSE",
  NotRoomMember: "KUVERT_NOT_ROOM_MEMBER",
  RoomNotManaged: "KUVERT_ROOM_NOT_MANAGED",
  UsernameTaken: "KUVERT_USERNAME_TAKEN",
  UsernameInvalid: "KUVERT_USERNAME_INVALID",
  HomeserverAdmin: "KUVERT_HOMESERVER_ADMIN_UNAVAILABLE",
  HomeserverFailed: "KUVERT_HOMESERVER_FAILED",
  AccountNotReady: "KUVERT_ACCOUNT_NOT_READY",
  LetterAlreadyIssued: "KUVERT_LETTER_ALREADY_ISSUED",
  ConfirmationRequired: "KUVERT_CONFIRMATION_REQUIRED",
  BodyIncomplete: "KUVERT_BODY_INCOMPLETE",
  TypeMismatch: "KUVERT_TYPE_MISMATCH",
  ActiveContent: "KUVERT_ACTIVE_CONTENT",
  AlreadyReplaced: "KUVERT_DOCUMENT_ALREADY_REPLACED",
  NotDelivered: "KUVERT_DOCUMENT_NOT_DELIVERED",
  OtherOrganisation: "KUVERT_DOCUMENT_OF_ANOTHER_ORGANISATION",
  ReferenceAmbiguous: "KUVERT_REFERENCE_AMBIGUOUS",
  FormatVersion: "KUVERT_FORMAT_VERSION_UNKNOWN",
  SchemaTooNew: "KUVERT_SCHEMA_TOO_NEW",
  SubjectStillActive: "KUVERT_SUBJECT_STILL_ACTIVE",
  TokenNameTaken: "KUVERT_TOKEN_NAME_TAKEN",
  UploadCheckOff: "KUVERT_UPLOAD_CHECK_OFF",
} as const;
export type ErrCode = (typeof ErrCode)[keyof typeof ErrCode];

/**
 * The one HTTP status of each code: a throw site names the code, never the status, so a code
 * cannot answer with two statuses. A situation that needs another status needs another code.
 * Codes reported only inside an answer (a scan verdict, a Jitsi verification result, a rejected
 * document's record) carry the status they would have as a refusal of their own.
 */
export const errorStatus = {
  [ErrCode.BadJson]: 400,
  [ErrCode.InvalidInput]: 400,
  [ErrCode.UnknownField]: 400,
  [ErrCode.NotFound]: 404,
  [ErrCode.Archived]: 409,
  [ErrCode.Unauthorized]: 401,
  [ErrCode.Forbidden]: 403,
  [ErrCode.UnsupportedMediaType]: 415,
  [ErrCode.TooLarge]: 413,
  [ErrCode.Infected]: 403,
  [ErrCode.Unscannable]: 422,
  [ErrCode.EmptyFile]: 400,
  [ErrCode.InvalidFilename]: 400,
  [ErrCode.TypeNotAllowed]: 415,
  [ErrCode.IdempotencyMismatch]: 422,
  [ErrCode.OutOfScope]: 403,
  [ErrCode.RateLimited]: 429,
  [ErrCode.Unavailable]: 503,
  // A switched-off module refuses what is asked of it (403); one whose endpoints are not there at all
  // answers as an unknown endpoint would (404); a request that needs one conflicts with the configuration (409).
  [ErrCode.ModuleDisabled]: 403,
  [ErrCode.ModuleNotLoaded]: 404,
  [ErrCode.ModuleRequired]: 409,
  [ErrCode.SessionExpired]: 401,
  [ErrCode.ConsoleHeaderMissing]: 403,
  [ErrCode.NotStaff]: 403,
  [ErrCode.SignInFailed]: 401,
  [ErrCode.CircularEmpty]: 400,
  [ErrCode.UnknownTag]: 400,
  [ErrCode.UnknownOrganisations]: 400,
  [ErrCode.ScheduleInPast]: 400,
  [ErrCode.CircularState]: 409,
  [ErrCode.Internal]: 500,
  [ErrCode.NoCall]: 404,
  [ErrCode.PowerLevelMissing]: 403,
  // Gone for the guest who holds a link; a conflict for staff who ask for a new link.
  [ErrCode.CallEnded]: 410,
  [ErrCode.CallNotRunning]: 409,
  [ErrCode.RoomNotReady]: 409,
  [ErrCode.NotConfigured]: 503,
  [ErrCode.GuestLinkInvalid]: 401,
  [ErrCode.GuestLinkExpired]: 410,
  [ErrCode.GuestLinkRevoked]: 410,
  [ErrCode.OpenIdTokenInvalid]: 401,
  [ErrCode.OpenIdTokenUsed]: 401,
  [ErrCode.OpenIdTokenPurpose]: 401,
  [ErrCode.NotRoomMember]: 403,
  [ErrCode.RoomNotManaged]: 403,
  [ErrCode.UsernameTaken]: 409,
  [ErrCode.UsernameInvalid]: 400,
  [ErrCode.HomeserverAdmin]: 503,
  [ErrCode.HomeserverFailed]: 502,
  [ErrCode.AccountNotReady]: 409,
  [ErrCode.LetterAlreadyIssued]: 409,
  [ErrCode.ConfirmationRequired]: 409,
  [ErrCode.BodyIncomplete]: 400,
  [ErrCode.TypeMismatch]: 415,
  [ErrCode.ActiveContent]: 415,
  [ErrCode.AlreadyReplaced]: 409,
  [ErrCode.NotDelivered]: 409,
  [ErrCode.OtherOrganisation]: 409,
  [ErrCode.ReferenceAmbiguous]: 409,
  [ErrCode.FormatVersion]: 400,
  [ErrCode.SchemaTooNew]: 500,
  [ErrCode.SubjectStillActive]: 409,
  [ErrCode.TokenNameTaken]: 409,
  // The upload check's endpoint is not there until appservice.uploadCheckToken switches it on.
  [ErrCode.UploadCheckOff]: 404,
} as const satisfies Record<ErrCode, number>;

export interface ErrorDetail {
  path: string;
  message: string;
}

export class KuvertError extends Error {
  readonly errcode: ErrCode;
  /** The HTTP status of the code, from `errorStatus`. */
  readonly status: number;
  readonly details: ErrorDetail[] | undefined;
  constructor(errcode: ErrCode, message: string, details?: ErrorDetail[]) {
    super(message);
    this.name = "KuvertError";
    this.errcode = errcode;
    this.status = errorStatus[errcode];
    this.details = details;
  }

  toJSON(): Record<string, unknown> {
    return { errcode: this.errcode, error: this.message, ...(this.details ? { details: this.details } : {}) };
  }
}

/** What a schema issue expected, as a phrase: "a number", "one of de, en", "a URL". */
export function expectation(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case "invalid_type":
      return issue.expected === "array" ? "a list" : issue.expected === "object" ? "a mapping" : `a ${issue.expected}`;
    case "invalid_value":
      return `one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`;
    case "invalid_format":
      return issue.format === "url" ? "a URL like https://example.org" : issue.message.startsWith("Invalid") ? `a valid ${issue.format}` : issue.message;
    case "too_small":
      return issue.origin === "string" ? `at least ${issue.minimum} character(s)` : issue.origin === "array" ? `at least ${issue.minimum} entr(y/ies)` : `at least ${issue.minimum}`;
    case "too_big":
      return issue.origin === "string" ? `at most ${issue.maximum} characters` : issue.origin === "array" ? `at most ${issue.maximum} entries` : `at most ${issue.maximum}`;
    default:
      return issue.message;
  }
}

/** Turns schema issues into a KuvertError that names every offending field. */
export function inputError(issues: z.core.$ZodIssue[], prefix = ""): KuvertError {
  const details: ErrorDetail[] = issues.flatMap((issue) => {
    const base = [prefix, ...issue.path.map(String)].filter(Boolean).join(".");
    if (issue.code === "unrecognized_keys") return issue.keys.map((k) => ({ path: base ? `${base}.${k}` : k, message: "unknown field" }));
    const missing = issue.code === "invalid_type" && issue.message.includes("received undefined");
    return [{ path: base || "(body)", message: missing ? `missing, expected ${expectation(issue)}` : `expected ${expectation(issue)}` }];
  });
  const unknownOnly = issues.every((i) => i.code === "unrecognized_keys");
  const summary = details.map((d) => `${d.path}: ${d.message}`).join("; ");
  return new KuvertError(unknownOnly ? ErrCode.UnknownField : ErrCode.InvalidInput, summary, details);
}

export function parseInput<T>(schema: z.ZodType<T>, value: unknown, prefix = ""): T {
  const result = schema.safeParse(value);
  if (!result.success) throw inputError(result.error.issues, prefix);
  return result.data;
}
