-- The usual design's database side: a row trigger that sends one NOTIFY per changed row,
-- with the row as JSON payload. Nothing is written down; nothing can be caught up.
CREATE OR REPLACE FUNCTION notify_channel_members() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('channel_members', json_build_object(
    'op', TG_OP,
    'old', CASE WHEN TG_OP <> 'INSERT' THEN row_to_json(OLD) END,
    'new', CASE WHEN TG_OP <> 'DELETE' THEN row_to_json(NEW) END,
    'at', clock_timestamp())::text);
  RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS channel_members_notify ON channel_members;
CREATE TRIGGER channel_members_notify AFTER INSERT OR UPDATE OR DELETE ON channel_members
  FOR EACH ROW EXECUTE FUNCTION notify_channel_members();
