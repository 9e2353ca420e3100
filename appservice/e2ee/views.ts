// What the API answers about an organisation room's encryption (the console reads it too, typed).

/** GET and POST /api/v1/organisations/{id}/encryption. */
export interface RoomEncryptionView {
  organisation: string;
  roomId: string | null;
  /** The room is end-to-end encrypted (false while it has no room yet). */
  encrypted: boolean;
  /** This Kuvert can encrypt (e2ee.secret is set): false means the switch is not offered. */
  available: boolean;
  /** POST only: switched by this request (false: it was encrypted before). */
  switchedNow?: boolean;
}
