-- The kitchen's queue (issue 16): no new index. Its reads are ranges of the existing
-- "orders_status_created_at_id_idx" ON orders (status, created_at, id), made per partition by
-- 20261201000000_time_partitions, and this migration only records why that is enough, on the index.
--
-- kitchenQueue(statuses) reads, for each status asked, WHERE status = $s [AND (created_at, id) after
-- the cursor] ORDER BY created_at, id LIMIT n: the index's order itself, an index-only scan that
-- starts at the status's first entry in each partition (a Merge Append keeps the order across them)
-- and stops after n rows. Its counts are COUNT(*) WHERE status IN (...) GROUP BY status: an
-- index-only scan of those statuses' ranges only. The queue takes only statuses still in progress
-- (not DELIVERED, CANCELLED or REFUNDED, refused by the orders domain), and orders leave those soon,
-- so each range is small: millions of delivered orders sit in other leaf pages of the index and are
-- never read (500k delivered beside 200 in progress: the counts touch 30 buffers, a page 8).
--
-- Not a partial index (WHERE status IN the statuses in progress): Prisma sends a status as
-- CAST($1::text AS "OrderStatus"), which is not a constant at planning time (enum_in is STABLE), so
-- the planner could not prove a query's statuses inside the index's predicate and would not use it.
-- NB: no semicolon in any comment or literal here: the offline runner splits the script on them.

COMMENT ON INDEX "orders_status_created_at_id_idx" IS 'By status oldest first: the unpaid-order sweep and the kitchen queue (pages and counts per status in progress read only those statuses ranges). See migration 20261202010000_kitchen_queue_index.';
