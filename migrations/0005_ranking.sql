-- Product vectors for dense retrieval, and what the learned ranker learns from in feedback.

create table product_embeddings (
    product_id   text primary key references products (id) on delete cascade,
    -- The model that made the vector and the text it embedded: a vector is recomputed when either
    -- changes.
    model        text not null,
    source_text  text not null,
    vector       real[] not null,
    updated_at   timestamptz not null default now()
);

-- The query a result list answered, so that clicks can be turned into training labels (the
-- position is already recorded for position-bias correction).
alter table feedback_events add column query text;
create index feedback_events_query_idx on feedback_events (query) where query is not null;
