// Which media an event references (appservice/matrix/references.ts): the one place that
// decides what Kuvert scans in an inbound event.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { mediaReferences, mxcInHtml } from "../../appservice/matrix/references.ts";

const file = (url: string) => ({ url, key: { kty: "oct", alg: "A256CTR", k: "k", key_ops: ["decrypt"], ext: true }, iv: "iv", hashes: { sha256: "h" }, v: "v2" });
const paths = (content: Record<string, unknown>, type = "m.room.message") => mediaReferences({ type, content }).map((r) => `${r.path}=${r.mxc}${r.encrypted ? " (encrypted)" : ""}`);

describe("media references of an event", () => {
  it("a plain file: its url", () => {
    assert.deepEqual(paths({ msgtype: "m.file", body: "a.pdf", url: "mxc://hs/a" }), ["url=mxc://hs/a"]);
  });

  it("an encrypted attachment: file, with its key, and nothing of it twice", () => {
    const refs = mediaReferences({ type: "m.room.message", content: { msgtype: "m.file", body: "a.pdf", file: file("mxc://hs/enc") } });
    assert.equal(refs.length, 1);
    assert.equal(refs[0]!.mxc, "mxc://hs/enc");
    assert.equal(refs[0]!.path, "file");
    assert.deepEqual(refs[0]!.encrypted, file("mxc://hs/enc"));
  });

  it("an image: the file and both kinds of thumbnail", () => {
    assert.deepEqual(paths({ msgtype: "m.image", body: "x.png", url: "mxc://hs/img", info: { thumbnail_url: "mxc://hs/thumb", thumbnail_file: file("mxc://hs/thumbenc") } }), [
      "url=mxc://hs/img",
      "info.thumbnail_url=mxc://hs/thumb",
      "info.thumbnail_file=mxc://hs/thumbenc (encrypted)",
    ]);
  });

  it("video and audio: the file and the video's thumbnail", () => {
    assert.deepEqual(paths({ msgtype: "m.video", body: "v.mp4", url: "mxc://hs/v", info: { thumbnail_url: "mxc://hs/vt" } }), ["url=mxc://hs/v", "info.thumbnail_url=mxc://hs/vt"]);
    assert.deepEqual(paths({ msgtype: "m.audio", body: "a.ogg", url: "mxc://hs/a" }), ["url=mxc://hs/a"]);
  });

  it("an edit: the old content's file and m.new_content's", () => {
    const content = { msgtype: "m.file", body: "* a.pdf", url: "mxc://hs/clean", "m.new_content": { msgtype: "m.file", body: "a.pdf", url: "mxc://hs/evil" }, "m.relates_to": { rel_type: "m.replace", event_id: "$orig" } };
    assert.deepEqual(paths(content), ["url=mxc://hs/clean", "m.new_content.url=mxc://hs/evil"]);
  });

  it("an edit whose new content is an encrypted file with a thumbnail", () => {
    const content = { msgtype: "m.text", body: "* x", "m.new_content": { msgtype: "m.image", body: "x", file: file("mxc://hs/f"), info: { thumbnail_url: "mxc://hs/t" } } };
    assert.deepEqual(paths(content), ["m.new_content.file=mxc://hs/f (encrypted)", "m.new_content.info.thumbnail_url=mxc://hs/t"]);
  });

  it("a sticker: its url and thumbnail", () => {
    assert.deepEqual(paths({ body: "cat", url: "mxc://hs/s", info: { thumbnail_url: "mxc://hs/st" } }, "m.sticker"), ["url=mxc://hs/s", "info.thumbnail_url=mxc://hs/st"]);
  });

  it("images in formatted_body, also entity-encoded and in srcset; plain body text is not media", () => {
    const content = {
      msgtype: "m.text",
      body: "see mxc://hs/in-text",
      format: "org.matrix.custom.html",
      formatted_body: '<p>hi <img src="mxc://hs/one" alt="x"> and <img src="mxc&#58;//hs/two"><img srcset="mxc://hs/three 1x, mxc://hs/four 2x"></p>',
    };
    assert.deepEqual(paths(content), ["formatted_body=mxc://hs/one", "formatted_body=mxc://hs/two", "formatted_body=mxc://hs/three", "formatted_body=mxc://hs/four"]);
  });

  it("mxc: URIs in any other field count too, and each URI once", () => {
    assert.deepEqual(paths({ msgtype: "m.file", body: "a", url: "mxc://hs/a", info: { thumbnail_url: "mxc://hs/a" }, "org.example.preview": ["mxc://hs/p"] }), ["url=mxc://hs/a", "org.example.preview.0=mxc://hs/p"]);
  });

  it("a message without media, and events of other types, reference nothing", () => {
    assert.deepEqual(paths({ msgtype: "m.text", body: "mxc://hs/only-text" }), []);
    assert.deepEqual(paths({ url: "mxc://hs/x" }, "m.room.topic"), []);
    assert.deepEqual(paths({ msgtype: "m.text", body: "x", format: "org.matrix.custom.html", formatted_body: "<b>mxc://hs/text-node</b>" }), []);
  });

  it("reads HTML attributes as a sanitiser does", () => {
    assert.deepEqual(mxcInHtml(`<div style="background:url(mxc://hs/bg)"></div><IMG SRC='mxc://hs/upper'>`), ["mxc://hs/bg", "mxc://hs/upper"]);
  });
});
