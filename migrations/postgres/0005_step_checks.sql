-- ninsho PostgreSQL schema, version 5: `ninsho_step`, the journey-step
-- commit with the two checks version 4's `ninsho_commit` lacks.
--
-- Names are unqualified: `PgStore::migrate` runs this file with
-- `search_path` set to the store's schema. Idempotent, like every file
-- before it.
--
-- `ninsho_step` takes `ninsho_commit`'s arguments and two more, and:
--
-- 1. checks the initialisation marker first, and raises SQLSTATE NSC03
--    when it is gone (the tables were emptied: nothing may be written
--    into them on the strength of a read from before, so no code is sent,
--    no failure run started and no device trusted);
-- 2. runs `ninsho_commit` (counters, failure run, challenge, device,
--    account record and claims, with its outcomes and SQLSTATEs);
-- 3. unless that ended at a counter's limit, checks the account record
--    the step was decided on without writing it (`p_check_account`; NULL:
--    no check): it must still be at `p_check_version` (NULL: absent). The
--    read takes a share lock, so the record can't change until the call
--    commits; a record at another version raises NSC01, which rolls back
--    everything the call wrote. The lock comes last, after every row
--    `ninsho_commit` locked, the same order as a record write.
--
-- `ninsho_commit` stays as it was, for app instances of the previous
-- release while an upgrade rolls out.
CREATE OR REPLACE FUNCTION ninsho_step(
    p_hit_keys       TEXT[],
    p_hit_resets     TIMESTAMPTZ[],
    p_hit_max        BIGINT[],
    p_now            TIMESTAMPTZ,
    p_run_account    TEXT,
    p_run_old_count  BIGINT,
    p_run_old_at     TIMESTAMPTZ,
    p_run_new_count  BIGINT,
    p_run_new_at     TIMESTAMPTZ,
    p_ch_insert      BOOLEAN,
    p_ch_id          TEXT,
    p_ch_version     BIGINT,
    p_ch_expires     TIMESTAMPTZ,
    p_ch_record      TEXT,
    p_ch_expected    BIGINT,
    p_dev_account    TEXT,
    p_dev_id         TEXT,
    p_dev_version    BIGINT,
    p_dev_expires    TIMESTAMPTZ,
    p_dev_record     TEXT,
    p_book_account   TEXT,
    p_book_version   BIGINT,
    p_book_record    TEXT,
    p_book_expected  BIGINT,
    p_claim          TEXT[],
    p_release        TEXT[],
    p_locks          BIGINT[],
    -- The record checked, not written: NULL account = no check.
    p_check_account  TEXT,
    p_check_version  BIGINT,
    OUT o_outcome    TEXT,
    OUT o_index      INTEGER,
    OUT o_count      BIGINT,
    OUT o_resets_at  TIMESTAMPTZ
)
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
    v_version BIGINT;
BEGIN
    PERFORM 1 FROM ninsho_meta WHERE key = 'initialised';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'ninsho: the store is not initialised' USING ERRCODE = 'NSC03';
    END IF;

    SELECT c.o_outcome, c.o_index, c.o_count, c.o_resets_at
    INTO o_outcome, o_index, o_count, o_resets_at
    FROM ninsho_commit(
        p_hit_keys, p_hit_resets, p_hit_max, p_now,
        p_run_account, p_run_old_count, p_run_old_at, p_run_new_count, p_run_new_at,
        p_ch_insert, p_ch_id, p_ch_version, p_ch_expires, p_ch_record, p_ch_expected,
        p_dev_account, p_dev_id, p_dev_version, p_dev_expires, p_dev_record,
        p_book_account, p_book_version, p_book_record, p_book_expected,
        p_claim, p_release, p_locks) AS c;

    IF o_outcome = 'done' AND p_check_account IS NOT NULL THEN
        SELECT version INTO v_version
        FROM ninsho_contact_books
        WHERE account = p_check_account
        FOR SHARE;
        IF v_version IS DISTINCT FROM p_check_version THEN
            RAISE EXCEPTION 'ninsho: the account record changed' USING ERRCODE = 'NSC01';
        END IF;
    END IF;
END
$$;
