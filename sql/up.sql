-- membership-notifier: up migration (schema version 3).
--
-- Runs as plain SQL, the same text through `psql -v ON_ERROR_STOP=1 -f sql/up.sql` and through
-- `membership-notifier migrate up`. One transaction; running it again changes nothing.
--
-- The mapping onto the application's schema comes from these settings, read once here and
-- remembered in membership_notifier.settings (a later run without them keeps what is stored):
--   membership_notifier.member_table     default public.channel_members
--   membership_notifier.channel_column   default channel_id
--   membership_notifier.user_column      default user_id
--   membership_notifier.xtype_column     default none: xType is null
--   membership_notifier.channels_table   when set, xType is <channels_table>.<xtype_column>
--   membership_notifier.channels_key     looked up by channel id in this column (default id)
-- With psql: psql -c "SET membership_notifier.member_table = 'app.members'" -f sql/up.sql
--
-- The application pays for this in its own transactions, so the triggers are built to add no
-- new way for them to fail, block or deadlock: they only INSERT into an append-only log
-- (no unique key but a sequence), read nothing that others lock, and run as SECURITY DEFINER
-- so the application role needs no grants (with every name in them schema-qualified instead of
-- a pinned search_path, which would cost every call). They NOTIFY only while a sidecar waits.
-- They are also built to cost little: one plain INSERT into the log per statement (per moved
-- row of an UPDATE), no constraint to check on it (see bench/: the statement triggers, time claim in a setting and
-- EXISTS check of schema version 1 cost the application a third of its durable writes; a CHECK
-- on the log and a SET search_path clause were 45% of what the trigger cost per row: 10.4
-- against 5.8 us). Which changes are logged by statement triggers and which by row triggers:
-- install_triggers() below, and docs/design.md.

BEGIN;
-- Two migrations at once would race on CREATE ... IF NOT EXISTS.
DO $$ BEGIN PERFORM pg_advisory_xact_lock(hashtext('membership_notifier.migrate')); END $$;

CREATE SCHEMA IF NOT EXISTS membership_notifier;
REVOKE ALL ON SCHEMA membership_notifier FROM PUBLIC;

CREATE TABLE IF NOT EXISTS membership_notifier.settings (
  singleton      boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  -- 1: statement triggers, times claimed in a setting; 2: row triggers, waiting() flag;
  -- 3: statement triggers over transition tables for INSERT and DELETE, one wake-up a statement.
  schema_version integer NOT NULL,
  -- Identifies this log in every offset, so that an offset from another database (or from
  -- before a dump and restore, where transaction ids start over) is refused, not misread.
  log_id         uuid NOT NULL DEFAULT gen_random_uuid(),
  member_table   text NOT NULL,
  channel_column text NOT NULL,
  user_column    text NOT NULL,
  xtype_column   text,
  channels_table text,
  channels_key   text,
  -- Every log row pruned so far belongs to a transaction id <= pruned_through: an offset whose
  -- snapshot does not already cover it can no longer be resumed exactly.
  pruned_through xid8 NOT NULL DEFAULT '0'
);

-- The log is the truth; NOTIFY only wakes the sidecar. Rows are never updated.
CREATE TABLE IF NOT EXISTS membership_notifier.event_log (
  id          bigint GENERATED ALWAYS AS IDENTITY,
  xid         xid8 NOT NULL DEFAULT pg_current_xact_id(),
  -- joined, left, truncated. No CHECK: the triggers are its only writers, and a CHECK is
  -- re-read from the catalog for every INSERT a trigger runs (about 2 us a row here).
  op          "char" NOT NULL,
  channel_id  text,
  user_id     text,
  xtype       text,
  -- clock_timestamp() of the change. Rows of one transaction may share a microsecond; the
  -- time a client sees is made distinct and increasing by id within the transaction when the
  -- log is read (the sidecar: event.h, distinct_times; replays: the same rule in SQL), which
  -- costs the application's write nothing.
  occurred_at timestamptz NOT NULL,
  -- One index serves both the commit-safe cursor (ranges of xid) and replica identity;
  -- a second one would cost every application write.
  PRIMARY KEY (xid, id)
);
-- Earlier versions had CHECK (op IN ('j', 'l', 't')): see above. Dropped only where present,
-- since ALTER TABLE locks the log against the triggers' inserts.
DO $$ BEGIN
  IF EXISTS (SELECT FROM pg_constraint WHERE conrelid = 'membership_notifier.event_log'::regclass
                                         AND conname = 'event_log_op_check') THEN
    ALTER TABLE membership_notifier.event_log DROP CONSTRAINT event_log_op_check;
  END IF;
END $$;

-- Sidecars waiting for a wake-up (adaptive mode), one row each. Unlogged: it is state of live
-- processes. The triggers do not read it: they call waiting(), which set_waiting() below
-- redefines to say whether any sidecar waits. Declared IMMUTABLE, it is folded into the
-- triggers' cached plans as a constant, and PostgreSQL invalidates those plans when it is
-- redefined: the check costs the application's writes nothing measurable, where reading a
-- sequence's value cost 13% of CPU-bound write throughput (its page is locked exclusively).
-- A backend takes the new definition at its next new lock (first write to the log in a
-- transaction), so a transaction whose check missed an arm already had its id then: the
-- sidecar's settling after an arm covers it (event_log_reader.cpp).
CREATE UNLOGGED TABLE IF NOT EXISTS membership_notifier.listener (
  backend_pid integer PRIMARY KEY,
  waiting     boolean NOT NULL DEFAULT false
);
-- The key that authenticates wake-ups: NOTIFY and LISTEN need no privilege, so any role that can
-- connect could otherwise speak on the sidecar's channel or read it. A wake-up carries nothing
-- but a position and an HMAC-SHA256 of it under this key (notify_row()); the sidecar acts only
-- on those it can verify. Readable by the owner and the sidecar's role (grant_sidecar()), by
-- nobody else. The pads are HMAC's K xor ipad / opad, kept so the triggers hash without a loop.
CREATE TABLE IF NOT EXISTS membership_notifier.wake_key (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  key       bytea NOT NULL,
  ipad      bytea NOT NULL,
  opad      bytea NOT NULL
);
REVOKE ALL ON membership_notifier.wake_key FROM PUBLIC;
DO $$
DECLARE
  k bytea;
  i bytea := '\x'::bytea;
  o bytea := '\x'::bytea;
