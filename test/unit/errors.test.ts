// One table from error code to HTTP status (appservice/errors.ts): every code has exactly one
// status, throw sites take it from there, and the README says the same.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { STATUS_CODES } from "node:http";
import { join } from "node:path";
import { describe, it } from "node:test";
import { z } from "zod";
import { ErrCode, errorStatus, KuvertError, parseInput } from "../../appservice/errors.ts";

const root = join(import.meta.dirname, "..", "..");
const codes = Object.values(ErrCode);

describe("error codes and their HTTP status", () => {
  it("the table has one status for every code, and nothing else", () => {
    assert.equal(new Set(codes).size, codes.length, "two names for one code");
    assert.deepEqual(Object.keys(errorStatus).sort(), [...codes].sort());
    for (const code of codes) {
      const status = errorStatus[code];
      assert.ok(Number.isInteger(status) && status >= 400 && status < 600 && STATUS_CODES[status], `${code}: ${status} is not an HTTP error status`);
    }
  });

  it("a KuvertError answers with the status of its code", () => {
    for (const code of codes) assert.equal(new KuvertError(code, "x").status, errorStatus[code], code);
    const err = new KuvertError(ErrCode.ModuleNotLoaded, "Video consultations are switched off (modules.calls).");
    assert.deepEqual(err.toJSON(), { errcode: "KUVERT_MODULE_NOT_LOADED", error: "Video consultations are switched off (modules.calls)." });
    assert.equal(err.status, 404);
  });

  it("schema errors are 400 with the code that fits", () => {
    const schema = z.strictObject({ id: z.string() });
    assert.throws(
      () => parseInput(schema, { id: 1 }),
      (e: KuvertError) => e.errcode === ErrCode.InvalidInput && e.status === 400,
    );
    assert.throws(
      () => parseInput(schema, { id: "a", colour: "red" }),
      (e: KuvertError) => e.errcode === ErrCode.UnknownField && e.status === 400,
    );
  });

  it("where the README names a code with a status, it is the status of the table", () => {
    const readme = readFileSync(join(root, "README.md"), "utf8");
    // "`KUVERT_X` (409", "(`KUVERT_X`, 415)", "409 `KUVERT_X`", "`429 KUVERT_X`"
    const patterns = [/`(KUVERT_[A-Z_]+)` \((\d{3})\b/g, /`(KUVERT_[A-Z_]+)`,\s+(\d{3})\)/g, /(\d{3}) `(KUVERT_[A-Z_]+)`/g, /`(\d{3}) (KUVERT_[A-Z_]+)`/g];
    let checked = 0;
    for (const [i, pattern] of patterns.entries()) {
      for (const m of readme.matchAll(pattern)) {
        const [code, status] = i < 2 ? [m[1]!, m[2]!] : [m[2]!, m[1]!];
        if (!(codes as string[]).includes(code)) continue; // environment variables and the like
        assert.equal(Number(status), errorStatus[code as ErrCode], `README: ${m[0]}`);
        checked++;
      }
    }
    assert.ok(checked > 30, `only ${checked} codes with a status found in the README`);
  });
});
