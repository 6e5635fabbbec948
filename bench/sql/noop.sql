-- A reference under the floor: an AFTER row trigger in PL/pgSQL that does nothing. What firing
-- any row trigger costs the application's writes (the after-trigger queue, the call), before
-- it writes a byte. Part B measures it beside the floor, in the paired rounds only.
CREATE OR REPLACE FUNCTION public.bench_noop() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS bench_noop_insert ON public.channel_members;
CREATE TRIGGER bench_noop_insert AFTER INSERT ON public.channel_members
  FOR EACH ROW EXECUTE FUNCTION public.bench_noop();
