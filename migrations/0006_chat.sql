-- The conversation service: which orders a shopper has proved are theirs, failed proofs (to stop
-- guessing), and why a conversation went to a human.

alter table conversations
    add column verified_orders  text[] not null default '{}',
    add column verify_failures  int not null default 0,
    add column escalation_reason text,
    add column escalated_at      timestamptz;

create index messages_assistant_idx on messages (conversation_id, id) where role = 'assistant';
