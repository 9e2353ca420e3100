// The name and content rules as plain functions: what every way in (drop API, console, drop
// folder, batches, circular attachments) checks before a document is recorded.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { checkContent, contentType } from "../../appservice/files/content.ts";
import { checkFilename } from "../../appservice/files/names.ts";
import { KuvertError } from "../../appservice/errors.ts";

const rules = { allowedTypes: ["application/pdf", "image/jpeg", "text/plain", "text/csv", "application/zip"], activeContent: false };
const code = (fn: () => unknown): string | null => {
  try {
    fn();
    return null;
  } catch (err) {
    assert.ok(err instanceof KuvertError, String(err));
    return err.errcode;
  }
};

describe("names and content", () => {
  it("property: a plain name with a fitting extension is accepted unchanged", () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9 _-]{0,40}[A-Za-z0-9]$/), fc.constantFrom("pdf", "PDF", "jpg", "jpeg", "txt", "csv"), (base, ext) => {
        fc.pre(!/^(con|prn|aux|nul|com\d|lpt\d)$/i.test(base));
        const name = `${base}.${ext}`;
        assert.equal(checkFilename(name), name);
        const type = { pdf: "application/pdf", jpg: "image/jpeg", jpeg: "image/jpeg", txt: "text/plain", csv: "text/plain" }[ext.toLowerCase()]!;
        assert.equal(
          code(() => checkContent(name, type, rules)),
          null,
        );
      }),
    );
  });

  it("property: an invisible, control or bidi character anywhere in a name is refused", () => {
    const odd = fc.constantFrom("\u0000", "\u001F", "\u007F", "\u0085", "\u00AD", "\u061C", "\u180E", "\u200B", "\u200C", "\u200D", "\u200E", "\u202A", "\u202E", "\u2060", "\u2066", "\u2069", "\uFEFF", "\u2028", "\u2029", "\uE000", "\u3164", "\u{E0041}");
    fc.assert(
      fc.property(fc.stringMatching(/^[A-Za-z0-9]{1,20}$/), odd, fc.nat(), (base, c, at) => {
        const i = at % (base.length + 1);
        assert.equal(
          code(() => checkFilename(`${base.slice(0, i)}${c}${base.slice(i)}.pdf`)),
          "KUVERT_INVALID_FILENAME",
        );
      }),
    );
  });

  it("refuses Windows device names, with or without an extension, and trailing dots", () => {
    for (const name of ["CON", "con", "aux.pdf", "NUL.txt", "com1.pdf", "LPT9.tar.gz", "com\u00B9.pdf", "CONIN$", "CON .pdf", "rechnung.pdf.", "rechnung.pdf "]) {
      assert.equal(
        code(() => checkFilename(name)),
        "KUVERT_INVALID_FILENAME",
        name,
      );
    }
    for (const name of ["console.pdf", "auxiliary.pdf", "com10.pdf", "Nullbescheid.pdf"]) assert.equal(checkFilename(name), name);
  });

  it("wants the extension to fit the content, and finds active content in text", () => {
    assert.equal(
      code(() => checkContent("setup.exe", "application/pdf", rules)),
      "KUVERT_TYPE_MISMATCH",
    );
    assert.equal(
      code(() => checkContent("Rechnung.pdf.bat", "text/plain", rules)),
      "KUVERT_TYPE_MISMATCH",
    );
    assert.equal(
      code(() => checkContent("Bescheid", "application/pdf", rules)),
      "KUVERT_TYPE_MISMATCH",
    );
    assert.equal(
      code(() => checkContent("Vertrag.docx", "application/zip", rules)),
      "KUVERT_TYPE_MISMATCH",
    );
    assert.equal(contentType("text/plain", Buffer.from("<!doctype html><p>x")), "text/html");
    assert.equal(contentType("text/plain", Buffer.from("Hallo <script>alert(1)</script>")), "text/html");
    assert.equal(contentType("application/xml", Buffer.from('<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>')), "image/svg+xml");
    assert.equal(contentType("text/plain", Buffer.from("#!/bin/sh\nrm -rf /\n")), "text/x-shellscript");
    assert.equal(contentType("text/plain", Buffer.from("Sehr geehrte Damen und Herren, 3 < 4 und <b> ist kein Tag hier.")), "text/plain");
    assert.equal(
      code(() => checkContent("x.txt", "text/html", rules)),
      "KUVERT_ACTIVE_CONTENT",
    );
    assert.equal(
      code(() => checkContent("x.svg", "image/svg+xml", rules)),
      "KUVERT_ACTIVE_CONTENT",
    );
    // Configured: HTML comes in when it is also an allowed type and named .html.
    const open = { allowedTypes: [...rules.allowedTypes, "text/html"], activeContent: true };
    assert.equal(
      code(() => checkContent("info.html", "text/html", open)),
      null,
    );
    assert.equal(
      code(() => checkContent("info.txt", "text/html", open)),
      "KUVERT_TYPE_MISMATCH",
    );
    assert.equal(
      code(() => checkContent("logo.svg", "image/svg+xml", open)),
      "KUVERT_TYPE_NOT_ALLOWED",
    );
  });
});
