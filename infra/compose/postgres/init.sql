-- Source schema of the local stack: a small shop. dbmazz creates the publications and
-- the replication slots itself (jobs.toml names them) and sets REPLICA IDENTITY FULL.
CREATE TABLE public.customers (
    id         bigint PRIMARY KEY,
    name       text NOT NULL,
    email      text,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.orders (
    id          bigint PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES public.customers (id),
    status      text NOT NULL,
    total       numeric(12,2) NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.order_items (
    order_id   bigint NOT NULL REFERENCES public.orders (id),
    line       integer NOT NULL,
    sku        text NOT NULL,
    quantity   integer NOT NULL,
    price      numeric(12,2) NOT NULL,
    PRIMARY KEY (order_id, line)
);
