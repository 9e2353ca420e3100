// What the console's own endpoints (console/api.ts) answer, as types: the server builds its
// answers against them and the staff console imports them (type-only, through
// web/console/src/api.ts), so a change on one side that the other does not follow fails the
// type check instead of a page.
import type { Check } from "../health.ts";

/** GET /api/v1/console/organisations: the organisations a caller may pick from. */
export interface OrganisationChoice {
  id: string;
  name: string;
  tags: string[];
  state: string;
  roomState: string;
}

/** One row of GET /api/v1/audit. */
export interface AuditEntryView {
  seq: string;
  at: string;
  actor: string;
  action: string;
  organisationId: string | null;
  object: string | null;
  outcome: string;
  details: Record<string, unknown>;
}

/** One work queue on GET /api/v1/status. */
export interface QueueDepth {
  queue: string;
  table: string;
  pending: number;
  failed: number;
  oldestPendingSince: string | null;
}

/** GET /api/v1/status: readiness with each check, and the work queues. */
export interface StatusView {
  ready: boolean;
  checks: Record<string, Awaited<ReturnType<Check>>>;
  queues: QueueDepth[];
}

/** One e-mail given up, on GET /api/v1/mail/dead. */
export interface DeadMail {
  id: string;
  kind: string;
  recipient: string;
  organisationId: string | null;
  organisationName: string | null;
  attempts: number;
  lastError: string | null;
  createdAt: string;
  /** It and the notifications it combined. */
  notifications: number;
}
