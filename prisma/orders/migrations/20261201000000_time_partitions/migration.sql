-- Time-partitioned order data (issue 15, orders at massive volume). Hand-written: Prisma cannot
-- declare partitioning. Read subgraphs/orders/src/data/partitions.ts for the scheme and the job.
--
-- Each growing table becomes PARTITION BY RANGE of a UUID that carries its time (UUIDv7): orders by
-- id, their lines, add-ons and status changes by order_id (so an order and its rows share a month),
-- outbox_events by id (the event id) and processed_events by event_id. Monthly partitions cover the
-- v7 ids of one month, [v7 bound of the month's first ms, v7 bound of the next month's). They are made
-- ahead of time by the orders worker's job, not here: this script is static SQL.
--
-- Rows from before this migration have UUIDv4 ids, uniform over the whole id space, so a v4 id is put
-- where its value falls, like any id, and the id -> partition rule (plain range pruning) finds it in
-- one lookup. Two legacy partitions take the ranges no v7 id of ours can have, below 2026-12-01
-- (MINVALUE to 01a22ee6-b000-...) and from 2100-01-01 (03bb2cc3-d800-... to MAXVALUE): about 99 in
-- 100 v4 ids. The rest (those whose first 48 bits read as a time in 2026-12 .. 2099) land in the
-- DEFAULT partition, and the job moves them into a monthly partition when it creates that month.
--
-- Everything runs in one transaction (BEGIN .. COMMIT below): the offline runner sends the script one
-- statement at a time, and stock Prisma sends it whole: both apply it all or nothing.
-- NB: no semicolon in any comment or literal here: the offline runner splits the script on them.

BEGIN;

-- The old tables step aside. Their data is copied below, then they are dropped.
ALTER TABLE "order_item_addons" RENAME TO "order_item_addons_unpartitioned";
ALTER TABLE "order_status_changes" RENAME TO "order_status_changes_unpartitioned";
ALTER TABLE "order_items" RENAME TO "order_items_unpartitioned";
ALTER TABLE "orders" RENAME TO "orders_unpartitioned";
ALTER TABLE "outbox_events" RENAME TO "outbox_events_unpartitioned";
ALTER TABLE "processed_events" RENAME TO "processed_events_unpartitioned";
-- The outbox sequence lives on: the relay publishes in sequence order, across the swap too.
ALTER SEQUENCE "outbox_events_sequence_seq" OWNED BY NONE;

-- CreateTable (partitioned)
CREATE TABLE "orders" (
    "id" UUID NOT NULL,
    "customer_id" UUID NOT NULL,
    "status" "OrderStatus" NOT NULL DEFAULT 'PENDING_PAYMENT',
    "currency" CHAR(3) NOT NULL,
    "subtotal_amount" INTEGER NOT NULL,
    "delivery_fee_amount" INTEGER NOT NULL,
    "total_amount" INTEGER NOT NULL,
    "delivery_address" TEXT NOT NULL,
    "version" INTEGER NOT NULL DEFAULT 1,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL
) PARTITION BY RANGE ("id");

CREATE TABLE "order_items" (
    "id" UUID NOT NULL,
    "order_id" UUID NOT NULL,
    "position" INTEGER NOT NULL,
    "meal_id" UUID NOT NULL,
    "meal_name" TEXT NOT NULL,
    "unit_price_amount" INTEGER NOT NULL,
    "quantity" INTEGER NOT NULL,
    "line_total_amount" INTEGER NOT NULL
) PARTITION BY RANGE ("order_id");

CREATE TABLE "order_item_addons" (
    "id" UUID NOT NULL,
    "order_id" UUID NOT NULL,
    "order_item_id" UUID NOT NULL,
    "addon_id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "unit_price_amount" INTEGER NOT NULL,
    "quantity" INTEGER NOT NULL
) PARTITION BY RANGE ("order_id");

CREATE TABLE "order_status_changes" (
    "id" UUID NOT NULL,
    "order_id" UUID NOT NULL,
    "from_status" "OrderStatus",
    "to_status" "OrderStatus" NOT NULL,
    "changed_by" TEXT NOT NULL,
    "reason" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "actor" "OrderActor" NOT NULL
) PARTITION BY RANGE ("order_id");

