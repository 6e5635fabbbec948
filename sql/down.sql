-- membership-notifier: down migration. Removes the triggers from the membership table and the
-- whole membership_notifier schema (its event log included). The application's own tables are
-- not touched. One transaction; running it when nothing is installed does nothing.
BEGIN;
DO $$ BEGIN PERFORM pg_advisory_xact_lock(hashtext('membership_notifier.migrate')); END $$;
SET LOCAL client_min_messages = warning;

DO $down$
DECLARE
  t text;
  ch text;
BEGIN
  IF to_regclass('membership_notifier.settings') IS NOT NULL THEN
    SELECT member_table, channels_table INTO t, ch FROM membership_notifier.settings;
    IF ch IS NOT NULL AND to_regclass(ch) IS NOT NULL THEN
      EXECUTE format('DROP TRIGGER IF EXISTS membership_notifier_channel_gone ON %s', ch);
    END IF;
    IF t IS NOT NULL AND to_regclass(t) IS NOT NULL THEN
      EXECUTE format('DROP TRIGGER IF EXISTS membership_notifier_insert ON %s', t);
      EXECUTE format('DROP TRIGGER IF EXISTS membership_notifier_delete ON %s', t);
      EXECUTE format('DROP TRIGGER IF EXISTS membership_notifier_update ON %s', t);
      EXECUTE format('DROP TRIGGER IF EXISTS membership_notifier_truncate ON %s', t);
    END IF;
  END IF;
END $down$;

DROP SCHEMA IF EXISTS membership_notifier CASCADE;
COMMIT;
