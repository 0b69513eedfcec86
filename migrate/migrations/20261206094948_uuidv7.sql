-- uuidv7: time-ordered UUID keys for the hot tables (item, item_execution,
-- item_state_history). Hand-written: CREATE OR REPLACE, so a replay on a dev
-- database never collides.
--
-- runledger_uuidv7() returns a UUID in the version 7 layout of RFC 9562:
--
--   bits   0-47  unix time in milliseconds, from clock_timestamp() (so rows
--                 that one statement inserts get the time each was made)
--   bits  48-51  version 7
--   bits  52-63  random (rand_a)
--   bits  64-65  variant 10
--   bits 66-127  random (rand_b)
--
-- It starts from gen_random_uuid() (version 4: 122 random bits, variant 10),
-- writes the 48-bit timestamp over its first six bytes and turns the version
-- nibble 0100 into 0111 by setting two bits (set_bit numbers the bits of a
-- bytea from the lowest bit of each byte: bits 52 and 53 are 0x10 and 0x20 of
-- byte 6). Keys made in one millisecond are in random order among
-- themselves; keys of later milliseconds sort after them, so new rows land on
-- the right-hand edge of the primary key and rows made together share heap
-- and index pages.
--
-- The body is one SELECT of one expression with no FROM, declared VOLATILE
-- like what it calls: PostgreSQL inlines it into the statement that calls it
-- (a column default, COPY, the history trigger's INSERT ... SELECT), so it
-- costs no function call. PostgreSQL 18 has uuidv7() built in; this one
-- works on 14 and later.
CREATE OR REPLACE FUNCTION runledger_uuidv7() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
  SELECT encode(
    set_bit(set_bit(
      overlay(uuid_send(gen_random_uuid())
        PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
        FROM 1 FOR 6),
      52, 1), 53, 1),
    'hex')::uuid
$$;

COMMENT ON FUNCTION runledger_uuidv7() IS
  'A version 7 (time-ordered) UUID: 48-bit unix milliseconds from clock_timestamp(), then random bits; inlinable.';
