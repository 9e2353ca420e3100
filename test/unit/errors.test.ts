// One table from error code to HTTP status (appservice/errors.ts, and each module's errors.ts):
// every code has exactly one status, throw sites take it from there, and the README says the same.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { STATUS_CODES } from "node:http";
import { join } from "node:path";
import { describe, it } from "node:test";
import { z } from "zod";
import { defineErrorCodes, ErrCode, errorCodes, errorStatus, KuvertError, parseInput } from "../../appservice/errors.ts";
import { modules } from "../../appservice/modules.ts";

const root = join(import.meta.dirname, "..", "..");
// The core's codes and those of every module (loading the list loads each module's errors.ts).
const codes = [...Object.values(ErrCode), ...modules.flatMap((m) => Object.values(m.errors ?? {}))];

describe("error codes and their HTTP status", () => {
  it("the table has one status for every code, and nothing else", () => {
    assert.equal(new Set(codes).size, codes.length, "two names for one code");
    assert.deepEqual([...errorCodes().keys()].sort(), [...codes].sort(), "every code defined is listed by the core or its module");
    for (const code of codes) {
      const status = errorStatus(code);
      assert.ok(Number.isInteger(status) && status >= 400 && status < 600 && STATUS_CODES[status], `${code}: ${status} is not an HTTP error status`);
    }
  });

  it("a KuvertError answers with the status of its code", () => {
    for (const code of codes) assert.equal(new KuvertError(code, "x").status, errorStatus(code), code);
    const err = new KuvertError(ErrCode.ModuleNotLoaded, "Video consultations are switched off (modules.calls).");
    assert.deepEqual(err.toJSON(), { errcode: "KUVERT_MODULE_NOT_LOADED", error: "Video consultations are switched off (modules.calls)." });
    assert.equal(err.status, 404);
  });

  it("a module's codes are its own: a code defined twice, or with a status that is no error, stops Kuvert loading", () => {
    assert.ok(codes.includes("KUVERT_NO_CALL") && codes.includes("KUVERT_CIRCULAR_STATE"), "the modules' codes are known");
    assert.equal(new KuvertError("KUVERT_CIRCULAR_STATE", "x").status, 409);
    assert.throws(() => defineErrorCodes({ Again: ["KUVERT_NO_CALL", 404] }), /KUVERT_NO_CALL is defined twice/);
    assert.throws(() => defineErrorCodes({ Core: ["KUVERT_NOT_FOUND", 404] }), /defined twice/);
    assert.throws(() => defineErrorCodes({ Fine: ["KUVERT_TEST_FINE", 400], Wrong: ["KUVERT_TEST_WRONG", 200] }), /200 is not an HTTP error status/);
    assert.throws(() => defineErrorCodes({ One: ["KUVERT_TEST_TWICE", 400], Other: ["KUVERT_TEST_TWICE", 409] }), /defined twice/);
    for (const code of ["KUVERT_TEST_FINE", "KUVERT_TEST_WRONG", "KUVERT_TEST_TWICE"]) assert.ok(!errorCodes().has(code as ErrCode), `a refused definition leaves nothing behind (${code})`);
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
        assert.equal(Number(status), errorStatus(code as ErrCode), `README: ${m[0]}`);
        checked++;
      }
    }
    assert.ok(checked > 30, `only ${checked} codes with a status found in the README`);
  });
});
