-- The floor of any trigger-written log: a bare PL/pgSQL row trigger that appends each inserted
-- row to a table shaped like membership_notifier.event_log (same columns, same key), and does
-- nothing else (no SECURITY DEFINER, no wake-up check, no NOTIFY). Part B measures it beside the
-- real triggers, so the cost of the log itself is visible apart from the cost of waking anyone.
CREATE SCHEMA IF NOT EXISTS bench_floor;
CREATE TABLE IF NOT EXISTS bench_floor.event_log (
  id          bigint GENERATED ALWAYS AS IDENTITY,
  xid         xid8 NOT NULL DEFAULT pg_current_xact_id(),
  op          "char" NOT NULL,
  channel_id  text,
  user_id     text,
  xtype       text,
  occurred_at timestamptz NOT NULL,
  PRIMARY KEY (xid, id)
);
CREATE OR REPLACE FUNCTION bench_floor.on_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO bench_floor.event_log (op, channel_id, user_id, xtype, occurred_at)
  VALUES ('j', NEW.channel_id, NEW.user_id, NULL, clock_timestamp());
  RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS bench_floor_insert ON public.channel_members;
CREATE TRIGGER bench_floor_insert AFTER INSERT ON public.channel_members
  FOR EACH ROW EXECUTE FUNCTION bench_floor.on_insert();
