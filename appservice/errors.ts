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
  TypeMismatch: "KUVERT_TYPE_MISMATCH",
  ActiveContent: "KUVERT_ACTIVE_CONTENT",
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
  Internal: "KUVERT_INTERNAL",
  OpenIdTokenInvalid: "KUVERT_OPENID_TOKEN_INVALID",
  OpenIdTokenUsed: "KUVERT_OPENID_TOKEN_USED",
  OpenIdTokenPurpose: "KUVERT_OPENID_TOKEN_WRONG_PURPOSE",
  BodyIncomplete: "KUVERT_BODY_INCOMPLETE",
  SchemaTooNew: "KUVERT_SCHEMA_TOO_NEW",
  SubjectStillActive: "KUVERT_SUBJECT_STILL_ACTIVE",
  TokenNameTaken: "KUVERT_TOKEN_NAME_TAKEN",
} as const;

/**
 * The codes of the modules, one entry per module, added by the module's own errors.ts:
 * `export const CallErr = defineErrorCodes({ NoCall: ["KUVERT_NO_CALL", 404] })` and
 * `declare module "../errors.ts" { interface ModuleErrorCodes { calls: (typeof CallErr)[keyof typeof CallErr] } }`.
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- filled in by each module's errors.ts
export interface ModuleErrorCodes {}

/** Every error code: the core's (ErrCode above) and the modules'. */
export type ErrCode = (typeof ErrCode)[keyof typeof ErrCode] | ModuleErrorCodes[keyof ModuleErrorCodes];

/**
 * The one HTTP status of each code: a throw site names the code, never the status, so a code
 * cannot answer with two statuses. A situation that needs another status needs another code.
 * Codes reported only inside an answer (a scan verdict, a Jitsi verification result, a rejected
 * document's record) carry the status they would have as a refusal of their own.
 */
const coreStatus = {
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
  // A file whose content is not accepted: documents and circular attachments alike.
  [ErrCode.TypeNotAllowed]: 415,
  [ErrCode.TypeMismatch]: 415,
  [ErrCode.ActiveContent]: 415,
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
  [ErrCode.Internal]: 500,
  [ErrCode.OpenIdTokenInvalid]: 401,
  [ErrCode.OpenIdTokenUsed]: 401,
  [ErrCode.OpenIdTokenPurpose]: 401,
  [ErrCode.BodyIncomplete]: 400,
  [ErrCode.SchemaTooNew]: 500,
  [ErrCode.SubjectStillActive]: 409,
  [ErrCode.TokenNameTaken]: 409,
} as const satisfies Record<(typeof ErrCode)[keyof typeof ErrCode], number>;

const statuses = new Map<string, number>(Object.entries(coreStatus));

/**
 * A module's error codes with their one status each: answers its names for the codes. A code
 * defined twice (by the core or another module) is an error when Kuvert loads.
 */
export function defineErrorCodes<const T extends Record<string, readonly [code: `KUVERT_${string}`, status: number]>>(codes: T): { readonly [K in keyof T]: T[K][0] } {
  const entries = Object.entries(codes);
  for (const [, [code, status]] of entries) {
    if (statuses.has(code) || entries.filter(([, [other]]) => other === code).length > 1) throw new Error(`error code ${code} is defined twice`);
    if (!Number.isInteger(status) || status < 400 || status > 599) throw new Error(`error code ${code}: ${status} is not an HTTP error status`);
  }
  for (const [, [code, status]] of entries) statuses.set(code, status);
  return Object.fromEntries(entries.map(([name, [code]]) => [name, code])) as { readonly [K in keyof T]: T[K][0] };
}

/** The HTTP status of a code. */
export function errorStatus(code: ErrCode): number {
  const status = statuses.get(code);
  if (status === undefined) throw new Error(`error code ${code} has no status: its module's errors.ts was not loaded`);
  return status;
}

/** Every code known so far with its status: the core's, and those of the modules loaded. */
export function errorCodes(): ReadonlyMap<ErrCode, number> {
  return statuses as ReadonlyMap<ErrCode, number>;
}

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
    this.status = errorStatus(errcode);
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
