import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createRoomRequest, desiredPowerLevels, initialPowerLevels, membershipPlan, samePowerLevels } from "../../appservice/organisations/room.ts";

const people = { botUserId: "@kuvert:ex.org", staff: ["@staff:ex.org"], clerks: ["@clerk:ex.org"], archived: false };

describe("organisation room shape", () => {
  it("is private: invite only, no guests, history for members, Kuvert 100, staff 50, clerks 0 and may post", () => {
    const req = createRoomRequest({ ...people, organisationId: "musterstadt", name: "Musterstadt", topic: "t", aliasLocalpart: "kuvert_org_musterstadt" });
    assert.equal(req.preset, "private_chat");
    assert.equal(req.visibility, "private");
    const state = req.initial_state as { type: string; content: Record<string, string> }[];
    const content = (type: string) => state.find((e) => e.type === type)?.content;
    assert.deepEqual(content("m.room.join_rules"), { join_rule: "invite" });
    assert.deepEqual(content("m.room.guest_access"), { guest_access: "forbidden" });
    assert.deepEqual(content("m.room.history_visibility"), { history_visibility: "shared" });
    const pl = req.power_level_content_override as Record<string, unknown>;
    assert.deepEqual(pl.users, { "@kuvert:ex.org": 100, "@staff:ex.org": 50 });
    assert.equal(pl.users_default, 0);
    assert.equal(pl.events_default, 0, "clerks (level 0) can post messages and files");
    assert.equal((pl.events as Record<string, number>)["m.room.encryption"], 100, "nobody but Kuvert can turn on encryption, which would stop scanning");
    assert.equal(pl.invite, 50);
  });

  it("resets a clerk someone raised, keeps people Kuvert does not manage, and makes archived rooms read-only", () => {
    const current = { ...initialPowerLevels(people), users: { "@kuvert:ex.org": 100, "@clerk:ex.org": 50, "@guest:other.org": 10 } };
    const wanted = desiredPowerLevels(current, { ...people, archived: true }, []);
    assert.deepEqual(wanted.users, { "@guest:other.org": 10, "@kuvert:ex.org": 100, "@staff:ex.org": 50 });
    assert.equal(wanted.events_default, 100);
    assert.equal(wanted.invite, 100);
    assert.ok(!samePowerLevels(current, wanted));
    assert.ok(samePowerLevels(wanted, desiredPowerLevels(wanted, { ...people, archived: true }, [])), "applying twice changes nothing");
  });

  it("drops the level of staff taken out of the configuration", () => {
    const current = initialPowerLevels(people);
    const wanted = desiredPowerLevels(current, { ...people, staff: [] }, ["@staff:ex.org"]);
    assert.deepEqual(wanted.users, { "@kuvert:ex.org": 100 });
  });

  it("plans invites for missing people, kicks for removed ones, and reports bans", () => {
    const members = new Map([
      ["@joined:ex.org", "join" as const],
      ["@invited:ex.org", "invite" as const],
      ["@left:ex.org", "leave" as const],
      ["@banned:ex.org", "ban" as const],
      ["@removed:ex.org", "join" as const],
      ["@removed-left:ex.org", "leave" as const],
    ]);
    const plan = membershipPlan(members, ["@joined:ex.org", "@invited:ex.org", "@left:ex.org", "@banned:ex.org", "@new:ex.org"], ["@removed:ex.org", "@removed-left:ex.org", "@joined:ex.org"]);
    assert.deepEqual(plan, { invite: ["@left:ex.org", "@new:ex.org"], kick: ["@removed:ex.org"], banned: ["@banned:ex.org"] });
  });
});
