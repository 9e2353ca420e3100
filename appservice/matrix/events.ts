// Matrix events as Kuvert receives them (client-server format, AS API §"Pushing events").

export interface MatrixEvent {
  event_id: string;
  room_id: string;
  type: string;
  sender: string;
  state_key?: string;
  content: Record<string, unknown>;
  origin_server_ts: number;
  redacts?: string;
  unsigned?: Record<string, unknown>;
}

export function isMatrixEvent(value: unknown): value is MatrixEvent {
  if (typeof value !== "object" || value === null) return false;
  const e = value as Record<string, unknown>;
  return typeof e.event_id === "string" && typeof e.room_id === "string" && typeof e.type === "string" && typeof e.sender === "string" && typeof e.content === "object" && e.content !== null;
}

/** One feature's reaction to room events. Handlers must be idempotent: after a crash an event is handled again. */
export interface RoomEventHandler<Context> {
  readonly name: string;
  onEvent(event: MatrixEvent, context: Context): Promise<void>;
}
