-- ninsho PostgreSQL schema, version 4: the initialisation marker and the
-- function that commits a journey step.
--
-- Names are unqualified: `PgStore::migrate` runs this file with
-- `search_path` set to the store's schema. Every statement is idempotent,
-- so the file may also be applied by the host's own migration tool; set
-- `search_path` to the schema of the other ninsho tables first (the
-- function keeps the `search_path` it was created under).

-- The initialisation marker: one row, key 'initialised'. `PgStore::load`
-- and `PgStore::account_record` check it in the statement that reads the
-- records and fail with `NotInitialised` when it is gone, so tables that
-- were emptied (TRUNCATE, DELETE, a restore of an empty backup) answer
-- errors instead of "this account has two-step sign-in off".
--
-- The row is written here only together with the table itself: on a
-- brand-new schema, and on a schema of version 3 being upgraded (the one
-- time it is written without an operator deciding so). Applying this file
-- again never writes it; once the table exists, only
-- `PgStore::initialise()` (an operator's deliberate act) does.
DO $$
BEGIN
    IF pg_catalog.to_regclass('ninsho_meta') IS NULL THEN
        CREATE TABLE ninsho_meta (
            key         TEXT        PRIMARY KEY,
            written_at  TIMESTAMPTZ NOT NULL
        );
        INSERT INTO ninsho_meta (key, written_at) VALUES ('initialised', now());
    END IF;
END
$$;

-- One journey step's writes, all or nothing, in one call (`PgStore::commit`,
-- a single `SELECT` in autocommit, so the call is one transaction).
--
-- 1. Each send counter is charged as `PgStore::hit` charges it, in order;
--    the first whose count passes its maximum ends the call with outcome
--    'limit' (its index from 0, its count and window end): the counters
--    charged so far stay, nothing else is written.
-- 2. Then each part is written by the statement that also checks its
--    condition (an `UPDATE`/`DELETE` on the expected version or run, an
--    `INSERT … ON CONFLICT DO NOTHING` where nothing may exist yet). A
--    statement that touches no row raises SQLSTATE NSC01 (a conflict); a
--    claim held by another account raises NSC02 with the claim's index
--    (from 0) as the DETAIL. Raising rolls back the whole call, counters
--    included. Conflicts are checked before claims, so a commit that is
--    both stale and claims a held key is a conflict.
-- 3. Outcome 'done'.
--
-- Row locks are taken in one order (counters in the caller's order, then
-- the failure run, the challenge, the device, the claim keys' advisory
-- locks in ascending order, the account record, the claims), and the
-- claim keys take the same advisory locks as `commit_account`.
CREATE OR REPLACE FUNCTION ninsho_commit(
    p_hit_keys       TEXT[],
    p_hit_resets     TIMESTAMPTZ[],
    p_hit_max        BIGINT[],
    p_now            TIMESTAMPTZ,
    -- The failure run: NULL account = no change; NULL counts = no run.
    p_run_account    TEXT,
    p_run_old_count  BIGINT,
    p_run_old_at     TIMESTAMPTZ,
    p_run_new_count  BIGINT,
    p_run_new_at     TIMESTAMPTZ,
    -- The challenge: NULL = none, true = insert, false = replace.
    p_ch_insert      BOOLEAN,
    p_ch_id          TEXT,
    p_ch_version     BIGINT,
    p_ch_expires     TIMESTAMPTZ,
    p_ch_record      TEXT,
    p_ch_expected    BIGINT,
    -- The device to insert: NULL account = none.
    p_dev_account    TEXT,
    p_dev_id         TEXT,
    p_dev_version    BIGINT,
    p_dev_expires    TIMESTAMPTZ,
    p_dev_record     TEXT,
    -- The account record: NULL account = none; NULL expected = first record.
    p_book_account   TEXT,
    p_book_version   BIGINT,
    p_book_record    TEXT,
    p_book_expected  BIGINT,
    p_claim          TEXT[],
    p_release        TEXT[],
    p_locks          BIGINT[],
    OUT o_outcome    TEXT,
    OUT o_index      INTEGER,
    OUT o_count      BIGINT,
    OUT o_resets_at  TIMESTAMPTZ
)
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
    v_count  BIGINT;
    v_resets TIMESTAMPTZ;
    v_rows   BIGINT;
    v_taken  BIGINT;
