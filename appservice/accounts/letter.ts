// The password letter as a PDF (pdfkit), ready to print on A4 and post in a window envelope
// (DIN 5008 form B: the address field 45 mm from the top, 20 mm from the left). DejaVu fonts
// from the dejavu-fonts-ttf npm package are embedded, so umlauts print on any machine.
// One page per clerk; several clerks give one PDF with one letter each.
import { createRequire } from "node:module";
import PDFDocument from "pdfkit";
import type { KuvertConfig } from "../config/schema.ts";
import type { Language } from "../i18n.ts";
import { letterTexts } from "./texts.ts";

const require = createRequire(import.meta.url);
const font = (file: string) => require.resolve(`dejavu-fonts-ttf/ttf/${file}`);
export const letterFonts = { regular: font("DejaVuSans.ttf"), bold: font("DejaVuSans-Bold.ttf"), mono: font("DejaVuSansMono-Bold.ttf") };

const mm = (v: number) => (v * 72) / 25.4;

export interface Letter {
  clerkName: string;
  organisations: string[];
  matrixId: string;
  password: string;
  /** The letter after a password reset (says so). */
  reset?: boolean;
}

export interface LetterOptions {
  sender: KuvertConfig["letters"]["sender"];
  language: Language;
  signInUrl: string;
  keyBackup: boolean;
  date?: Date;
}

function listOf(names: string[], language: Language): string {
  if (names.length <= 1) return names[0] ?? "";
  const and = language === "en" ? " and " : " und ";
  return `${names.slice(0, -1).join(", ")}${and}${names[names.length - 1]}`;
}

/** Renders the letters into one PDF, one page each. */
export function renderLetters(letters: Letter[], opts: LetterOptions): Promise<Buffer> {
  const t = letterTexts(opts.language);
  const date = opts.date ?? new Date();
  const doc = new PDFDocument({
    size: "A4",
    margins: { top: mm(15), bottom: mm(15), left: mm(25), right: mm(20) },
    autoFirstPage: false,
    info: { Title: t.subject, Author: opts.sender.name, Creator: "Kuvert" },
    lang: opts.language,
  });
  doc.registerFont("regular", letterFonts.regular);
  doc.registerFont("bold", letterFonts.bold);
  doc.registerFont("mono", letterFonts.mono);
  const chunks: Buffer[] = [];
  const done = new Promise<Buffer>((resolve, reject) => {
    doc.on("data", (c: Buffer) => chunks.push(c));
    doc.on("end", () => resolve(Buffer.concat(chunks)));
    doc.on("error", reject);
  });

  const left = mm(25);
  const textWidth = mm(210) - left - mm(20);

  letters.forEach((letter, index) => {
    doc.addPage();
    // Letterhead: the operating body, top right.
    doc
      .font("bold")
      .fontSize(13)
      .fillColor("#000")
      .text(opts.sender.name, mm(110), mm(15), { width: mm(80), align: "right" });
    doc.font("regular").fontSize(8.5).fillColor("#333");
    for (const line of opts.sender.address) doc.text(line, { width: mm(80), align: "right" });
    if (opts.sender.contact) doc.text(opts.sender.contact, { width: mm(80), align: "right" });

    // Address field (form B): return line, then the recipient.
    const returnLine = [opts.sender.name, ...opts.sender.address].join(" · ");
    doc
      .font("regular")
      .fontSize(7)
      .fillColor("#444")
      .text(returnLine, mm(20), mm(50), { width: mm(85), lineBreak: false, ellipsis: true });
    doc.moveTo(mm(20), mm(53.5)).lineTo(mm(105), mm(53.5)).lineWidth(0.3).strokeColor("#999").stroke();
    doc.font("bold").fontSize(8).fillColor("#000").text(t.confidential, mm(20), mm(56));
    doc
      .font("regular")
      .fontSize(11)
      .text(letter.clerkName, mm(20), mm(62), { width: mm(85) });
    for (const org of letter.organisations) doc.text(org, { width: mm(85) });

    doc
      .font("regular")
      .fontSize(10)
      .text(t.date(date), mm(125), mm(95), { width: mm(65), align: "right" });

    // Subject and body.
    doc.font("bold").fontSize(12).text(t.subject, left, mm(104), { width: textWidth });
    doc.moveDown(1);
    doc.font("regular").fontSize(10).text(t.greeting(letter.clerkName), { width: textWidth });
    doc.moveDown(0.5);
    doc.text((letter.reset ? t.introReset : t.intro)(opts.sender.name, listOf(letter.organisations, opts.language)), { width: textWidth, align: "left", lineGap: 1 });
    doc.moveDown(0.7);

    // The credentials, boxed.
    const boxTop = doc.y;
    const labelWidth = mm(42);
    const rows: [string, string, "mono" | "bold"][] = [
      [t.signInAt, opts.signInUrl, "bold"],
      [t.username, letter.matrixId, "mono"],
      [t.password, letter.password, "mono"],
    ];
    let y = boxTop + mm(4);
    for (const [label, value, face] of rows) {
      doc
        .font("regular")
        .fontSize(10)
        .fillColor("#333")
        .text(label, left + mm(5), y + 1.5, { width: labelWidth });
      doc
        .font(face)
        .fontSize(face === "mono" ? 13 : 11)
        .fillColor("#000")
        .text(value, left + mm(5) + labelWidth, y, { width: textWidth - labelWidth - mm(10) });
      y = Math.max(doc.y, y + mm(6)) + mm(2.5);
    }
    const boxHeight = y - boxTop + mm(1.5);
    doc.roundedRect(left, boxTop, textWidth, boxHeight, 4).lineWidth(0.8).strokeColor("#000").stroke();
    doc.x = left;
    doc.y = boxTop + boxHeight + mm(3);
    doc.font("regular").fontSize(8.5).fillColor("#333").text(t.passwordNote, left, doc.y, { width: textWidth, lineGap: 0.5 });
    doc.moveDown(0.9);

    doc.font("bold").fontSize(11).fillColor("#000").text(t.stepsTitle, { width: textWidth });
    doc.moveDown(0.3);
    doc.font("regular").fontSize(10);
    t.steps(opts.signInUrl, opts.keyBackup).forEach((step, i) => {
      const top = doc.y;
      doc.text(`${i + 1}.`, left, top, { width: mm(6) });
      doc.text(step, left + mm(6), top, { width: textWidth - mm(6), lineGap: 1 });
      doc.moveDown(0.25);
    });
    doc.moveDown(0.4);
    doc.font("regular").fontSize(9).fillColor("#333").text(t.separateChannels, left, doc.y, { width: textWidth, lineGap: 0.5 });
    doc.moveDown(1);
    doc.font("regular").fontSize(10).fillColor("#000").text(t.closing, { width: textWidth });
    doc.moveDown(0.3);
    doc.text(opts.sender.name, { width: textWidth });

    // Footer: page count of the whole PDF, so a missing sheet is noticed.
    // (Written inside the bottom margin: lifted for this line, so pdfkit does not start a page.)
    const bottom = doc.page.margins.bottom;
    doc.page.margins.bottom = 0;
    doc
      .font("regular")
      .fontSize(7.5)
      .fillColor("#666")
      .text(t.page(index + 1, letters.length), left, mm(297) - mm(10), { width: textWidth, align: "center", lineBreak: false });
    doc.page.margins.bottom = bottom;
  });
  doc.end();
  return done;
}