CREATE TABLE "outbox_events" (
    "sequence" BIGINT NOT NULL DEFAULT nextval('outbox_events_sequence_seq'),
    "id" UUID NOT NULL,
    "stream" TEXT NOT NULL,
    "type" TEXT NOT NULL,
    "aggregate_id" UUID NOT NULL,
    "payload" JSONB NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "published_at" TIMESTAMPTZ(3)
) PARTITION BY RANGE ("id");
ALTER SEQUENCE "outbox_events_sequence_seq" OWNED BY "outbox_events"."sequence";

CREATE TABLE "processed_events" (
    "consumer" TEXT NOT NULL,
    "event_id" UUID NOT NULL,
    "processed_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP
) PARTITION BY RANGE ("event_id");

-- Legacy and DEFAULT partitions (the monthly ones come from the job)
CREATE TABLE "orders_legacy_low" PARTITION OF "orders" FOR VALUES FROM (MINVALUE) TO ('01a22ee6-b000-0000-0000-000000000000');
CREATE TABLE "orders_legacy_high" PARTITION OF "orders" FOR VALUES FROM ('03bb2cc3-d800-0000-0000-000000000000') TO (MAXVALUE);
CREATE TABLE "orders_default" PARTITION OF "orders" DEFAULT;
CREATE TABLE "order_items_legacy_low" PARTITION OF "order_items" FOR VALUES FROM (MINVALUE) TO ('01a22ee6-b000-0000-0000-000000000000');
CREATE TABLE "order_items_legacy_high" PARTITION OF "order_items" FOR VALUES FROM ('03bb2cc3-d800-0000-0000-000000000000') TO (MAXVALUE);
CREATE TABLE "order_items_default" PARTITION OF "order_items" DEFAULT;
CREATE TABLE "order_item_addons_legacy_low" PARTITION OF "order_item_addons" FOR VALUES FROM (MINVALUE) TO ('01a22ee6-b000-0000-0000-000000000000');
CREATE TABLE "order_item_addons_legacy_high" PARTITION OF "order_item_addons" FOR VALUES FROM ('03bb2cc3-d800-0000-0000-000000000000') TO (MAXVALUE);
CREATE TABLE "order_item_addons_default" PARTITION OF "order_item_addons" DEFAULT;
CREATE TABLE "order_status_changes_legacy_low" PARTITION OF "order_status_changes" FOR VALUES FROM (MINVALUE) TO ('01a22ee6-b000-0000-0000-000000000000');
CREATE TABLE "order_status_changes_legacy_high" PARTITION OF "order_status_changes" FOR VALUES FROM ('03bb2cc3-d800-0000-0000-000000000000') TO (MAXVALUE);
CREATE TABLE "order_status_changes_default" PARTITION OF "order_status_changes" DEFAULT;
CREATE TABLE "outbox_events_legacy_low" PARTITION OF "outbox_events" FOR VALUES FROM (MINVALUE) TO ('01a22ee6-b000-0000-0000-000000000000');
CREATE TABLE "outbox_events_legacy_high" PARTITION OF "outbox_events" FOR VALUES FROM ('03bb2cc3-d800-0000-0000-000000000000') TO (MAXVALUE);
CREATE TABLE "outbox_events_default" PARTITION OF "outbox_events" DEFAULT;
CREATE TABLE "processed_events_legacy_low" PARTITION OF "processed_events" FOR VALUES FROM (MINVALUE) TO ('01a22ee6-b000-0000-0000-000000000000');
CREATE TABLE "processed_events_legacy_high" PARTITION OF "processed_events" FOR VALUES FROM ('03bb2cc3-d800-0000-0000-000000000000') TO (MAXVALUE);
CREATE TABLE "processed_events_default" PARTITION OF "processed_events" DEFAULT;

