-- Retention of the audit log: rows older than the legal period may be removed from the start of
-- the chain only, inside a retention run that names the cut-off; the last removed row's hash is
-- kept as the anchor the remaining chain is verified from. Any other UPDATE or DELETE still fails.

CREATE TABLE audit_anchor (
  id              integer PRIMARY KEY CHECK (id = 1),
  seq             bigint NOT NULL,
  hash            text NOT NULL,
  pruned_at       timestamptz NOT NULL DEFAULT now()
);

CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  cutoff text := current_setting('kuvert.audit_prune_before', true);
BEGIN
  -- The cut-off must lie at least a year back (the shortest period Kuvert can be configured to keep).
  IF TG_OP = 'DELETE' AND cutoff IS NOT NULL AND cutoff <> '' AND cutoff::timestamptz <= now() - interval '1 year'
     AND OLD.at < cutoff::timestamptz
     AND NOT EXISTS (SELECT 1 FROM audit_log WHERE seq < OLD.seq AND at >= cutoff::timestamptz) THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$;
