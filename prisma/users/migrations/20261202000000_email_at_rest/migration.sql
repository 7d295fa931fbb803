-- Email at rest (issue 16): the email is encrypted like phone and address, and looked up by a keyed
-- blind index (HMAC-SHA256 of the trimmed, lower-cased email), unique, so uniqueness still ignores case.
-- SQL has no app key, so existing rows are moved by the users worker (subgraphs/users/src/jobs/
-- protect-personal-data.ts): it fills both columns and empties "email". Until then a legacy row keeps
-- its plaintext email, still unique and still found at login. A later migration drops "email".

-- AlterTable
ALTER TABLE "users" ADD COLUMN "email_encrypted" TEXT,
ADD COLUMN "email_blind_index" TEXT,
ALTER COLUMN "email" DROP NOT NULL;

-- CreateIndex
CREATE UNIQUE INDEX "users_email_blind_index_key" ON "users"("email_blind_index");

-- Every account keeps its email, in one form or the other.
ALTER TABLE "users" ADD CONSTRAINT "users_email_present" CHECK ("email" IS NOT NULL OR ("email_encrypted" IS NOT NULL AND "email_blind_index" IS NOT NULL));
