-- The application's membership table, as the benchmark's writers and pgbench use it.
CREATE TABLE IF NOT EXISTS public.channel_members (
  channel_id text NOT NULL,
  user_id    text NOT NULL,
  joined_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (channel_id, user_id)
);
CREATE INDEX IF NOT EXISTS channel_members_user_id ON public.channel_members (user_id);
