// What Kuvert says about encryption in rooms, in each language it speaks.
import type { Language } from "../i18n.ts";

interface E2eeTexts {
  /** The redaction's reason of an event Kuvert could not decrypt. */
  undecryptableReason: string;
  /** Told to the room after it. */
  undecryptableInRoom: string;
  /** Told to the room when it was switched to encryption. */
  encryptedNow: string;
}

const de: E2eeTexts = {
  undecryptableReason: "Kuvert konnte diese verschlüsselte Nachricht nicht entschlüsseln und darum nicht auf Viren prüfen.",
  undecryptableInRoom: "Eine verschlüsselte Nachricht wurde entfernt: Kuvert konnte sie nicht entschlüsseln und darum nicht auf Viren prüfen. Bitte senden Sie sie noch einmal. Hilft das nicht, melden Sie Ihre Sitzung in Element ab und wieder an.",
  encryptedNow: "Dieser Raum ist ab jetzt Ende-zu-Ende-verschlüsselt. Kuvert prüft weiterhin jede Datei auf Viren.",
};

const en: E2eeTexts = {
  undecryptableReason: "Kuvert could not decrypt this encrypted message, so it could not check it for viruses.",
  undecryptableInRoom: "An encrypted message was removed: Kuvert could not decrypt it, so it could not check it for viruses. Please send it again. If that does not help, sign out of Element and back in.",
  encryptedNow: "This room is end-to-end encrypted from now on. Kuvert still checks every file for viruses.",
};

export function e2eeTexts(language: Language): E2eeTexts {
  return language === "en" ? en : de;
}
