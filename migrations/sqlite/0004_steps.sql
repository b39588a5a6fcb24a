-- ninsho SQLite schema, version 4: the initialisation marker.
--
-- Times are INTEGER nanoseconds since the Unix epoch (UTC), as in version 1.
-- Every statement is idempotent, so the file may also be applied by the
-- host's own migration tool.

-- The initialisation marker: one row, key 'initialised'. `SqliteStore::load`
-- and `SqliteStore::account_record` check it in the statement that reads
-- the records and fail with `NotInitialised` when it is gone, so tables
-- that were emptied (DELETE, a restore of an empty copy) answer errors
-- instead of "this account has two-step sign-in off".
--
-- The row is written only by the statement that creates the table (a
-- `CREATE TABLE … AS SELECT` does nothing at all when the table exists):
-- on a brand-new database, and on a database of version 3 being upgraded
-- (the one time it is written without an operator deciding so). Applying
-- this file again never writes it; once the table exists, only
-- `SqliteStore::initialise()` (an operator's deliberate act) does.
CREATE TABLE IF NOT EXISTS ninsho_meta AS
    SELECT CAST('initialised' AS TEXT) AS key,
           CAST(CAST(strftime('%s', 'now') AS INTEGER) * 1000000000 AS INTEGER) AS written_at;
CREATE UNIQUE INDEX IF NOT EXISTS ninsho_meta_key ON ninsho_meta (key);
