-- Human support: who has a conversation and since when, how it ended, the queue summary, internal
-- notes, canned replies and the audit log of every agent action.

alter table conversations
    add column claimed_at       timestamptz,
    add column closed_at        timestamptz,
    add column resolution       text,
    add column escalation_rule  jsonb,
    -- The queue summary: null = not written yet, '' = being written by some instance.
    add column summary          text;

create index conversations_queue_idx on conversations (escalated_at, id)
    where state = 'waiting_for_agent';
create index conversations_agent_idx on conversations (assigned_agent) where state = 'agent';

-- Notes agents leave on a conversation. A separate table, so nothing that reads messages for the
-- shopper can ever show them.
create table agent_notes (
    id               bigserial primary key,
    conversation_id  uuid not null references conversations (id) on delete cascade,
    author           uuid references users (id) on delete set null,
    author_name      text not null,
    text             text not null,
    created_at       timestamptz not null default now()
);
create index agent_notes_conversation_idx on agent_notes (conversation_id, id);

create table canned_replies (
    id          bigserial primary key,
    title       text not null,
    text        text not null,
    lang        text not null default 'en' check (lang in ('en', 'zh')),
    created_by  uuid references users (id) on delete set null,
    created_at  timestamptz not null default now()
);

insert into canned_replies (title, text, lang) values
    ('Greeting', 'Hi, I''m here to help. Let me read through your conversation so far.', 'en'),
    ('Checking', 'Thanks for waiting. I''m checking this for you now and will reply here in a moment.', 'en'),
    ('Order details', 'Could you tell me the order id and the email address on the order?', 'en'),
    ('Anything else', 'Is there anything else I can help you with?', 'en'),
    ('问候', '您好，我来帮您处理，先看一下您之前的对话。', 'zh'),
    ('查询中', '感谢您的耐心等待，我正在为您查询，稍后在这里回复您。', 'zh'),
    ('还有其他', '请问还有其他可以帮您的吗？', 'zh');

-- Every agent action (claims, replies, notes, hand-backs, closes, transcript views, canned-reply
-- edits). Rows are only ever inserted.
create table audit_log (
    id               bigserial primary key,
    at               timestamptz not null default now(),
    actor            uuid references users (id) on delete set null,
    actor_name       text not null,
    action           text not null,
    conversation_id  uuid references conversations (id) on delete set null,
    detail           jsonb not null default '{}'::jsonb
);
create index audit_log_conversation_idx on audit_log (conversation_id, id);
create index audit_log_actor_idx on audit_log (actor, at);
