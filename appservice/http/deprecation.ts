// How /api/v1 announces that something will go (README "API versions"): the response carries a
// `Deprecation` header (RFC 9745: the date from which it is deprecated), a `Link` to the
// changelog entry (rel="deprecation") and, once the date of removal is known, a `Sunset` header
// (RFC 8594). Removal comes only with a new API version (/api/v2), never within /api/v1.
import type { NextFunction, Request, Response } from "express";

export interface Deprecation {
  /** From when the endpoint or field is deprecated. */
  since: Date;
  /** The CHANGELOG.md entry that says what to use instead. */
  changelog: string;
  /** When it goes away (with the next API version), if known. */
  sunset?: Date;
}

/** The headers announcing a deprecation, as a middleware for the routes concerned. */
export function deprecated(d: Deprecation) {
  return (_req: Request, res: Response, next: NextFunction) => {
    res.setHeader("Deprecation", `@${Math.floor(d.since.getTime() / 1000)}`);
    res.append("Link", `<${d.changelog}>; rel="deprecation"; type="text/markdown"`);
    if (d.sunset) res.setHeader("Sunset", d.sunset.toUTCString());
    next();
  };
}
