// The admin API refuses bad input with a reason and a stable code, and changes nothing.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startStack, waitFor, type Stack } from "../support/harness.ts";

describe("admin API input", () => {
  let stack: Stack;
  let auditRows: number;

  before(async () => {
    stack = await startStack({ name: "api", database: "pglite" });
    assert.equal((await stack.api("POST", "/api/v1/organisations", { id: "existing", name: "Existing" })).status, 201);
    auditRows = await countAudit();
  });
  after(async () => {
    assert.equal(await countAudit(), auditRows, "no refused request changed anything");
    await stack.stop();
  });

  async function countAudit(): Promise<number> {
    const res = await stack.kuvert!.db.query<{ n: string }>("SELECT count(*) AS n FROM audit_log WHERE actor = 'token:test-admin'");
    return Number(res.rows[0]!.n);
  }

  const cases: [string, () => Promise<{ status: number; body: Record<string, unknown> }>, number, string, RegExp][] = [
    ["no token", () => stack.api("GET", "/api/v1/organisations", undefined, { token: null }), 401, "KUVERT_UNAUTHORIZED", /API token is required/],
    ["a wrong token", () => stack.api("GET", "/api/v1/organisations", undefined, { token: "kvt_wrong" }), 401, "KUVERT_UNAUTHORIZED", /unknown or revoked/],
    ["malformed JSON", () => stack.api("POST", "/api/v1/organisations", '{"id": "x", ', { contentType: "application/json" }), 400, "KUVERT_BAD_JSON", /not valid JSON/],
    ["JSON sent as another type", () => stack.api("POST", "/api/v1/organisations", "id=x", { contentType: "application/x-www-form-urlencoded" }), 415, "KUVERT_UNSUPPORTED_MEDIA_TYPE", /application\/json/],
    ["an unknown field", () => stack.api("POST", "/api/v1/organisations", { id: "new-org", name: "New", colour: "red" }), 400, "KUVERT_UNKNOWN_FIELD", /colour: unknown field/],
    ["missing fields", () => stack.api("POST", "/api/v1/organisations", {}), 400, "KUVERT_INVALID_INPUT", /id: missing.*name: missing/],
    ["an id that is not a slug", () => stack.api("POST", "/api/v1/organisations", { id: "Gemeinde Muster", name: "X" }), 400, "KUVERT_INVALID_INPUT", /id: expected a slug/],
    ["a clerk ID that is not a user ID", () => stack.api("POST", "/api/v1/organisations", { id: "new-org", name: "X", clerks: [{ matrixId: "anna@example.org" }] }), 400, "KUVERT_INVALID_INPUT", /clerks\.0\.matrixId: expected a Matrix user ID/],
    ["a clerk listed twice", () => stack.api("POST", "/api/v1/organisations", { id: "new-org", name: "X", clerks: [{ matrixId: "@a:x.org" }, { matrixId: "@a:x.org" }] }), 400, "KUVERT_INVALID_INPUT", /listed twice/],
    ["an unknown organisation", () => stack.api("GET", "/api/v1/organisations/nobody"), 404, "KUVERT_NOT_FOUND", /no organisation with the id nobody/],
    ["removing a clerk who is not one", () => stack.api("DELETE", "/api/v1/organisations/existing/clerks/%40nobody%3Ax.org"), 404, "KUVERT_NOT_FOUND", /is not a clerk/],
    ["a CSV with duplicate ids is reported per row", () => stack.api("POST", "/api/v1/organisations/import?dryRun=true", "id,name\ndup,A\ndup,B\n", { contentType: "text/csv" }), 200, "", /appears again/],
    ["a CSV without the id column", () => stack.api("POST", "/api/v1/organisations/import", "name\nX\n", { contentType: "text/csv" }), 400, "KUVERT_INVALID_INPUT", /missing: id/],
    ["an unknown endpoint", () => stack.api("GET", "/api/v1/nothing-here"), 404, "KUVERT_NOT_FOUND", /No such endpoint/],
    ["switching a room to encryption without e2ee.secret", () => stack.api("POST", "/api/v1/organisations/existing/encryption"), 404, "KUVERT_MODULE_NOT_LOADED", /set e2ee\.secret/],
  ];

  for (const [what, request, status, errcode, message] of cases) {
    it(`answers ${status} for ${what}`, async () => {
      const res = await request();
      assert.equal(res.status, status, JSON.stringify(res.body));
      if (errcode) assert.equal(res.body.errcode, errcode);
      assert.match(JSON.stringify(res.body), message);
    });
  }

  it("says whether a room is encrypted, and that this Kuvert cannot encrypt (no e2ee.secret)", async () => {
    await waitFor("the room of existing", async () => (await stack.api<{ roomState: string }>("GET", "/api/v1/organisations/existing")).body.roomState === "ready");
    const res = await stack.api("GET", "/api/v1/organisations/existing/encryption");
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual([res.body.encrypted, res.body.available], [false, false]);
  });

  it("lists the failing fields in details", async () => {
    const res = await stack.api<{ details: { path: string; message: string }[] }>("POST", "/api/v1/organisations", { id: "BAD", name: "", tags: ["Not a tag"] });
    assert.deepEqual(res.body.details.map((d) => d.path).sort(), ["id", "name", "tags.0"]);
  });

  it("serves its OpenAPI document with the request schemas it validates with", async () => {
    const res = await stack.api<{ openapi: string; paths: Record<string, unknown>; components: { schemas: Record<string, { required?: string[] }> } }>("GET", "/api/v1/openapi.json", undefined, { token: null });
    assert.equal(res.status, 200);
    assert.equal(res.body.openapi, "3.1.0");
    assert.ok(res.body.paths["/organisations/import"]);
    assert.deepEqual(res.body.components.schemas.OrganisationInput!.required?.sort(), ["id", "name"]);
  });

  it("answers health unauthenticated, without details", async () => {
    const health = await stack.api("GET", "/healthz", undefined, { token: null });
    assert.equal(health.status, 200);
    const ready = await stack.api("GET", "/readyz", undefined, { token: null });
    assert.equal(ready.status, 200, JSON.stringify(ready.body));
    assert.deepEqual(ready.body, { status: "ready" });
  });
});
