-- A reference under the floor: the least log a trigger could write and still say who joined
-- what in which transaction. Transaction id, op, channel, user; no key to read it by, no id to
-- order it, no time. Not a design (the sidecar needs all three): a bound on what any
-- trigger-written log can cost less than ours. Part B measures it in the paired rounds only.
CREATE SCHEMA IF NOT EXISTS bench_least;
CREATE TABLE IF NOT EXISTS bench_least.event_log (
  xid        xid8 NOT NULL DEFAULT pg_current_xact_id(),
  op         "char" NOT NULL,
  channel_id text,
  user_id    text
);
CREATE OR REPLACE FUNCTION bench_least.on_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO bench_least.event_log (op, channel_id, user_id) VALUES ('j', NEW.channel_id, NEW.user_id);
  RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS bench_least_insert ON public.channel_members;
CREATE TRIGGER bench_least_insert AFTER INSERT ON public.channel_members
  FOR EACH ROW EXECUTE FUNCTION bench_least.on_insert();
