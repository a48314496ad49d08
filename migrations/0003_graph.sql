-- The curated layer of the knowledge graph (categories' labels and synonyms, brands, attribute keys
-- and values, concepts, policies) and its edges. Catalog-derived nodes (products, the category tree,
-- brands and attribute values seen in products) are built from the catalog tables at load time.

create table kg_nodes (
    id           text primary key,     -- 'category:footwear > flats', 'concept:gift-for-newborn', ...
    kind         text not null check (kind in ('category', 'brand', 'attribute_key', 'attribute', 'concept', 'policy')),
    label_en     text not null check (length(btrim(label_en)) > 0),
    label_zh     text,
    synonyms_en  text[] not null default '{}',
    synonyms_zh  text[] not null default '{}',
    data         jsonb not null default '{}'::jsonb,
    version      int not null default 1,       -- bumped on every edit (optimistic concurrency)
    updated_by   text not null,
    updated_at   timestamptz not null default now()
);
create index kg_nodes_kind_idx on kg_nodes (kind);

-- Endpoints are node ids; a target may be a catalog-derived node (a category path, an attribute).
create table kg_edges (
    from_id  text not null,
    to_id    text not null,
    kind     text not null check (kind in ('suits', 'complements', 'substitutes', 'applies_to', 'subcategory_of')),
    weight   real not null default 1 check (weight > 0 and weight <= 1),
    primary key (from_id, to_id, kind)
);
create index kg_edges_to_idx on kg_edges (to_id);

-- One row: the graph's version, bumped by every change, so replicas know when to reload.
create table kg_state (
    singleton  boolean primary key default true check (singleton),
    version    bigint not null default 0
);
insert into kg_state (singleton, version) values (true, 0);

create table kg_audit (
    id             bigserial primary key,
    graph_version  bigint not null,
    node_id        text,
    action         text not null,        -- import | create | update | delete | revert
    actor          text not null,
    at             timestamptz not null default now(),
    before         jsonb,
    after          jsonb
);
create index kg_audit_node_idx on kg_audit (node_id, id);