BEGIN
  IF NOT EXISTS (SELECT FROM membership_notifier.wake_key) THEN
    -- 366 bits from the server's strong random source (gen_random_uuid), hashed to 32 bytes.
    k := sha256(convert_to(gen_random_uuid()::text || gen_random_uuid()::text || gen_random_uuid()::text, 'UTF8'));
    FOR n IN 0..63 LOOP
      i := i || set_byte('\x00'::bytea, 0, (CASE WHEN n < 32 THEN get_byte(k, n) ELSE 0 END) # 54);
      o := o || set_byte('\x00'::bytea, 0, (CASE WHEN n < 32 THEN get_byte(k, n) ELSE 0 END) # 92);
    END LOOP;
    INSERT INTO membership_notifier.wake_key (key, ipad, opad) VALUES (k, i, o);
  END IF;
END $$;

-- How far each timeline's history is known to reach on this server: `through` is the xmax of a
-- snapshot taken by a sidecar on that timeline, once it had delivered what that snapshot saw.
-- After a failover, the row of the old timeline holds the last mark that the new primary
-- received: what a sidecar delivered up to it is here, what it delivered past it may be lost
-- (then offsets from past it are not resumed, and clients get a snapshot). Written by
-- mark_delivered().
CREATE TABLE IF NOT EXISTS membership_notifier.delivered (
  timeline integer PRIMARY KEY,
  through  xid8 NOT NULL
);

DO $$ BEGIN
  IF to_regprocedure('membership_notifier.waiting()') IS NULL THEN
    CREATE FUNCTION membership_notifier.waiting() RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT false';
  END IF;
  -- Helpers of earlier versions of this migration, now gone or written out in the triggers.
  IF to_regprocedure('membership_notifier.claim_time(bigint)') IS NOT NULL THEN
    DROP FUNCTION membership_notifier.claim_time(bigint);
  END IF;
  IF to_regprocedure('membership_notifier.wake()') IS NOT NULL THEN
    DROP FUNCTION membership_notifier.wake();
  END IF;
  IF to_regclass('membership_notifier.waiting_listeners') IS NOT NULL THEN
    DROP SEQUENCE membership_notifier.waiting_listeners;
  END IF;
  IF to_regprocedure('membership_notifier.listener_gone(integer)') IS NOT NULL THEN
    DROP FUNCTION membership_notifier.listener_gone(integer);
  END IF;
END $$;

-- Whether a listener row's sidecar is still connected (its backend is in the activity array):
-- set_waiting() drops the rows of those that are not.
CREATE OR REPLACE FUNCTION membership_notifier.backend_alive(pid integer) RETURNS boolean
LANGUAGE sql STABLE AS 'SELECT EXISTS (SELECT FROM pg_catalog.pg_stat_get_activity(pid))';

-- Whether some sidecar waits and is still there: the writers' look before a NOTIFY (notify_row(),
-- on_truncate()), where it must be cheap. A waiting sidecar holds the session advisory lock (this
-- key, its backend pid) from its first set_waiting(true) until it disconnects, so a shared try on
-- that key fails while it is there. The try never waits; where it succeeds (that sidecar is gone)
-- the writer holds the shared lock until its commit, which only a new sidecar that got the same
-- pid would wait for, briefly, when it arms. backend_alive() instead reads the activity array,
-- which pg_stat_get_activity() copies whole once per transaction: 30 us at max_connections 200,
-- and after a crash that left the mark set, in every membership commit (they kept a third of
-- their throughput; with the lock, 0.63x).
CREATE OR REPLACE FUNCTION membership_notifier.sidecar_waits() RETURNS boolean
LANGUAGE sql VOLATILE AS $$
  SELECT EXISTS (SELECT FROM membership_notifier.listener w
                  WHERE w.waiting
                    AND NOT pg_catalog.pg_try_advisory_xact_lock_shared(
                              pg_catalog.hashtext('membership_notifier.listener'), w.backend_pid))
$$;

-- A sidecar says whether it waits for a NOTIFY; returns how many wait. Recounts under a lock,
-- so that sidecars arming and disarming at once leave the right answer; rows of sidecars that
-- died are dropped first, so a crashed instance does not keep every write notifying. Redefines
-- waiting() only when the answer changes.
CREATE OR REPLACE FUNCTION membership_notifier.set_waiting(w boolean) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  n bigint;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('membership_notifier.waiting'));
  IF w THEN
    DELETE FROM membership_notifier.listener l WHERE NOT membership_notifier.backend_alive(l.backend_pid);
    -- Held until this session ends (see sidecar_waits()); taking it again only counts up.
    PERFORM pg_advisory_lock(hashtext('membership_notifier.listener'), pg_backend_pid());
  END IF;
  INSERT INTO membership_notifier.listener (backend_pid, waiting) VALUES (pg_backend_pid(), w)
  ON CONFLICT (backend_pid) DO UPDATE SET waiting = w;
  SELECT count(*) INTO n FROM membership_notifier.listener WHERE waiting;
  IF (n > 0) IS DISTINCT FROM (SELECT p.prosrc = 'SELECT true' FROM pg_proc p
                                WHERE p.oid = 'membership_notifier.waiting()'::regprocedure) THEN
    EXECUTE format('CREATE OR REPLACE FUNCTION membership_notifier.waiting() RETURNS boolean '
                   'LANGUAGE sql IMMUTABLE AS %L', CASE WHEN n > 0 THEN 'SELECT true' ELSE 'SELECT false' END);
  END IF;
  RETURN n;
