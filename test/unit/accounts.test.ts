// Usernames and initial passwords for clerk accounts: plain functions.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { generatePassword, meetsPolicy, passwordClasses } from "../../appservice/accounts/password.ts";
import { derivedCandidates, localpartProblem, preferredLocalpart, usernameFromName } from "../../appservice/accounts/username.ts";
import { KuvertError } from "../../appservice/errors.ts";

describe("usernames", () => {
  it("folds names to the allowed characters, the German way", () => {
    assert.equal(usernameFromName("Jörg Müller-Weiß"), "joerg.mueller-weiss");
    assert.equal(usernameFromName("  Ana  Sofía  Peña "), "ana.sofia.pena");
    assert.equal(usernameFromName("Łukasz Żółć"), "lukasz.zolc");
    assert.equal(usernameFromName("O'Brien, Seán"), "obrien.sean");
    assert.equal(usernameFromName("Dr. med. Anna -- Beispiel"), "dr.med.anna.beispiel");
    assert.equal(usernameFromName("李小龍"), "");
    for (const name of ["Jörg Müller-Weiß", "X Æ A-12", "_under_ score", "..Anna.."]) {
      const u = usernameFromName(name);
      assert.equal(localpartProblem(u, "kuvert_"), null, `${name} → ${u}`);
    }
  });

  it("falls back to the address, then to 'clerk', and numbers further candidates", () => {
    assert.deepEqual([...derivedCandidates("李小龍", "li.xiaolong@example.org", 3)], ["li.xiaolong", "li.xiaolong2", "li.xiaolong3"]);
    assert.deepEqual([...derivedCandidates("12345", "6789@example.org", 2)], ["clerk", "clerk2"]);
  });

  it("checks preferred usernames as Synapse does, and keeps Kuvert's own namespace out", () => {
    assert.equal(preferredLocalpart("anna.b", "kuvert.test", "kuvert_"), "anna.b");
    assert.equal(preferredLocalpart("@anna.b:kuvert.test", "kuvert.test", "kuvert_"), "anna.b");
    for (const bad of ["Anna", "_anna", "12345", "an na", "kuvert_anna", "@anna:elsewhere.example", "a".repeat(65)]) {
      assert.throws(
        () => preferredLocalpart(bad, "kuvert.test", "kuvert_"),
        (err: unknown) => err instanceof KuvertError && err.errcode === "KUVERT_USERNAME_INVALID",
        bad,
      );
    }
  });
});

describe("initial passwords", () => {
  const policy = { length: 16, lowercase: true, uppercase: true, digits: true, symbols: true };

  it("meet the policy, use no characters easily mistaken in print, and differ", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 500; i++) {
      const p = generatePassword(policy);
      assert.equal(p.length, 16);
      assert.ok(meetsPolicy(p, policy), p);
      assert.doesNotMatch(p, /[0O1lI]/);
      seen.add(p);
    }
    assert.equal(seen.size, 500);
  });

  it("follow a narrower policy", () => {
    const digitsOnly = { length: 20, lowercase: false, uppercase: false, digits: true, symbols: false };
    const p = generatePassword(digitsOnly);
    assert.equal(p.length, 20);
    assert.ok(
      [...p].every((c) => passwordClasses.digits.includes(c)),
      p,
    );
    assert.equal(meetsPolicy("abc", policy), false);
  });
});
