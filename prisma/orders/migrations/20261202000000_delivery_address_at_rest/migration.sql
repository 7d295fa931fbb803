-- The delivery address at rest (issue 16): encrypted under the orders service's own keys. On the
-- partitioned "orders" table each statement applies to every partition, present or attached later.
-- SQL has no app key, so existing rows are moved by the orders worker's job
-- (subgraphs/orders/src/jobs/protect-personal-data.ts), which seals the plaintext and empties it.
-- The key id column, indexed, lets that job find legacy rows (NULL) and rows under an older key.
-- A later migration drops "delivery_address" once no row has one.
-- NB: no semicolon in any comment here: the offline runner splits the script on them.

-- AlterTable
ALTER TABLE "orders" ADD COLUMN "delivery_address_encrypted" TEXT,
ADD COLUMN "delivery_address_key_id" TEXT,
ALTER COLUMN "delivery_address" DROP NOT NULL;

-- Every order keeps its address, in one form or the other.
ALTER TABLE "orders" ADD CONSTRAINT "orders_delivery_address_present" CHECK ("delivery_address" IS NOT NULL OR "delivery_address_encrypted" IS NOT NULL);

-- CreateIndex
CREATE INDEX "orders_delivery_address_key_id_idx" ON "orders"("delivery_address_key_id");
