import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseConfig } from "../../appservice/config/load.ts";
import { letterLanguage, mailLanguage } from "../../appservice/i18n.ts";
import { documentMail } from "../../appservice/documents/mail.ts";
import { notificationTemplate, renderNotification } from "../../appservice/mail/templates.ts";

describe("languages", () => {
  it("e-mails and letters follow the organisations' language unless told otherwise", () => {
    const english = parseConfig({ organisations: { language: "en" } });
    assert.equal(mailLanguage(english), "en");
    assert.equal(letterLanguage(english), "en");
    assert.equal(mailLanguage(parseConfig({})), "de");
    const mixed = parseConfig({ organisations: { language: "en" }, mail: { language: "de" }, letters: { language: "de" } });
    assert.equal(mailLanguage(mixed), "de");
    assert.equal(letterLanguage(mixed), "de");
  });

  it("a document e-mail names the kind and reference, in the organisation's language", () => {
    const template = notificationTemplate(documentMail);
    assert.ok(template, "the documents define their e-mail");
    const mail = renderNotification(template, {
      language: mailLanguage(parseConfig({ organisations: { language: "en" } })),
      organisationName: "Musterstadt",
      roomLink: "https://matrix.to/#/!room:example.org",
      items: [{ title: "Notice", reference: "ABC-1" }],
    });
    assert.equal(mail.subject, "New document for Musterstadt");
    assert.match(mail.text, /^- Notice \(ref\. ABC-1\)$/m);
    assert.match(mail.text, /^Open the room to see it:$/m);
    assert.match(mail.html, /<html lang="en">/);
  });
});
