-- Part E's reference: the migration's triggers with INSERT and DELETE logged by its row triggers
-- (membership_notifier.on_insert() and on_delete(), what it installs on a partitioned table, and
-- all it installed for INSERT and DELETE before schema version 3), in place of its statement
-- triggers. Run after `migrate up` on a plain table.
BEGIN;
DROP TRIGGER membership_notifier_insert ON public.channel_members;
DROP TRIGGER membership_notifier_delete ON public.channel_members;
CREATE TRIGGER membership_notifier_insert AFTER INSERT ON public.channel_members
  FOR EACH ROW EXECUTE FUNCTION membership_notifier.on_insert();
CREATE TRIGGER membership_notifier_delete AFTER DELETE ON public.channel_members
  FOR EACH ROW EXECUTE FUNCTION membership_notifier.on_delete();
COMMIT;
