-- Login sessions for the staff pages (graph editor, later the agents' dashboard). The cookie holds
-- the session id; each session has its own CSRF token for forms.

create table sessions (
    id          text primary key,          -- 256 random bits, hex
    user_id     uuid not null references users (id) on delete cascade,
    csrf_token  text not null,
    created_at  timestamptz not null default now(),
    expires_at  timestamptz not null
);
create index sessions_user_idx on sessions (user_id);
create index sessions_expiry_idx on sessions (expires_at);

-- Failed logins, for rate limiting across replicas.
create table login_failures (
    id        bigserial primary key,
    username  text not null,
    at        timestamptz not null default now()
);
create index login_failures_idx on login_failures (lower(username), at);