END $$;

-- How many sessions are queued on the lock that every notifying commit takes and holds through
-- its WAL flush (a lock on the database object, so the wait event is Lock/object; ordinary work
-- waits for no other such lock). More than one means the NOTIFYs now serialise the
-- application's commits: the adaptive sidecar stops waiting for them at once, whatever its rate
-- limit. SECURITY DEFINER: other roles' wait events are hidden from a role without
-- pg_read_all_stats (if the owner cannot see them either, this counts 0 and only the rate
-- limit applies).
CREATE OR REPLACE FUNCTION membership_notifier.notify_lock_waiters() RETURNS integer
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT count(*)::integer FROM pg_stat_get_activity(NULL) a
   WHERE a.wait_event_type = 'Lock' AND a.wait_event = 'object'
$$;

-- Of these transaction ids (the ones running when a sidecar armed), those of sessions and prepared
-- transactions in other databases of the cluster. They cannot write this database's log, so
-- the sidecar need not wait for them before it trusts its wake-ups (settling,
-- event_log_reader.cpp): transaction ids are cluster-wide, and one left open in another database
-- kept the fast path shut for as long as it stayed open. Only ids seen in another database are
-- returned; one it cannot place is waited for, as before. Ids match by their low 32 bits
-- (pg_stat_activity and pg_prepared_xacts show xid, not xid8), which is exact for transactions
-- still running. SECURITY DEFINER like notify_lock_waiters().
CREATE OR REPLACE FUNCTION membership_notifier.other_databases_xids(xids xid8[]) RETURNS xid8[]
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT coalesce(array_agg(x), '{}') FROM unnest(xids) x
   WHERE x::text::bigint % 4294967296 IN (
           -- No database (a background process): it cannot write a table either.
           SELECT a.backend_xid::text::bigint FROM pg_stat_get_activity(NULL) a
            WHERE a.backend_xid IS NOT NULL
              AND a.datid IS DISTINCT FROM (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
           UNION ALL
           SELECT p.transaction::text::bigint FROM pg_prepared_xacts p WHERE p.database <> current_database())
$$;

-- The wake-up's payload: '<xid>.<id>.<hex HMAC-SHA256 of "<xid>.<id>" under wake_key>'. It names
-- a log row and nothing of its content (other roles can LISTEN), and only a holder of the key
-- can make one that the sidecar acts on. Runs as the triggers' owner (they are SECURITY DEFINER).
-- PL/pgSQL, not SQL: it runs in every commit that wakes a sidecar, and a SQL function that reads
-- a table is planned again in each transaction (PL/pgSQL keeps its plan for the session); a
-- fifth of a one-row INSERT's time while a sidecar waits. No SET clause (its GUC save and restore
-- costs every call), so, as in the triggers, every name is qualified and nothing resolves
-- through the writer's search_path.
CREATE OR REPLACE FUNCTION membership_notifier.wake_payload(p_xid xid8, p_id bigint)
RETURNS text LANGUAGE plpgsql STABLE AS $$
DECLARE
  m pg_catalog.text := p_xid::pg_catalog.text OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) p_id::pg_catalog.text;
  payload pg_catalog.text;
BEGIN
  SELECT m OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) pg_catalog.encode(pg_catalog.sha256(
           k.opad OPERATOR(pg_catalog.||) pg_catalog.sha256(k.ipad OPERATOR(pg_catalog.||) pg_catalog.convert_to(m, 'UTF8'))),
           'hex')
    INTO payload FROM membership_notifier.wake_key k;
  RETURN payload;
END $$;
REVOKE ALL ON FUNCTION membership_notifier.wake_payload(xid8, bigint) FROM PUBLIC;

-- Logs one change and wakes the waiting sidecars (the triggers' path while one waits; the usual
-- path, the bare INSERT, is written out in the triggers themselves). The wake-up only says that
-- a change committed: the sidecar reads the log, which stays the one source of what it delivers.
-- waiting() says true until some sidecar calls set_waiting() again, also after the last waiting
-- one died (a clean stop clears it): then nobody is woken, and a NOTIFY would only make every
-- membership commit wait its turn for the lock for as long as no sidecar runs. So this path
-- NOTIFYs only once it has seen a waiting sidecar still there (sidecar_waits()); the row is
-- logged either way, and a sidecar that comes back reads it from the log.
CREATE OR REPLACE FUNCTION membership_notifier.notify_row(p_op "char", p_channel text, p_user text, p_xtype text)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r_xid xid8;
  r_id bigint;
BEGIN
  INSERT INTO membership_notifier.event_log AS l (op, channel_id, user_id, xtype, occurred_at)
  VALUES (p_op, p_channel, p_user, p_xtype, clock_timestamp())
  RETURNING l.xid, l.id INTO r_xid, r_id;
  IF membership_notifier.sidecar_waits() THEN
    PERFORM pg_notify('membership_notifier', membership_notifier.wake_payload(r_xid, r_id));
  END IF;
