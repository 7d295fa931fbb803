-- Idempotent placeOrder (issue 16): the keys clients send with placeOrder, per customer.
--
-- A plain table, NOT partitioned like the orders tables around it: the uniqueness that matters is
-- (customer_id, key), and a unique key on a partitioned table must include the partition key (an
-- order's id, which a repeated request does not know). The row is written first in the transaction
-- that writes the order: a concurrent twin's insert waits on the primary key until the first commits,
-- then fails as a duplicate and the service answers with the stored order instead of placing another.
-- No foreign key to "orders": one would block detaching an old month's partition of it.
--
-- Retention: the orders worker deletes keys older than ORDERS_IDEMPOTENCY_KEY_RETENTION_HOURS (24 by
-- default, as payment providers keep theirs), in batches by "created_at": the table holds about one
-- day of orders, whatever the size of the orders history.
-- NB: no semicolon in any comment or literal here: the offline runner splits the script on them.

-- CreateTable
CREATE TABLE "order_idempotency_keys" (
    "customer_id" UUID NOT NULL,
    "key" TEXT NOT NULL,
    "request_hash" CHAR(64) NOT NULL,
    "order_id" UUID NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "order_idempotency_keys_pkey" PRIMARY KEY ("customer_id","key")
);

-- CreateIndex: the worker's deletion of expired keys, oldest first
CREATE INDEX "order_idempotency_keys_created_at_idx" ON "order_idempotency_keys"("created_at");
