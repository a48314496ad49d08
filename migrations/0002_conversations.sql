-- Conversations, messages, feedback, and the users who work in aisle (agents, editors, admins).

create table users (
    id             uuid primary key,
    username       text not null,
    display_name   text not null,
    password_hash  text not null,
    role           text not null check (role in ('agent', 'editor', 'admin')),
    disabled       boolean not null default false,
    created_at     timestamptz not null default now()
);
create unique index users_username_idx on users (lower(username));

create table conversations (
    id              uuid primary key,
    customer_id     text references customers (id) on delete set null,
    lang            text,
    state           text not null default 'bot'
                    check (state in ('bot', 'waiting_for_agent', 'agent', 'closed')),
    assigned_agent  uuid references users (id) on delete set null,
    dialogue_state  jsonb not null default '{}'::jsonb,
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now()
);
create index conversations_state_idx on conversations (state, updated_at);
create index conversations_customer_idx on conversations (customer_id);

create table messages (
    id               bigserial primary key,
    conversation_id  uuid not null references conversations (id) on delete cascade,
    role             text not null check (role in ('user', 'assistant', 'agent', 'system')),
    text             text not null,
    meta             jsonb not null default '{}'::jsonb,   -- intent, slots, cards shown, trace
    created_at       timestamptz not null default now()
);
create index messages_conversation_idx on messages (conversation_id, id);

create table feedback_events (
    id               bigserial primary key,
    conversation_id  uuid references conversations (id) on delete cascade,
    message_id       bigint references messages (id) on delete cascade,
    kind             text not null check (kind in ('up', 'down', 'click', 'add_to_cart')),
    product_id       text references products (id) on delete set null,
    position         int,
    created_at       timestamptz not null default now()
);
create index feedback_events_product_idx on feedback_events (product_id, kind);
create index feedback_events_conversation_idx on feedback_events (conversation_id);
