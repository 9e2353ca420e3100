// The headers /api/v1 uses to announce a deprecation (README "API versions").
import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { describe, it } from "node:test";
import express from "express";
import { deprecated } from "../../appservice/http/deprecation.ts";

describe("deprecation headers", () => {
  it("sends Deprecation, a Link to the changelog and Sunset on the deprecated route only", async () => {
    const app = express();
    const since = new Date("2027-01-01T00:00:00Z");
    app.get("/old", deprecated({ since, changelog: "https://kuvert.example.org/CHANGELOG.md#api-12", sunset: new Date("2027-07-01T00:00:00Z") }), (_req, res) => {
      res.json({});
    });
    app.get("/current", (_req, res) => {
      res.json({});
    });
    const server = app.listen(0, "127.0.0.1");
    await new Promise((r) => server.once("listening", r));
    try {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const old = await fetch(`${base}/old`);
      assert.equal(old.headers.get("deprecation"), `@${since.getTime() / 1000}`);
      assert.equal(old.headers.get("link"), '<https://kuvert.example.org/CHANGELOG.md#api-12>; rel="deprecation"; type="text/markdown"');
      assert.equal(old.headers.get("sunset"), "Thu, 01 Jul 2027 00:00:00 GMT");
      const current = await fetch(`${base}/current`);
      assert.equal(current.headers.get("deprecation"), null);
    } finally {
      server.close();
    }
  });
});