-- Copy every row. Each lands in the partition its id (or its order's id) falls in.
INSERT INTO "orders" ("id", "customer_id", "status", "currency", "subtotal_amount", "delivery_fee_amount", "total_amount", "delivery_address", "version", "created_at", "updated_at")
SELECT "id", "customer_id", "status", "currency", "subtotal_amount", "delivery_fee_amount", "total_amount", "delivery_address", "version", "created_at", "updated_at" FROM "orders_unpartitioned";
INSERT INTO "order_items" ("id", "order_id", "position", "meal_id", "meal_name", "unit_price_amount", "quantity", "line_total_amount")
SELECT "id", "order_id", "position", "meal_id", "meal_name", "unit_price_amount", "quantity", "line_total_amount" FROM "order_items_unpartitioned";
-- An add-on now carries its line's order id: its partition key.
INSERT INTO "order_item_addons" ("id", "order_id", "order_item_id", "addon_id", "name", "unit_price_amount", "quantity")
SELECT a."id", i."order_id", a."order_item_id", a."addon_id", a."name", a."unit_price_amount", a."quantity"
FROM "order_item_addons_unpartitioned" a JOIN "order_items_unpartitioned" i ON i."id" = a."order_item_id";
INSERT INTO "order_status_changes" ("id", "order_id", "from_status", "to_status", "changed_by", "reason", "created_at", "actor")
SELECT "id", "order_id", "from_status", "to_status", "changed_by", "reason", "created_at", "actor" FROM "order_status_changes_unpartitioned";
INSERT INTO "outbox_events" ("sequence", "id", "stream", "type", "aggregate_id", "payload", "created_at", "published_at")
SELECT "sequence", "id", "stream", "type", "aggregate_id", "payload", "created_at", "published_at" FROM "outbox_events_unpartitioned";
INSERT INTO "processed_events" ("consumer", "event_id", "processed_at")
SELECT "consumer", "event_id", "processed_at" FROM "processed_events_unpartitioned";

DROP TABLE "order_item_addons_unpartitioned";
DROP TABLE "order_status_changes_unpartitioned";
DROP TABLE "order_items_unpartitioned";
DROP TABLE "orders_unpartitioned";
DROP TABLE "outbox_events_unpartitioned";
DROP TABLE "processed_events_unpartitioned";

-- Keys and indexes, made once the rows are in. On a partitioned table each is a partitioned index:
-- every partition, present or attached later, gets its own. A key includes the partition key.
ALTER TABLE "orders" ADD CONSTRAINT "orders_pkey" PRIMARY KEY ("id");
ALTER TABLE "order_items" ADD CONSTRAINT "order_items_pkey" PRIMARY KEY ("order_id", "id");
ALTER TABLE "order_item_addons" ADD CONSTRAINT "order_item_addons_pkey" PRIMARY KEY ("order_id", "id");
ALTER TABLE "order_status_changes" ADD CONSTRAINT "order_status_changes_pkey" PRIMARY KEY ("order_id", "id");
ALTER TABLE "outbox_events" ADD CONSTRAINT "outbox_events_pkey" PRIMARY KEY ("sequence", "id");
ALTER TABLE "processed_events" ADD CONSTRAINT "processed_events_pkey" PRIMARY KEY ("consumer", "event_id");

-- CreateIndex: myOrders, a customer's newest first (the sort the keyset pagination reads in)
CREATE INDEX "orders_customer_id_created_at_id_idx" ON "orders"("customer_id", "created_at" DESC, "id" DESC);
-- CreateIndex: by status oldest first (the unpaid sweep, the kitchen's queue)
CREATE INDEX "orders_status_created_at_id_idx" ON "orders"("status", "created_at", "id");
CREATE INDEX "order_item_addons_order_id_order_item_id_idx" ON "order_item_addons"("order_id", "order_item_id");
CREATE INDEX "order_status_changes_order_id_created_at_idx" ON "order_status_changes"("order_id", "created_at");
CREATE UNIQUE INDEX "outbox_events_id_key" ON "outbox_events"("id");
-- CreateIndex: the relay's scan of unpublished rows in sequence order
CREATE INDEX "outbox_events_published_at_sequence_idx" ON "outbox_events"("published_at", "sequence");

-- AddForeignKey (to a partitioned table: PostgreSQL 12 and later)
ALTER TABLE "order_items" ADD CONSTRAINT "order_items_order_id_fkey" FOREIGN KEY ("order_id") REFERENCES "orders"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "order_item_addons" ADD CONSTRAINT "order_item_addons_order_id_order_item_id_fkey" FOREIGN KEY ("order_id", "order_item_id") REFERENCES "order_items"("order_id", "id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "order_status_changes" ADD CONSTRAINT "order_status_changes_order_id_fkey" FOREIGN KEY ("order_id") REFERENCES "orders"("id") ON DELETE CASCADE ON UPDATE CASCADE;

COMMIT;
