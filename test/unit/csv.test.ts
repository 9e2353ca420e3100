import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseOrganisationsCsv } from "../../appservice/organisations/csv.ts";
import { KuvertError } from "../../appservice/errors.ts";

describe("CSV import parsing", () => {
  it("reads organisations, tags and clerks given in any order", () => {
    const rows = parseOrganisationsCsv('id,name,tags,clerks\nmusterstadt,Gemeinde Musterstadt,"municipalities; north","Anna Beispiel anna@musterstadt.de @anna:ex.org; bernd@musterstadt.de"\n');
    assert.equal(rows.length, 1);
    assert.deepEqual(rows[0]!.input, {
      id: "musterstadt",
      name: "Gemeinde Musterstadt",
      tags: ["municipalities", "north"],
      clerks: [{ matrixId: "@anna:ex.org", email: "anna@musterstadt.de", name: "Anna Beispiel" }, { email: "bernd@musterstadt.de" }],
    });
  });

  it("takes semicolon-separated files as spreadsheets in German locales write them", () => {
    const rows = parseOrganisationsCsv("\uFEFFid;name;tags;clerks\nschule-a;Schule A;schools;@a:ex.org, @b:ex.org\n");
    assert.deepEqual(rows[0]!.input?.clerks, [{ matrixId: "@a:ex.org" }, { matrixId: "@b:ex.org" }]);
  });

  it("gives each bad row its reason and leaves the good rows alone", () => {
    const rows = parseOrganisationsCsv(["id,name,tags,clerks", "good,Good,,", "Bad Slug,Bad,,", "good,Again,,", "nameless,,,", "badclerk,X,,@not a user", "toomany,X,,,extra"].join("\n"));
    assert.equal(rows[0]!.error, undefined);
    assert.match(rows[1]!.error!.message, /^id: expected a slug/);
    assert.match(rows[2]!.error!.message, /appears again \(first on line 2\)/);
    assert.match(rows[3]!.error!.message, /^name: expected at least 1 character/);
    assert.match(rows[4]!.error!.message, /clerks\.0/);
    assert.match(rows[5]!.error!.message, /the row has 5 fields, the header 4/);
    assert.deepEqual(
      rows.map((r) => r.line),
      [2, 3, 4, 5, 6, 7],
    );
  });

  it("refuses a file without the required columns or with unknown ones", () => {
    assert.throws(
      () => parseOrganisationsCsv("name,tags\nx,y\n"),
      (e: unknown) => e instanceof KuvertError && /missing: id/.test(e.message),
    );
    assert.throws(
      () => parseOrganisationsCsv("id,name,colour\nx,y,z\n"),
      (e: unknown) => e instanceof KuvertError && e.errcode === "KUVERT_UNKNOWN_FIELD",
    );
  });
});
