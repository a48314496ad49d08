-- The catalog: categories, products, customers, orders.

create table categories (
    path        text primary key,                 -- 'footwear > womens footwear > ballerinas'
    name        text not null,                    -- last segment
    parent_path text references categories (path) on delete cascade,
    depth       int  not null check (depth >= 1),
    created_at  timestamptz not null default now()
);
create index categories_parent_idx on categories (parent_path);

create table products (
    id            text primary key check (length(id) between 1 and 128),
    title         text not null check (length(title) between 1 and 500),
    title_zh      text,
    description   text not null default '',
    brand         text,
    category      text references categories (path) on delete set null,
    price         numeric(14, 2) not null check (price >= 0),
    currency      char(3) not null,
    list_price    numeric(14, 2) check (list_price >= 0),
    availability  text not null default 'in_stock'
                  check (availability in ('in_stock', 'out_of_stock', 'preorder', 'backorder')),
    stock         int check (stock >= 0),
    attributes    jsonb not null default '{}'::jsonb,
    image_urls    text[] not null default '{}',
    url           text,
    gtin          text,
    rating        real check (rating between 0 and 5),
    rating_count  int check (rating_count >= 0),
    source        text not null,                  -- importer that last wrote the row
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now()
);
create index products_category_idx on products (category text_pattern_ops);
create index products_brand_idx on products (lower(brand));
create index products_price_idx on products (currency, price);
create index products_updated_idx on products (updated_at);
create index products_attributes_idx on products using gin (attributes jsonb_path_ops);

create table customers (
    id          text primary key,
    email       text not null,
    name        text not null,
    phone       text,
    city        text,
    created_at  timestamptz not null default now()
);
create unique index customers_email_idx on customers (lower(email));

create table orders (
    id                text primary key,
    customer_id       text not null references customers (id),
    status            text not null check (status in ('placed', 'packed', 'shipped', 'out_for_delivery',
                          'delivered', 'cancelled', 'return_requested', 'returned', 'refunded')),
    placed_at         timestamptz not null,
    currency          char(3) not null,
    total             numeric(14, 2) not null check (total >= 0),
    shipping          jsonb not null default '{}'::jsonb,
    carrier           text,
    tracking_number   text,
    expected_delivery date,
    updated_at        timestamptz not null default now()
);
create index orders_customer_idx on orders (customer_id, placed_at desc);

create table order_lines (
    order_id    text not null references orders (id) on delete cascade,
    line_no     int  not null,
    product_id  text references products (id) on delete set null,
    title       text not null,                    -- snapshot at purchase time
    quantity    int  not null check (quantity > 0),
    unit_price  numeric(14, 2) not null check (unit_price >= 0),
    primary key (order_id, line_no)
);

create table order_status_history (
    id        bigserial primary key,
    order_id  text not null references orders (id) on delete cascade,
    status    text not null,
    note      text,
    at        timestamptz not null
);
create index order_status_history_order_idx on order_status_history (order_id, at);

-- One row per `aisle import` run, with the rows it rejected (capped), so operators can audit feeds.
create table import_runs (
    id           bigserial primary key,
    format       text not null,
    source       text not null,
    started_at   timestamptz not null default now(),
    finished_at  timestamptz,
    rows_read    bigint not null default 0,
    inserted     bigint not null default 0,
    updated      bigint not null default 0,
    unchanged    bigint not null default 0,
    rejected     bigint not null default 0,
    rejects      jsonb not null default '[]'::jsonb
);
