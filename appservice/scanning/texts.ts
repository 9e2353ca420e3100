// Why a file cannot be scanned whole, in a sentence for the one who sent it (what to send
// instead), in each language Kuvert speaks: said by documents and circulars alike.
import type { Language } from "../i18n.ts";
import type { Unscannable } from "./scanner.ts";

const de: Record<Unscannable["reason"], string> = {
  encrypted: "Sie ist oder enthält etwas mit Passwort. Bitte ohne Passwort senden.",
  depth: "Sie enthält zu tief ineinander verpackte Archive. Bitte weniger tief verpackt senden.",
  members: "Das Archiv enthält zu viele Dateien. Bitte auf kleinere Archive verteilen.",
  size: "Ausgepackt ist sie größer, als der Virenscanner prüft. Bitte auf kleinere Dateien verteilen.",
  ratio: "Sie packt sich auf ein Vielfaches ihrer Größe aus (wie eine ZIP-Bombe).",
  format: "Sie ist in einem Format verpackt, das Kuvert nicht öffnet. Bitte ungepackt oder als gewöhnliches ZIP senden.",
  broken: "Sie lässt sich nicht als Archiv lesen.",
  scanner: "Der Virenscanner konnte sie nicht bis zum Ende lesen.",
};

const en: Record<Unscannable["reason"], string> = {
  encrypted: "it is or contains something password-protected. Please send it without a password.",
  depth: "it holds archives packed too deeply one inside another. Please send it less deeply packed.",
  members: "the archive holds too many files. Please split it into smaller archives.",
  size: "unpacked, it is larger than the virus scanner checks. Please split it into smaller files.",
  ratio: "it unpacks to many times its size (like a zip bomb).",
  format: "it is packed in a format Kuvert does not open. Please send it unpacked or as an ordinary ZIP.",
  broken: "it cannot be read as an archive.",
  scanner: "the virus scanner could not read it to its end.",
};

export const unscannableReason: Record<Language, Record<Unscannable["reason"], string>> = { de, en };