BEGIN
    -- 1. The send counters.
    FOR n IN 1 .. coalesce(cardinality(p_hit_keys), 0) LOOP
        INSERT INTO ninsho_counters AS t (key, count, resets_at)
        VALUES (p_hit_keys[n], 1, p_hit_resets[n])
        ON CONFLICT (key) DO UPDATE SET
            count = CASE WHEN t.resets_at <= p_now THEN 1
                    ELSE LEAST(t.count, 9223372036854775806) + 1 END,
            resets_at = CASE WHEN t.resets_at <= p_now THEN EXCLUDED.resets_at
                        ELSE t.resets_at END
        RETURNING t.count, t.resets_at INTO v_count, v_resets;
        IF v_count > p_hit_max[n] THEN
            o_outcome := 'limit';
            o_index := n - 1;
            o_count := v_count;
            o_resets_at := v_resets;
            RETURN;
        END IF;
    END LOOP;

    -- 2. The failure run, compared as a whole.
    IF p_run_account IS NOT NULL THEN
        IF p_run_old_count IS NULL AND p_run_new_count IS NULL THEN
            PERFORM 1 FROM ninsho_failures WHERE account = p_run_account;
            IF FOUND THEN
                RAISE EXCEPTION 'ninsho: the failure run changed' USING ERRCODE = 'NSC01';
            END IF;
        ELSE
            IF p_run_old_count IS NULL THEN
                INSERT INTO ninsho_failures (account, consecutive, last_failure_at)
                VALUES (p_run_account, p_run_new_count, p_run_new_at)
                ON CONFLICT (account) DO NOTHING;
            ELSIF p_run_new_count IS NULL THEN
                DELETE FROM ninsho_failures
                WHERE account = p_run_account
                  AND consecutive = p_run_old_count AND last_failure_at = p_run_old_at;
            ELSE
                UPDATE ninsho_failures
                SET consecutive = p_run_new_count, last_failure_at = p_run_new_at
                WHERE account = p_run_account
                  AND consecutive = p_run_old_count AND last_failure_at = p_run_old_at;
            END IF;
            GET DIAGNOSTICS v_rows = ROW_COUNT;
            IF v_rows = 0 THEN
                RAISE EXCEPTION 'ninsho: the failure run changed' USING ERRCODE = 'NSC01';
            END IF;
        END IF;
    END IF;

    -- The challenge.
    IF p_ch_insert IS NOT NULL THEN
        IF p_ch_insert THEN
            INSERT INTO ninsho_challenges (id, version, expires_at, record)
            VALUES (p_ch_id, p_ch_version, p_ch_expires, p_ch_record)
            ON CONFLICT (id) DO NOTHING;
        ELSE
            UPDATE ninsho_challenges
            SET version = p_ch_version, expires_at = p_ch_expires, record = p_ch_record
            WHERE id = p_ch_id AND version = p_ch_expected;
        END IF;
        GET DIAGNOSTICS v_rows = ROW_COUNT;
        IF v_rows = 0 THEN
            RAISE EXCEPTION 'ninsho: the challenge changed or exists' USING ERRCODE = 'NSC01';
        END IF;
    END IF;

    -- The device.
    IF p_dev_account IS NOT NULL THEN
        INSERT INTO ninsho_devices (account, id, version, expires_at, record)
        VALUES (p_dev_account, p_dev_id, p_dev_version, p_dev_expires, p_dev_record)
        ON CONFLICT (account, id) DO NOTHING;
        GET DIAGNOSTICS v_rows = ROW_COUNT;
        IF v_rows = 0 THEN
            RAISE EXCEPTION 'ninsho: the device exists' USING ERRCODE = 'NSC01';
        END IF;
    END IF;

    -- The account record and its claims, as `commit_account` writes them.
    IF p_book_account IS NOT NULL THEN
        PERFORM count(pg_catalog.pg_advisory_xact_lock(k))
        FROM unnest(p_locks) AS k;
        IF p_book_expected IS NULL THEN
            INSERT INTO ninsho_contact_books (account, version, record)
            VALUES (p_book_account, p_book_version, p_book_record)
            ON CONFLICT (account) DO NOTHING;
        ELSE
            UPDATE ninsho_contact_books
            SET version = p_book_version, record = p_book_record
            WHERE account = p_book_account AND version = p_book_expected;
        END IF;
        GET DIAGNOSTICS v_rows = ROW_COUNT;
        IF v_rows = 0 THEN
            RAISE EXCEPTION 'ninsho: the account record changed' USING ERRCODE = 'NSC01';
        END IF;

        SELECT min(c.pos) INTO v_taken
        FROM unnest(p_claim) WITH ORDINALITY AS c (claim_key, pos)
        JOIN ninsho_contact_claims AS h ON h.key = c.claim_key
        WHERE h.account <> p_book_account;
        IF v_taken IS NOT NULL THEN
            RAISE EXCEPTION 'ninsho: a claim is held by another account'
                USING ERRCODE = 'NSC02', DETAIL = (v_taken - 1)::text;
        END IF;

        DELETE FROM ninsho_contact_claims
        WHERE key = ANY (p_release) AND account = p_book_account;
        INSERT INTO ninsho_contact_claims (key, account)
        SELECT DISTINCT k, p_book_account FROM unnest(p_claim) AS k
        ON CONFLICT (key) DO NOTHING;
        -- Every claimed key must now be the account's; anything else means
        -- a claim changed hands outside the locks.
        PERFORM 1 FROM unnest(p_claim) AS k
        WHERE NOT EXISTS (
            SELECT 1 FROM ninsho_contact_claims AS h
            WHERE h.key = k AND h.account = p_book_account);
        IF FOUND THEN
            RAISE EXCEPTION 'ninsho: a claim changed hands' USING ERRCODE = 'NSC01';
        END IF;
    END IF;

    o_outcome := 'done';
END
$$;
