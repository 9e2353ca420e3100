import type { JsonObject, JsonValue } from "./types.ts";

/** A Matrix error response: `{errcode, error}` plus any extra fields (CS API §"Standard error response"). */
export class MatrixError extends Error {
  readonly status: number;
  readonly errcode: string;
  readonly extra: JsonObject;

  constructor(status: number, errcode: string, message: string, extra: JsonObject = {}) {
    super(message);
    this.status = status;
    this.errcode = errcode;
    this.extra = extra;
  }

  body(): JsonObject {
    return { errcode: this.errcode, error: this.message, ...this.extra };
  }
}

/** A user-interactive auth challenge (CS API §"User-interactive authentication API"): 401 with the flows and session, no errcode. */
export class AuthChallenge extends MatrixError {
  constructor(extra: JsonObject) {
    super(401, "M_UNKNOWN", "", extra);
  }

  override body(): JsonObject {
    return this.extra;
  }
}

export const forbidden = (message: string, extra?: JsonObject): MatrixError => new MatrixError(403, "M_FORBIDDEN", message, extra);
export const notFound = (message = "Not found"): MatrixError => new MatrixError(404, "M_NOT_FOUND", message);
export const unknown = (status: number, message: string): MatrixError => new MatrixError(status, "M_UNKNOWN", message);
export const badJson = (message: string): MatrixError => new MatrixError(400, "M_BAD_JSON", message);
export const notJson = (message = "Content not JSON."): MatrixError => new MatrixError(400, "M_NOT_JSON", message);
export const invalidParam = (message: string): MatrixError => new MatrixError(400, "M_INVALID_PARAM", message);
export const missingParam = (message: string): MatrixError => new MatrixError(400, "M_MISSING_PARAM", message);
export const unrecognized = (status = 404): MatrixError => new MatrixError(status, "M_UNRECOGNIZED", "Unrecognized request");
export const missingToken = (message = "Missing access token."): MatrixError => new MatrixError(401, "M_MISSING_TOKEN", message);
export const unknownToken = (message = "Invalid access token passed."): MatrixError => new MatrixError(401, "M_UNKNOWN_TOKEN", message, { soft_logout: false });
export const exclusive = (message: string): MatrixError => new MatrixError(400, "M_EXCLUSIVE", message);
export const tooLarge = (message: string): MatrixError => new MatrixError(413, "M_TOO_LARGE", message);

/** Reads a required string field of a JSON body, as Synapse's `assert_params_in_dict`. */
export function requireString(body: JsonObject, key: string): string {
  const value: JsonValue | undefined = body[key];
  if (value === undefined) throw missingParam(`Missing params: ['${key}']`);
  if (typeof value !== "string") throw invalidParam(`Param '${key}' must be a string`);
  return value;
}

export function optionalString(body: JsonObject, key: string): string | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string") throw invalidParam(`Param '${key}' must be a string`);
  return value;
}
