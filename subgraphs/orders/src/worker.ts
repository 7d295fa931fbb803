import { createLogger, OutboxRelay, type Logger, type Messaging } from '@food/platform';
import { createOrdersService } from './app.js';
import type { OrdersConfig } from './config.js';

export const ORDERS_QUEUE = 'orders';
const CANCEL_UNPAID = 'cancel-unpaid-orders';
/** How often the unpaid-order sweep runs; the timeout itself is ORDERS_UNPAID_TIMEOUT_SECONDS. */
const SWEEP_EVERY_MS = 30_000;

/**
 * The orders worker: publishes the outbox, moves orders on payment events, and cancels orders left
 * unpaid. Runs as its own process (worker-main.ts) or inside the dev start command.
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
  });
  await messaging.queue(ORDERS_QUEUE).every(CANCEL_UNPAID, SWEEP_EVERY_MS);
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
