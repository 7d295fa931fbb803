import { createLogger, OutboxRelay, type Logger, type Messaging } from '@food/platform';
import { createOrdersService, ordersCipher } from './app.js';
import type { OrdersConfig } from './config.js';
import { maintainPartitions } from './data/partitions.js';
import {
  PROTECT_PERSONAL_DATA,
  PROTECT_PERSONAL_DATA_EVERY_MS,
  protectPersonalData,
} from './jobs/protect-personal-data.js';

export const ORDERS_QUEUE = 'orders';
const CANCEL_UNPAID = 'cancel-unpaid-orders';
/** How often the unpaid-order sweep runs; the timeout itself is ORDERS_UNPAID_TIMEOUT_SECONDS. */
const SWEEP_EVERY_MS = 30_000;
export const MAINTAIN_PARTITIONS = 'maintain-partitions';
const FORGET_IDEMPOTENCY_KEYS = 'forget-idempotency-keys';
/** Keys are kept for hours (ORDERS_IDEMPOTENCY_KEY_RETENTION_HOURS): forgetting them every 10 minutes is plenty. */
const FORGET_KEYS_EVERY_MS = 10 * 60_000;
/** Partitions are made months ahead: hourly is plenty, and a missed run only fills DEFAULT for a while. */
const PARTITIONS_EVERY_MS = 60 * 60_000;

/**
 * The orders worker: publishes the outbox, moves orders on payment events, cancels orders left
 * unpaid, forgets expired placeOrder idempotency keys, keeps the monthly partitions of the orders
 * database (data/partitions.ts), and keeps delivery addresses encrypted under the active key
 * (jobs/protect-personal-data.ts). Runs as its own process (worker-main.ts) or inside the dev start command.
 */
export async function startOrdersWorker(
  config: OrdersConfig,
  messaging: Messaging,
  logger: Logger = createLogger('orders-worker', config.LOG_LEVEL),
) {
  const { prisma, orders } = createOrdersService(config);
  const relay = new OutboxRelay({
    name: 'orders',
    databaseUrl: config.ORDERS_DATABASE_URL,
    bus: messaging.bus,
    logger,
  });
  await relay.start();
  const payments = await messaging.bus.consume('payments', 'orders', async (event) => {
    const outcome = await orders.handlePaymentEvent(event);
    logger.info({ eventId: event.id, type: event.type, outcome }, 'payment event handled');
  });
  const jobs = messaging.work(ORDERS_QUEUE, {
    [CANCEL_UNPAID]: async () => {
      const cutoff = new Date(Date.now() - config.ORDERS_UNPAID_TIMEOUT_SECONDS * 1_000);
      const cancelled = await orders.cancelUnpaidOrders(cutoff);
      if (cancelled > 0) logger.info({ cancelled }, 'cancelled unpaid orders');
    },
    [FORGET_IDEMPOTENCY_KEYS]: async () => {
      const cutoff = new Date(Date.now() - config.ORDERS_IDEMPOTENCY_KEY_RETENTION_HOURS * 3_600_000);
      const forgotten = await orders.forgetIdempotencyKeys(cutoff);
      if (forgotten > 0) logger.info({ forgotten }, 'forgot expired placeOrder idempotency keys');
    },
    [MAINTAIN_PARTITIONS]: async () => {
      await maintainPartitions(
        prisma,
        {
          monthsAhead: config.ORDERS_PARTITION_MONTHS_AHEAD,
          retentionMonths: config.ORDERS_PARTITION_RETENTION_MONTHS,
        },
        logger,
      );
    },
    [PROTECT_PERSONAL_DATA]: protectPersonalData({ prisma, cipher: ordersCipher(config), logger }),
  });
  const queue = messaging.queue(ORDERS_QUEUE);
  await queue.every(CANCEL_UNPAID, SWEEP_EVERY_MS);
  await queue.every(FORGET_IDEMPOTENCY_KEYS, FORGET_KEYS_EVERY_MS);
  // Once now (a fresh database has no monthly partition yet), then hourly.
  await queue.add(MAINTAIN_PARTITIONS, {});
  await queue.every(MAINTAIN_PARTITIONS, PARTITIONS_EVERY_MS);
  // Once now (the active key may just have changed, or legacy rows wait), then on a schedule.
  await queue.add(PROTECT_PERSONAL_DATA, {});
  await queue.every(PROTECT_PERSONAL_DATA, PROTECT_PERSONAL_DATA_EVERY_MS);
  logger.info('orders worker ready');
  return {
    relay,
    readiness: { database: () => prisma.$queryRawUnsafe('SELECT 1') },
    close: async () => {
      await jobs.close();
      await payments.close();
      await relay.stop();
      await prisma.$disconnect();
    },
  };
}
