// Every media reference a clerk's event carries is scanned (real clamd), not only `url` of a
// file: encrypted attachments (decrypted first), thumbnails, an edit's new file, stickers,
// images in a message's HTML. One that is infected or cannot be scanned gets the event
// redacted and every media it references quarantined. Observed as a clerk in Element would:
// the event redacted, Kuvert's explanation, the media gone, or the "checked" mark.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { encryptAttachment } from "../../appservice/e2ee/attachments.ts";
import { EICAR } from "../support/clamd.ts";
import { startStack, type Stack } from "../support/harness.ts";
import type { TestUser } from "../support/matrix.ts";

/** A 1×1 PNG: a clean image. */
const PNG = Buffer.from("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==", "base64");

describe("inbound media: every reference an event carries is scanned", () => {
  let stack: Stack;
  let clerk: TestUser;
  let roomId: string;

  const upload = async (bytes: Buffer, name: string, type = "application/octet-stream") => (await clerk.client.uploadContent(new Uint8Array(bytes), { name, type })).content_uri;
  const send = async (type: string, content: Record<string, unknown>) => (await clerk.client.sendEvent(roomId, type as never, content as never)).event_id;
  // Downloaded as the clerk's client would: authenticated media where the homeserver has it.
  const mediaStatus = async (mxc: string) => (await clerk.download(mxc)).status;

  /** The event is redacted, the room told why (matching `why`), and none of `media` can be downloaded any more. */
  const expectRemoved = async (eventId: string, media: string[], why: RegExp) => {
    await clerk.until("the event to be redacted", () => clerk.room(roomId)?.findEventById(eventId)?.isRedacted() === true, 30_000);
    // Kuvert explains after it quarantined: an explanation later in the timeline than this event.
    await clerk.until(
      `Kuvert's explanation (${why})`,
      () => {
        const timeline = clerk.timeline(roomId);
        const at = timeline.findIndex((e) => e.getId() === eventId);
        return timeline.slice(at + 1).some((e) => e.getSender() === stack.botUserId && /entfernt/.test(String(e.getContent().body)) && why.test(String(e.getContent().body)));
      },
      30_000,
    );
    for (const mxc of media) assert.equal(await mediaStatus(mxc), 404, `${mxc} is quarantined`);
  };
  const expectChecked = async (eventId: string) => {
    const mark = await clerk.waitForEvent(roomId, "the checked mark", (e) => e.getType() === "m.reaction" && e.getContent()["m.relates_to"]?.event_id === eventId, 30_000);
    assert.equal(mark.getSender(), stack.botUserId);
    assert.equal(clerk.room(roomId)?.findEventById(eventId)?.isRedacted(), false);
  };

  before(async () => {
    stack = await startStack({ name: "inbound-media" });
    clerk = await stack.user("clerk");
    await clerk.start();
    const res = await stack.api("POST", "/api/v1/organisations", { id: "musterstadt", name: "Gemeinde Musterstadt", clerks: [{ matrixId: clerk.userId, email: "anna@musterstadt.example" }] });
    assert.equal(res.status, 201);
    roomId = await stack.roomOf("musterstadt");
    await clerk.waitForInvite(roomId);
    await clerk.join(roomId);
  });
  after(() => stack.stop());

  it("decrypts an encrypted attachment with the key in the event and removes it when it is EICAR", async () => {
    const { ciphertext, file } = encryptAttachment(EICAR);
    const url = await upload(ciphertext, "scan.txt");
    const eventId = await send("m.room.message", { msgtype: "m.file", body: "scan.txt", file: { url, ...file }, info: { mimetype: "text/plain", size: EICAR.length } });
    await expectRemoved(eventId, [url], /Schadsoftware/);
  });

  it("marks a clean encrypted attachment as checked", async () => {
    const { ciphertext, file } = encryptAttachment(Buffer.from("%PDF-1.4\nAntrag\n%%EOF\n"));
    const url = await upload(ciphertext, "Antrag.pdf");
    await expectChecked(await send("m.room.message", { msgtype: "m.file", body: "Antrag.pdf", file: { url, ...file }, info: { mimetype: "application/pdf" } }));
  });

  it("removes an encrypted attachment that cannot be decrypted: a wrong hash, or no usable key", async () => {
    const { ciphertext, file } = encryptAttachment(Buffer.from("clean, but not what the hash promised"));
    const url = await upload(ciphertext, "a.txt");
    const wrongHash = await send("m.room.message", { msgtype: "m.file", body: "a.txt", file: { url, ...file, hashes: { sha256: encryptAttachment(Buffer.from("other")).file.hashes.sha256 } } });
    await expectRemoved(wrongHash, [url], /entschlüsseln/);
    const other = encryptAttachment(Buffer.from("clean"));
    const url2 = await upload(other.ciphertext, "b.txt");
    const noKey = await send("m.room.message", { msgtype: "m.file", body: "b.txt", file: { url: url2, ...other.file, key: { ...other.file.key, k: "c2hvcnQ" } } });
    await expectRemoved(noKey, [url2], /entschlüsseln/);
  });

  it("scans an image's thumbnail: EICAR as thumbnail_url removes the image, and the clean image is quarantined too", async () => {
    const image = await upload(PNG, "foto.png", "image/png");
    const thumbnail = await upload(EICAR, "thumb.png", "image/png");
    const eventId = await send("m.room.message", { msgtype: "m.image", body: "foto.png", url: image, info: { mimetype: "image/png", w: 1, h: 1, thumbnail_url: thumbnail, thumbnail_info: { mimetype: "image/png" } } });
    await expectRemoved(eventId, [image, thumbnail], /Schadsoftware/);
  });

  it("scans an encrypted thumbnail (thumbnail_file)", async () => {
    const image = await upload(PNG, "bild.png", "image/png");
    const { ciphertext, file } = encryptAttachment(EICAR);
    const thumbnail = await upload(ciphertext, "thumb");
    const eventId = await send("m.room.message", { msgtype: "m.image", body: "bild.png", url: image, info: { mimetype: "image/png", thumbnail_file: { url: thumbnail, ...file } } });
    await expectRemoved(eventId, [image, thumbnail], /Schadsoftware/);
  });

  it("scans an edit's m.new_content: EICAR there removes the edit even when its top-level url is clean", async () => {
    const clean = await upload(Buffer.from("%PDF-1.4\nBescheid\n%%EOF\n"), "Bescheid.pdf", "application/pdf");
    const original = await send("m.room.message", { msgtype: "m.file", body: "Bescheid.pdf", url: clean });
    await expectChecked(original);
    const evil = await upload(EICAR, "Bescheid.pdf", "application/pdf");
    const edit = await send("m.room.message", {
      msgtype: "m.file",
      body: "* Bescheid.pdf",
      url: clean,
      "m.new_content": { msgtype: "m.file", body: "Bescheid.pdf", url: evil },
      "m.relates_to": { rel_type: "m.replace", event_id: original },
    });
    await expectRemoved(edit, [evil], /Schadsoftware/);
  });

  it("scans stickers", async () => {
    const sticker = await upload(EICAR, "sticker.png", "image/png");
    const eventId = await send("m.sticker", { body: "Daumen hoch", url: sticker, info: { mimetype: "image/png", w: 64, h: 64 } });
    await expectRemoved(eventId, [sticker], /Schadsoftware/);
  });

  it("scans mxc: images in formatted_body, and marks a message whose image is clean as checked", async () => {
    const evil = await upload(EICAR, "inline.png", "image/png");
    const eventId = await send("m.room.message", { msgtype: "m.text", body: "Siehe Bild", format: "org.matrix.custom.html", formatted_body: `<p>Siehe Bild <img src="${evil}" alt="Bild"></p>` });
    await expectRemoved(eventId, [evil], /Bild in einer Nachricht.*Schadsoftware/);
    const fine = await upload(PNG, "ok.png", "image/png");
    await expectChecked(await send("m.room.message", { msgtype: "m.text", body: "Bild", format: "org.matrix.custom.html", formatted_body: `<img src="${fine}">` }));
  });

  it("records which reference decided in the audit log", async () => {
    const rows = (await stack.kuvert!.db.query<{ details: { media: string | null; reason: string } }>("SELECT details FROM audit_log WHERE action = 'inbound.removed' ORDER BY seq")).rows;
    assert.deepEqual(
      rows.map((r) => `${r.details.reason}@${r.details.media}`),
      ["infected@file", "undecryptable@file", "undecryptable@file", "infected@info.thumbnail_url", "infected@info.thumbnail_file", "infected@m.new_content.url", "infected@url", "infected@formatted_body"],
    );
  });
});
