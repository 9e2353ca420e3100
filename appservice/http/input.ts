// What every request to the public listener must be before any route sees it, and the JSON
// body reader the routes share. PostgreSQL cannot store the NUL character in text, and a path
// with a broken percent-escape cannot be decoded: both are the client's mistake and get a 400
// that says so, never a 500 from deep inside.
import express, { type NextFunction, type Request, type RequestHandler, type Response } from "express";
import { ErrCode, KuvertError } from "../errors.ts";

const encodedNul = /%00/i;

/** Refuses a path or query string that carries a NUL character (`%00`) or a broken percent-escape in the path. */
export function requestLineCheck(req: Request, _res: Response, next: NextFunction): void {
  const url = req.originalUrl;
  const query = url.indexOf("?");
  const path = query === -1 ? url : url.slice(0, query);
  if (encodedNul.test(url) || url.includes("\0")) {
    return next(
      new KuvertError(ErrCode.InvalidInput, "The address contains a NUL character (%00); Kuvert accepts no NUL characters in paths, ids or search terms.", [{ path: query !== -1 && encodedNul.test(url.slice(query)) ? "(query)" : "(path)", message: "contains a NUL character" }]),
    );
  }
  try {
    decodeURIComponent(path);
  } catch {
    return next(new KuvertError(ErrCode.InvalidInput, "The address contains a broken percent-escape (e.g. %ZZ or a lone %); encode '%' as %25.", [{ path: "(path)", message: "broken percent-escape" }]));
  }
  next();
}

/** The first string (key or value) in a JSON value that holds a NUL character, as a dotted path; null when there is none. */
export function nulPath(value: unknown, path = ""): string | null {
  if (typeof value === "string") return value.includes("\0") ? path || "(body)" : null;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = nulPath(value[i], path ? `${path}.${i}` : String(i));
      if (found !== null) return found;
    }
    return null;
  }
  if (typeof value === "object" && value !== null) {
    for (const [key, inner] of Object.entries(value)) {
      const at = path ? `${path}.${key}` : key;
      if (key.includes("\0")) return at;
      const found = nulPath(inner, at);
      if (found !== null) return found;
    }
  }
  return null;
}

/** Throws the 400 for a text field or JSON value that carries a NUL character. */
export function refuseNul(value: unknown, field?: string): void {
  const at = nulPath(value, field);
  if (at !== null) throw new KuvertError(ErrCode.InvalidInput, `${at}: contains a NUL character, which Kuvert does not accept in text.`, [{ path: at, message: "contains a NUL character" }]);
}

/** express.json with `limit`, then a check that no string in the body holds a NUL character. */
export function readJson(limit: string): RequestHandler[] {
  return [
    express.json({ limit }),
    (req: Request, _res: Response, next: NextFunction) => {
      try {
        refuseNul(req.body);
        next();
      } catch (err) {
        next(err);
      }
    },
  ];
}
