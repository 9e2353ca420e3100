-- The end of the audit chain, read after taking the chain's lock, in one round trip instead of
-- two. A VOLATILE function's queries each run with a snapshot taken when they start, so the row it
-- reads is the one the previous holder of the lock committed; a single statement that took the
-- lock and read the row would read a snapshot from before the lock was granted, and fork the chain.
CREATE FUNCTION audit_chain_end(lock_key bigint, OUT last_seq bigint, OUT last_hash text)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(lock_key);
  SELECT a.seq, a.hash INTO last_seq, last_hash FROM audit_log a ORDER BY a.seq DESC LIMIT 1;
END
$$;
