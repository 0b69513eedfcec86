-- uuidv7_random: runledger_uuidv7() draws its random bits from random()
-- instead of gen_random_uuid(), and reads the clock as a double precision
-- date_part() instead of a numeric extract(). Hand-written; CREATE OR
-- REPLACE keeps the name, the layout and every caller (the key defaults of
-- item, item_execution and item_state_history, the history trigger).
--
-- Why: every item that runs makes at least two history rows, and each key
-- was the most expensive expression of its INSERT. Measured on the
-- development machine (psql, 1M rows of SELECT f() FROM generate_series):
--
--   gen_random_uuid() alone                     2.4 s   (OpenSSL's RNG per call)
--   the previous body (gen_random_uuid, numeric) 4.5-5.2 s
--   this body (random(), date_part)             0.53 s
--
-- The layout (RFC 9562, version 7) is unchanged:
--
--   bits   0-47  unix time in milliseconds, floor of clock_timestamp()
--   bits  48-51  version 7 (0x7000 in the first int8)
--   bits  52-63  rand_a: 12 random bits
--   bits  64-65  variant 10 (the sign bit of the second int8, and a 0)
--   bits 66-127  rand_b: 62 random bits, from two draws of 31
--
-- random() is PostgreSQL's per-session xoroshiro128** generator, seeded from
-- the operating system's strong random source when the session first calls
-- it; each call gives 52 random bits, of which this uses 12, 31 and 31: 74
-- random bits per key, as many as RFC 9562 asks of version 7. Keys are
-- identifiers, not secrets: what this gives up is unpredictability to
-- someone who sees many keys of one session, and a session that calls
-- setseed() gets repeatable keys (a repeat within one millisecond is refused
-- by the primary key; no row is ever overwritten).
--
-- Still one SELECT of one expression with no FROM: inlined into its callers.
-- PARALLEL RESTRICTED, as random() is (the previous body, on
-- gen_random_uuid(), was PARALLEL SAFE).
CREATE OR REPLACE FUNCTION runledger_uuidv7() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL RESTRICTED AS $$
  SELECT encode(
    int8send((floor(date_part('epoch', clock_timestamp()) * 1000)::int8 << 16)
      | 28672
      | floor(random() * 4096)::int8)
    || int8send((-9223372036854775808)::int8
      | (floor(random() * 2147483648)::int8 << 31)
      | floor(random() * 2147483648)::int8),
    'hex')::uuid
$$;

COMMENT ON FUNCTION runledger_uuidv7() IS
  'A version 7 (time-ordered) UUID: 48-bit unix milliseconds from clock_timestamp(), then 74 random bits from random(); inlinable.';
