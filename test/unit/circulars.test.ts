// Circulars' decisions without I/O: Markdown to Matrix HTML, edits, the staff-room command.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { editContent, messageContent, renderMarkdown } from "../../appservice/circulars/markdown.ts";
import { checkCircular, parseCircularCommand } from "../../appservice/circulars/model.ts";
import type { KuvertError } from "../../appservice/errors.ts";

describe("Markdown for rooms", () => {
  it("renders Markdown to the Matrix HTML subset and keeps the source as the plain body", () => {
    const md = "# Titel\n**fett** und _kursiv_ und ~~weg~~\nZeile 2\n\n1. eins\n2. zwei\n\n> Zitat\n\n`code` [Link](https://example.org)\n\n| a | b |\n|---|---|\n| 1 | 2 |";
    const r = renderMarkdown(md);
    assert.equal(r.body, md);
    for (const fragment of ["<h1>Titel</h1>", "<strong>fett</strong>", "<em>kursiv</em>", "<del>weg</del>", "<br />Zeile 2", "<ol>", "<li>eins</li>", "<blockquote>", "<code>code</code>", '<a href="https://example.org">Link</a>', "<table>", "<td>1</td>"]) {
      assert.ok(r.html.includes(fragment), `${fragment} in ${r.html}`);
    }
  });

  it("drops what Matrix does not allow: scripts, event handlers, iframes, javascript: links, images from outside the media repository", () => {
    const r = renderMarkdown(
      '<script>alert(1)</script><img src="https://evil.example/x.png" onerror="alert(1)"><iframe src="https://evil.example"></iframe>\n\n[x](javascript:alert(1)) <a href="https://ok.example" onclick="x()">ok</a> ![bild](mxc://body.example/abc) <font color="red">f</font> <p style="color:red">p</p>',
    );
    assert.doesNotMatch(r.html, /script|onerror|onclick|iframe|javascript|evil|style|font/);
    assert.match(r.html, /<img src="mxc:\/\/body\.example\/abc" alt="bild" \/>/);
    assert.match(r.html, /<a href="https:\/\/ok\.example">ok<\/a>/);
    assert.match(r.html, /<a>x<\/a>/);
  });

  it("keeps code language classes and only those", () => {
    const r = renderMarkdown('```ts\nlet a = 1;\n```\n\n<code class="evil language-js">x</code>');
    assert.match(r.html, /<code class="language-ts">/);
    assert.match(r.html, /<code class="language-js">x<\/code>/);
  });

  it("builds an edit as the spec wants it: m.new_content, m.replace relation, '* ' fallback", () => {
    const content = messageContent({ body: "neu", html: "<p>neu</p>" });
    const edit = editContent("$orig", content);
    assert.deepEqual(edit, {
      msgtype: "m.text",
      body: "* neu",
      format: "org.matrix.custom.html",
      formatted_body: "* <p>neu</p>",
      "m.new_content": { msgtype: "m.text", body: "neu", format: "org.matrix.custom.html", formatted_body: "<p>neu</p>" },
      "m.relates_to": { rel_type: "m.replace", event_id: "$orig" },
    });
  });
});

describe("the !circular command", () => {
  it("reads targets and time from the first line and the text from the lines below", () => {
    assert.deepEqual(parseCircularCommand("!circular tag:schools\n# Hallo\n\nText"), { kind: "send", targets: { tag: "schools" }, scheduledAt: undefined, text: "# Hallo\n\nText" });
    assert.deepEqual(parseCircularCommand("!circular all at:2026-12-01T08:00+01:00\r\nText"), { kind: "send", targets: { all: true }, scheduledAt: "2026-12-01T08:00+01:00", text: "Text" });
    assert.deepEqual(parseCircularCommand("!circular org:a,b\nText"), { kind: "send", targets: { organisations: ["a", "b"] }, scheduledAt: undefined, text: "Text" });
    assert.deepEqual(parseCircularCommand("!circular cancel circ_x"), { kind: "cancel", id: "circ_x" });
    assert.deepEqual(parseCircularCommand("!circular status"), { kind: "status", id: undefined });
    assert.deepEqual(parseCircularCommand("!circular correct circ_x\nNeu"), { kind: "correct", id: "circ_x", text: "Neu" });
  });

  it("says what it did not understand", () => {
    assert.deepEqual(parseCircularCommand("!circular"), { kind: "error", message: "no-target" });
    assert.deepEqual(parseCircularCommand("!circular everyone\nx"), { kind: "error", message: "bad-word:everyone" });
    assert.deepEqual(parseCircularCommand("!circular at:2026-12-01T08:00Z\nx"), { kind: "error", message: "no-target" });
    assert.deepEqual(parseCircularCommand("!circular cancel"), { kind: "error", message: "no-id" });
  });

  it("checks text and schedule before anything is stored", () => {
    const now = new Date("2026-11-23T12:00:00Z");
    assert.throws(
      () => checkCircular({ text: " \n", targets: { all: true } }, now),
      (e: KuvertError) => e.errcode === "KUVERT_CIRCULAR_EMPTY",
    );
    assert.throws(
      () => checkCircular({ text: "x", targets: { all: true }, scheduledAt: "2026-11-23T11:00:00Z" }, now),
      (e: KuvertError) => e.errcode === "KUVERT_SCHEDULE_IN_PAST",
    );
    assert.throws(
      () => checkCircular({ text: "x", targets: { all: true }, scheduledAt: "2026-11-24T08:00" }, now),
      (e: KuvertError) => e.errcode === "KUVERT_INVALID_INPUT",
    );
    assert.throws(
      () => checkCircular({ text: "x", targets: { tag: "Not A Tag" } }, now),
      (e: KuvertError) => e.errcode === "KUVERT_INVALID_INPUT",
    );
    assert.throws(
      () => checkCircular({ text: "x", targets: { organisations: [] } }, now),
      (e: KuvertError) => e.errcode === "KUVERT_INVALID_INPUT",
    );
    assert.deepEqual(checkCircular({ text: " x ", targets: { all: true }, scheduledAt: "2026-11-24T08:00:00+01:00" }, now), { text: "x", targets: { all: true }, scheduledAt: new Date("2026-11-24T07:00:00Z") });
  });
});