END $$;
REVOKE ALL ON FUNCTION membership_notifier.notify_row("char", text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION membership_notifier.backend_alive(integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION membership_notifier.sidecar_waits() FROM PUBLIC;

-- schema.table, quoted where needed, whatever the search_path.
CREATE OR REPLACE FUNCTION membership_notifier.qualified(t regclass) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT format('%I.%I', n.nspname, c.relname)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = t
$$;

-- The SQL expression for a row's xType: none, a column of the row, or a column of the
-- channels table looked up by the row's channel id. Every type, function and operator in it is
-- schema-qualified: the triggers run it as their owner under the writer's search_path (see
-- install_triggers).
CREATE OR REPLACE FUNCTION membership_notifier.xtype_expr(
  row_alias text, p_channel text, p_xtype text, p_channels regclass, p_key text)
RETURNS text LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT CASE
    WHEN p_xtype IS NULL THEN 'NULL::pg_catalog.text'
    WHEN p_channels IS NULL THEN format('%s.%I::pg_catalog.text', row_alias, p_xtype)
    -- LIMIT 1: a channels key that is not unique must not make the application's write fail.
    -- A channel deleted in this transaction (members leaving by cascade) is gone from the
    -- table by the time its members' triggers look: its xType was remembered on the way out.
    -- (NULLIF is not used: it looks its = operator up in the search_path.)
    ELSE format('coalesce((SELECT c.%I::pg_catalog.text FROM %s c WHERE c.%I OPERATOR(pg_catalog.=) %s.%I LIMIT 1), '
                '(SELECT CASE WHEN g OPERATOR(pg_catalog.<>) '''' THEN '
                'g::pg_catalog.jsonb OPERATOR(pg_catalog.->>) %s.%I::pg_catalog.text END '
                'FROM pg_catalog.current_setting(''membership_notifier.gone_channels'', true) g))',
                p_xtype, p_channels, p_key, row_alias, p_channel, row_alias, p_channel)
  END
$$;

-- Builds the trigger functions for one mapping. Column names are baked into the function
-- bodies (no dynamic SQL per row); the bodies are test-run once, so a mapping mistake fails
-- here, in the migration, not later in the application's transactions.
CREATE OR REPLACE FUNCTION membership_notifier.install_triggers(
  p_table regclass, p_channel text, p_user text, p_xtype text, p_channels regclass, p_key text,
  p_recreate boolean)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp SET client_min_messages = warning AS $install$
DECLARE
  xt_new text;
  xt_old text;
  body text;
  -- Whether to wake a sidecar: one waits, and the queue is far from full. One text for all
  -- the bodies below, so its names stay qualified in one place.
  wake_when constant text := 'membership_notifier.waiting() AND '
    'pg_catalog.pg_notification_queue_usage() OPERATOR(pg_catalog.<) 0.5';
  -- INSERT and DELETE by statement triggers, or by row triggers (below).
  per_statement boolean;
  insert_fn text;  -- the functions' names: they are made below
  delete_fn text;
  rejoin text;
BEGIN
  xt_new := membership_notifier.xtype_expr('NEW', p_channel, p_xtype, p_channels, p_key);
  xt_old := membership_notifier.xtype_expr('OLD', p_channel, p_xtype, p_channels, p_key);

  -- INSERT and DELETE are logged by statement triggers over transition tables: one INSERT ...
  -- SELECT into the log and at most one NOTIFY per statement, where row triggers cost a call,
  -- an INSERT and a NOTIFY per row (bench/results/2026-12-06-bulk-statements.md: a statement
  -- of many rows costs far less per row; one of one row a little more). A transition
  -- table holds exactly the rows the statement inserted or deleted: none skipped by ON CONFLICT
  -- DO NOTHING, the inserted ones of an ON CONFLICT DO UPDATE, every row of a COPY, and the
  -- rows a foreign key's ON DELETE CASCADE removed (for the whole original statement, fired at
  -- its end). Statement triggers fire at the end of their statement, so an earlier statement's
  -- rows get lower ids than a later one's. Within one statement, a pair is deleted only as the
  -- row that was there before it, and inserted only as a new row, so when both happen (a MERGE,
  -- or a WITH ... DELETE feeding an INSERT) the leave comes first, and PostgreSQL fires the
  -- DELETE's statement trigger before the INSERT's there too.
  -- Row triggers remain where a statement trigger would miss rows: on a partitioned table, a
  -- partition, or a table in an inheritance tree. A statement trigger fires only for the table
  -- a statement names, so a write into a partition directly (or, for a partition or child,
  -- through its parent) would go unlogged; row triggers on a partitioned table are cloned to
  -- every partition, present and future.
  per_statement := EXISTS (SELECT FROM pg_class c WHERE c.oid = p_table AND c.relkind = 'r'
                                                  AND NOT c.relispartition AND NOT c.relhassubclass)
                   AND NOT EXISTS (SELECT FROM pg_inherits i WHERE i.inhrelid = p_table);
  insert_fn := CASE WHEN per_statement THEN 'membership_notifier.on_insert_statement()'
                    ELSE 'membership_notifier.on_insert()' END;
  delete_fn := CASE WHEN per_statement THEN 'membership_notifier.on_delete_statement()'
                    ELSE 'membership_notifier.on_delete()' END;

  -- Row triggers for INSERT and DELETE, where statement triggers cannot be used. Rows skipped
  -- by ON CONFLICT DO NOTHING fire nothing; rows changed by cascades and COPY fire like any
  -- other.
  -- While a sidecar waits, the row is logged by notify_row(), which also wakes it; otherwise the
  -- trigger is the INSERT alone. The check may come first: an AFTER trigger runs once the row is
  -- written, so the transaction already has its id (the sidecar's settling after an arm relies
  -- on that).
  -- Written out in each body rather than called: these run in every application write.
  -- SECURITY DEFINER without SET search_path: a SET clause costs every call a GUC save and
  -- restore, about 2.7 us a row here, a quarter of what the trigger cost with it. So these
  -- bodies name every relation, type, function and operator with its schema, and nothing in them
  -- resolves through the writer's search_path (test: NoNewFailureMode.AWriterWhoseSearchPath…).
  -- The functions they call keep their SET clause.
  FOREACH body IN ARRAY ARRAY['insert', 'delete'] LOOP
    EXECUTE format($f$
      CREATE OR REPLACE FUNCTION membership_notifier.on_%1$s() RETURNS trigger
      LANGUAGE plpgsql SECURITY DEFINER AS $b$
      BEGIN
        IF %7$s THEN
          PERFORM membership_notifier.notify_row(%2$L, %6$s.%3$I::pg_catalog.text,
                                                 %6$s.%4$I::pg_catalog.text, %5$s);
        ELSE
          INSERT INTO membership_notifier.event_log (op, channel_id, user_id, xtype, occurred_at)
          VALUES (%2$L, %6$s.%3$I::pg_catalog.text, %6$s.%4$I::pg_catalog.text, %5$s,
                  pg_catalog.clock_timestamp());
        END IF;
        RETURN NULL;
      END $b$ $f$, body, CASE body WHEN 'insert' THEN 'j' ELSE 'l' END, p_channel, p_user,
      CASE body WHEN 'insert' THEN xt_new ELSE xt_old END,
      CASE body WHEN 'insert' THEN 'NEW' ELSE 'OLD' END, wake_when);
  END LOOP;

  -- The statement triggers. Their bodies follow the row triggers' rules (qualified names, no
  -- SET clause, the wake-up check first: an AFTER STATEMENT trigger runs once the statement's
  -- rows are written, so a transaction that logs anything has its id by then). The rows are
  -- read from the transition table under the alias r (NEW and OLD are PL/pgSQL's own names in a
  -- trigger), in the order the statement changed them. While a sidecar waits, the statement's
  -- highest log id is named in one wake-up, in the payload that notify_row() sends for a row; a
  -- statement that changed nothing logs nothing and wakes nobody.
  -- One order they cannot keep by themselves: a statement (a MERGE, a WITH query) that deletes
  -- a pair's row and moves another row into that pair by UPDATE. The UPDATE's row trigger logs
  -- that join before the DELETE's statement trigger logs the leave, which would leave the pair
  -- a non-member in the log. So the UPDATE trigger marks its transaction (moved_in), and the
  -- DELETE's statement trigger, seeing the mark, logs a join again, after its leaves, for each
  -- deleted pair that is in the table at the statement's end (made again within it), and clears
  -- the mark. Where an INSERT of the same statement made the pair again, its join follows: a
  -- second join of a member, which changes nothing for a client. Without a moving UPDATE in the
  -- transaction this costs the DELETE one look at a setting.
  rejoin := format($r$
        IF pg_catalog.current_setting('membership_notifier.moved_in', true) OPERATOR(pg_catalog.=) 't' THEN
          PERFORM pg_catalog.set_config('membership_notifier.moved_in', '', true);
          WITH again AS (
            INSERT INTO membership_notifier.event_log AS l (op, channel_id, user_id, xtype, occurred_at)
            SELECT 'j', t.%1$I::pg_catalog.text, t.%2$I::pg_catalog.text, %3$s, pg_catalog.clock_timestamp()
              FROM membership_notifier_deleted r JOIN %4$s t
                ON t.%1$I OPERATOR(pg_catalog.=) r.%1$I AND t.%2$I OPERATOR(pg_catalog.=) r.%2$I
            RETURNING l.id)
          SELECT GREATEST(last_id, pg_catalog.max(again.id)) INTO last_id FROM again;
        END IF;$r$, p_channel, p_user, membership_notifier.xtype_expr('t', p_channel, p_xtype, p_channels, p_key),
    p_table);
  FOREACH body IN ARRAY ARRAY['insert', 'delete'] LOOP
    EXECUTE format($f$
      CREATE OR REPLACE FUNCTION membership_notifier.on_%1$s_statement() RETURNS trigger
      LANGUAGE plpgsql SECURITY DEFINER AS $b$
      DECLARE
        last_id bigint;
      BEGIN
        IF %7$s THEN
          WITH logged AS (
            INSERT INTO membership_notifier.event_log AS l (op, channel_id, user_id, xtype, occurred_at)
            SELECT %2$L, r.%3$I::pg_catalog.text, r.%4$I::pg_catalog.text, %5$s, pg_catalog.clock_timestamp()
              FROM %6$I r
            RETURNING l.id)
          SELECT pg_catalog.max(logged.id) INTO last_id FROM logged;%8$s
          IF last_id IS NOT NULL AND membership_notifier.sidecar_waits() THEN
            PERFORM pg_catalog.pg_notify('membership_notifier',
              membership_notifier.wake_payload(pg_catalog.pg_current_xact_id(), last_id));
          END IF;
        ELSE
          INSERT INTO membership_notifier.event_log (op, channel_id, user_id, xtype, occurred_at)
          SELECT %2$L, r.%3$I::pg_catalog.text, r.%4$I::pg_catalog.text, %5$s, pg_catalog.clock_timestamp()
            FROM %6$I r;%8$s
        END IF;
        RETURN NULL;
      END $b$ $f$, body, CASE body WHEN 'insert' THEN 'j' ELSE 'l' END, p_channel, p_user,
      membership_notifier.xtype_expr('r', p_channel, p_xtype, p_channels, p_key),
      CASE body WHEN 'insert' THEN 'membership_notifier_inserted' ELSE 'membership_notifier_deleted' END,
      wake_when, CASE body WHEN 'delete' THEN rejoin ELSE '' END);
  END LOOP;

  -- UPDATE: a row trigger, also on a plain table. Its WHEN clause keeps it from firing, at
  -- almost no cost, for the updates that leave the pair alone, which many applications make
  -- often (a member's role, a last-read mark). A statement trigger can have no WHEN clause, and
  -- one with transition tables can have no column list (UPDATE OF): it would copy every row of
  -- every UPDATE of the table into its transition tables and run for each statement. Its
  -- transition tables would not say which old row became which new one either.
  -- Leave first, then join: ids order them.
  EXECUTE format($f$
    CREATE OR REPLACE FUNCTION membership_notifier.on_update() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER AS $b$
    BEGIN
      -- The mark the DELETE's statement trigger looks for (above).
      IF coalesce(pg_catalog.current_setting('membership_notifier.moved_in', true), '') OPERATOR(pg_catalog.<>) 't' THEN
        PERFORM pg_catalog.set_config('membership_notifier.moved_in', 't', true);
      END IF;
      IF %5$s THEN
        PERFORM membership_notifier.notify_row('l', OLD.%1$I::pg_catalog.text, OLD.%2$I::pg_catalog.text, %3$s);
        PERFORM membership_notifier.notify_row('j', NEW.%1$I::pg_catalog.text, NEW.%2$I::pg_catalog.text, %4$s);
      ELSE
        INSERT INTO membership_notifier.event_log (op, channel_id, user_id, xtype, occurred_at)
        VALUES ('l', OLD.%1$I::pg_catalog.text, OLD.%2$I::pg_catalog.text, %3$s, pg_catalog.clock_timestamp());
        INSERT INTO membership_notifier.event_log (op, channel_id, user_id, xtype, occurred_at)
        VALUES ('j', NEW.%1$I::pg_catalog.text, NEW.%2$I::pg_catalog.text, %4$s, pg_catalog.clock_timestamp());
      END IF;
      RETURN NULL;
    END $b$ $f$, p_channel, p_user, xt_old, xt_new, wake_when);

  EXECUTE format($f$
    CREATE OR REPLACE FUNCTION membership_notifier.on_truncate() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER AS $b$
    BEGIN
      INSERT INTO membership_notifier.event_log (op, occurred_at) VALUES ('t', pg_catalog.clock_timestamp());
      IF %1$s AND membership_notifier.sidecar_waits() THEN
        PERFORM pg_catalog.pg_notify('membership_notifier',
          membership_notifier.wake_payload(pg_catalog.pg_current_xact_id(), 0));
      END IF;
      RETURN NULL;
    END $b$ $f$, wake_when);

  -- Fail now, not in the application's first write, if a column or type does not fit (the
  -- equality is the DELETE's statement trigger's, above).
  EXECUTE format('SELECT %s, NEW.%I::pg_catalog.text, NEW.%I::pg_catalog.text FROM %s NEW WHERE false',
                 xt_new, p_channel, p_user, p_table);
  IF per_statement THEN
    EXECUTE format('SELECT FROM %1$s t WHERE t.%2$I OPERATOR(pg_catalog.=) t.%2$I AND t.%3$I OPERATOR(pg_catalog.=) t.%3$I'
                   ' AND false', p_table, p_channel, p_user);
  END IF;

  IF p_channels IS NOT NULL THEN
    EXECUTE format($f$
      CREATE OR REPLACE FUNCTION membership_notifier.on_channel_delete() RETURNS trigger
      LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $b$
      BEGIN
        PERFORM set_config('membership_notifier.gone_channels',
          (coalesce(nullif(current_setting('membership_notifier.gone_channels', true), ''), '{}')::jsonb
           || jsonb_build_object(OLD.%1$I::text, OLD.%2$I::text))::text, true);
        RETURN OLD;
      END $b$ $f$, p_key, p_xtype);
  END IF;

  -- Re-creating triggers locks the application's table: only do it when something changed,
  -- the kind of trigger included (an installation of schema version 2 has row triggers for
  -- INSERT and DELETE; a table that became a partition or joined an inheritance tree since the
  -- last run needs them back).
  IF NOT p_recreate AND (SELECT count(*) FROM pg_trigger WHERE tgrelid = p_table
                         AND tgname LIKE 'membership\_notifier\_%') = 4
     AND EXISTS (SELECT FROM pg_trigger WHERE tgrelid = p_table
                    AND tgname = 'membership_notifier_insert' AND tgfoid = insert_fn::regprocedure)
     AND EXISTS (SELECT FROM pg_trigger WHERE tgrelid = p_table
                    AND tgname = 'membership_notifier_delete' AND tgfoid = delete_fn::regprocedure)
     AND (p_channels IS NULL OR EXISTS (SELECT FROM pg_trigger WHERE tgrelid = p_channels
                                         AND tgname = 'membership_notifier_channel_gone')) THEN
    RETURN;
  END IF;
  IF p_channels IS NOT NULL THEN
    EXECUTE format('DROP TRIGGER IF EXISTS membership_notifier_channel_gone ON %s', p_channels);
    EXECUTE format('CREATE TRIGGER membership_notifier_channel_gone BEFORE DELETE ON %s FOR EACH ROW '
                   'EXECUTE FUNCTION membership_notifier.on_channel_delete()', p_channels);
  END IF;
  EXECUTE format('DROP TRIGGER IF EXISTS membership_notifier_insert ON %s', p_table);
  EXECUTE format('DROP TRIGGER IF EXISTS membership_notifier_delete ON %s', p_table);
  EXECUTE format('DROP TRIGGER IF EXISTS membership_notifier_update ON %s', p_table);
  EXECUTE format('DROP TRIGGER IF EXISTS membership_notifier_truncate ON %s', p_table);
  IF per_statement THEN
    EXECUTE format('CREATE TRIGGER membership_notifier_insert AFTER INSERT ON %s '
                   'REFERENCING NEW TABLE AS membership_notifier_inserted FOR EACH STATEMENT '
                   'EXECUTE FUNCTION %s', p_table, insert_fn);
    EXECUTE format('CREATE TRIGGER membership_notifier_delete AFTER DELETE ON %s '
                   'REFERENCING OLD TABLE AS membership_notifier_deleted FOR EACH STATEMENT '
                   'EXECUTE FUNCTION %s', p_table, delete_fn);
  ELSE
    EXECUTE format('CREATE TRIGGER membership_notifier_insert AFTER INSERT ON %s FOR EACH ROW '
                   'EXECUTE FUNCTION %s', p_table, insert_fn);
    EXECUTE format('CREATE TRIGGER membership_notifier_delete AFTER DELETE ON %s FOR EACH ROW '
                   'EXECUTE FUNCTION %s', p_table, delete_fn);
  END IF;
  EXECUTE format('CREATE TRIGGER membership_notifier_update AFTER UPDATE ON %s FOR EACH ROW '
                 'WHEN (OLD.%2$I IS DISTINCT FROM NEW.%2$I OR OLD.%3$I IS DISTINCT FROM NEW.%3$I) '
                 'EXECUTE FUNCTION membership_notifier.on_update()', p_table, p_channel, p_user);
  EXECUTE format('CREATE TRIGGER membership_notifier_truncate AFTER TRUNCATE ON %s '
                 'FOR EACH STATEMENT EXECUTE FUNCTION membership_notifier.on_truncate()', p_table);
END $install$;

-- A sidecar's mark that this timeline's history, as far as its snapshot now sees, is delivered
-- (see the table `delivered`); returns the timeline. With `durable`, the mark is also how the
-- sidecar makes the WAL durable before it delivers: its commit is then flushed, and every
-- commit it could see with it (synchronous_commit = off, for the application, leaves commits
-- visible before they are flushed; a crash would forget what a client had already been told).
-- Without, it is written in passing and may be lost, which only makes a failover look worse
-- than it was.
CREATE OR REPLACE FUNCTION membership_notifier.mark_delivered(durable boolean) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
  tl integer := ('x' OPERATOR(pg_catalog.||) pg_catalog.substr(
                   pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn()), 1, 8))::pg_catalog.bit(32)::integer;
BEGIN
  -- For the rest of this transaction, i.e. its commit. No SET clause on this function, hence
  -- every name qualified: a SET clause would undo this setting as the call returns.
  PERFORM pg_catalog.set_config('synchronous_commit', CASE WHEN durable THEN 'local' ELSE 'off' END, true);
  INSERT INTO membership_notifier.delivered AS d (timeline, through)
  VALUES (tl, pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot()))
  ON CONFLICT (timeline) DO UPDATE SET through = GREATEST(d.through, excluded.through);
  RETURN tl;
END $$;
REVOKE ALL ON FUNCTION membership_notifier.mark_delivered(boolean) FROM PUBLIC;

-- Prunes log rows older than max_age, a batch at a time, from one sidecar at a time. Deleting
-- old rows takes no lock that the application's inserts wait for. Returns rows deleted, or -1
-- when another session is already pruning.
-- It looks only at the oldest `batch` rows by the key, through its index, and deletes those of
-- them that are older than max_age. It used to ask for rows older than max_age in key order:
-- occurred_at has no index (one would cost every application write), so whenever fewer than a
-- batch were old, which is every run but a backlog's last, that read the whole log to find them
-- (0.4 s at 2 million rows, once a minute, on the application's database). Key order is
-- logging order but for a transaction that logs long after it took its id: its rows can be
-- young at the head while rows logged before them, behind them in key order, are old. Those wait
-- (only a batch of them per run) until the young ones age too: no longer than that transaction
-- held its id before logging.
-- SECURITY DEFINER: the sidecar's role needs EXECUTE on this, not DELETE on the log.
CREATE OR REPLACE FUNCTION membership_notifier.prune(max_age interval, batch integer DEFAULT 10000)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  deleted bigint;
  newest xid8;
BEGIN
  IF NOT pg_try_advisory_xact_lock(hashtext('membership_notifier.prune')) THEN
    RETURN -1;
  END IF;
  WITH oldest AS (
    SELECT xid, id, occurred_at FROM membership_notifier.event_log ORDER BY xid, id LIMIT batch
  ), doomed AS (
    SELECT xid, id FROM oldest WHERE occurred_at < clock_timestamp() - max_age
  ), gone AS (
    DELETE FROM membership_notifier.event_log e USING doomed d
    WHERE e.xid = d.xid AND e.id = d.id RETURNING e.xid
  )
  SELECT count(*), max(gone.xid) INTO deleted, newest FROM gone;
  IF newest IS NOT NULL THEN
    UPDATE membership_notifier.settings SET pruned_through = greatest(pruned_through, newest);
  END IF;
  RETURN deleted;
END $$;

-- Grants a role what the sidecar needs and nothing more: reading the log and the settings,
-- its own wake-up mark, pruning through the function above, and SELECT (only) on the
-- membership table and the channels table, for snapshots.
--   CREATE ROLE membership_notifier LOGIN PASSWORD '…';
--   SELECT membership_notifier.grant_sidecar('membership_notifier');
CREATE OR REPLACE FUNCTION membership_notifier.grant_sidecar(role_name name) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  s membership_notifier.settings;
BEGIN
  SELECT * INTO s FROM membership_notifier.settings;
  EXECUTE format('GRANT USAGE ON SCHEMA membership_notifier TO %I', role_name);
  EXECUTE format('GRANT SELECT ON membership_notifier.event_log, membership_notifier.settings, '
                 'membership_notifier.wake_key, membership_notifier.delivered TO %I', role_name);
  EXECUTE format('GRANT EXECUTE ON FUNCTION membership_notifier.set_waiting(boolean), '
                 'membership_notifier.notify_lock_waiters(), '
                 'membership_notifier.other_databases_xids(xid8[]), '
                 'membership_notifier.prune(interval, integer), '
                 'membership_notifier.mark_delivered(boolean), '
                 'membership_notifier.xtype_expr(text, text, text, regclass, text) TO %I', role_name);
  EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I',
                 (SELECT nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE c.oid = s.member_table::regclass), role_name);
  EXECUTE format('GRANT SELECT ON %s TO %I', s.member_table::regclass, role_name);
  IF s.channels_table IS NOT NULL THEN
    EXECUTE format('GRANT SELECT ON %s TO %I', s.channels_table::regclass, role_name);
  END IF;
END $$;
REVOKE ALL ON FUNCTION membership_notifier.grant_sidecar(name) FROM PUBLIC;
REVOKE ALL ON FUNCTION membership_notifier.prune(interval, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION membership_notifier.set_waiting(boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION membership_notifier.notify_lock_waiters() FROM PUBLIC;
REVOKE ALL ON FUNCTION membership_notifier.other_databases_xids(xid8[]) FROM PUBLIC;

-- Apply the mapping: explicit settings win, then what an earlier run stored, then defaults.
DO $apply$
DECLARE
  s membership_notifier.settings;
  want_table text;
  want_channel text;
  want_user text;
  want_xtype text;
  want_channels text;
  want_key text;
BEGIN
  SELECT * INTO s FROM membership_notifier.settings;
  want_table := coalesce(nullif(current_setting('membership_notifier.member_table', true), ''),
                         s.member_table, 'public.channel_members');
  want_channel := coalesce(nullif(current_setting('membership_notifier.channel_column', true), ''),
                           s.channel_column, 'channel_id');
  want_user := coalesce(nullif(current_setting('membership_notifier.user_column', true), ''),
                        s.user_column, 'user_id');
  -- xType settings: set (even to '') means "use this"; unset means "keep what is stored".
  want_xtype := CASE WHEN current_setting('membership_notifier.xtype_column', true) IS NULL
                     THEN s.xtype_column
                     ELSE nullif(current_setting('membership_notifier.xtype_column', true), '') END;
  want_channels := CASE WHEN current_setting('membership_notifier.channels_table', true) IS NULL
                        THEN s.channels_table
                        ELSE nullif(current_setting('membership_notifier.channels_table', true), '') END;
  want_key := coalesce(nullif(current_setting('membership_notifier.channels_key', true), ''),
                       s.channels_key, 'id');
  IF want_channels IS NOT NULL AND want_xtype IS NULL THEN
    RAISE EXCEPTION 'membership_notifier.channels_table needs membership_notifier.xtype_column';
  END IF;
  -- Canonical, schema-qualified spelling: "channel_members" and "public.channel_members" compare
  -- equal, and the stored name resolves under any search_path (functions here run with none).
  want_table := membership_notifier.qualified(want_table::regclass);
  want_channels := membership_notifier.qualified(want_channels::regclass);

  IF s.member_table IS NOT NULL AND s.member_table IS DISTINCT FROM want_table
     AND to_regclass(s.member_table) IS NOT NULL THEN
    EXECUTE format('DROP TRIGGER IF EXISTS membership_notifier_insert ON %s', s.member_table);
    EXECUTE format('DROP TRIGGER IF EXISTS membership_notifier_delete ON %s', s.member_table);
    EXECUTE format('DROP TRIGGER IF EXISTS membership_notifier_update ON %s', s.member_table);
    EXECUTE format('DROP TRIGGER IF EXISTS membership_notifier_truncate ON %s', s.member_table);
  END IF;
  IF s.channels_table IS NOT NULL AND s.channels_table IS DISTINCT FROM want_channels
     AND to_regclass(s.channels_table) IS NOT NULL THEN
    EXECUTE format('DROP TRIGGER IF EXISTS membership_notifier_channel_gone ON %s', s.channels_table);
  END IF;

  PERFORM membership_notifier.install_triggers(want_table::regclass, want_channel, want_user,
                                               want_xtype, want_channels::regclass, want_key,
    (s.schema_version, s.member_table, s.channel_column, s.user_column, s.xtype_column, s.channels_table, s.channels_key)
    IS DISTINCT FROM (3, want_table, want_channel, want_user, want_xtype, want_channels, want_key));

  INSERT INTO membership_notifier.settings AS t
    (schema_version, member_table, channel_column, user_column, xtype_column, channels_table, channels_key)
  VALUES (3, want_table, want_channel, want_user, want_xtype, want_channels, want_key)
  ON CONFLICT (singleton) DO UPDATE SET
    schema_version = 3, member_table = excluded.member_table,
    channel_column = excluded.channel_column, user_column = excluded.user_column,
    xtype_column = excluded.xtype_column, channels_table = excluded.channels_table,
    channels_key = excluded.channels_key
  WHERE (t.schema_version, t.member_table, t.channel_column, t.user_column, t.xtype_column,
         t.channels_table, t.channels_key) IS DISTINCT FROM
        (3, excluded.member_table, excluded.channel_column, excluded.user_column,
         excluded.xtype_column, excluded.channels_table, excluded.channels_key);
  RAISE NOTICE 'membership_notifier: triggers on % (channel %, user %, xType %)', want_table,
    want_channel, want_user,
    coalesce(want_channels || '.' || want_xtype, 'column ' || want_xtype, 'none');
END $apply$;

COMMIT;
