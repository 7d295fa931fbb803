import { createLogger, OutboxRelay, parseEvent, type Logger, type Messaging } from '@food/platform';
import { createPaymentsService, type PaymentsDependencies } from './app.js';
import type { PaymentsConfig } from './config.js';

export const PAYMENTS_QUEUE = 'payments';
const REFUND = 'refund';
const CONFIRM_PENDING = 'confirm-pending-payments';
/** How often the worker looks for payments the provider has not answered for. */
const CONFIRM_EVERY_MS = 10_000;

/**
 * The payments worker: publishes the outbox, turns refund requests into refund jobs (retried with
 * backoff; one that keeps failing stays in the failed set and is logged), and confirms payments the
 * provider left unanswered. Runs as its own process (worker-main.ts) or inside the dev start command.
 */
export async function startPaymentsWorker(
  config: PaymentsConfig,
  messaging: Messaging,
  logger: Logger = createLogger('payments-worker', config.LOG_LEVEL),
  deps: PaymentsDependencies = {},
) {
  const { prisma, payments } = createPaymentsService(config, { logger, ...deps });
  const relay = new OutboxRelay({
    name: 'payments',
    databaseUrl: config.PAYMENTS_DATABASE_URL,
    bus: messaging.bus,
    logger,
  });
  await relay.start();
  const queue = messaging.queue(PAYMENTS_QUEUE);
  const orders = await messaging.bus.consume('orders', 'payments', async (event) => {
    // The event id is the job id: a redelivered request schedules no second refund.
    if (event.type === 'order.refund_requested') await queue.add(REFUND, event, { jobId: event.id, attempts: 8 });
  });
  const jobs = messaging.work(PAYMENTS_QUEUE, {
    [REFUND]: async (data) => {
      const request = parseEvent(data);
      if (request.type !== 'order.refund_requested') throw new Error(`not a refund request: ${request.type}`);
      const outcome = await payments.refund(request);
      logger.info({ orderId: request.data.orderId, outcome }, 'refund handled');
    },
    [CONFIRM_PENDING]: async () => {
      const before = new Date(Date.now() - config.PAYMENTS_CONFIRM_AFTER_SECONDS * 1_000);
      const { settled, stillPending } = await payments.confirmPending(before);
      if (settled > 0) logger.info({ settled }, 'confirmed pending payments');
      // A failed run is visible (failed set, log line); the next run tries again.
      if (stillPending > 0) throw new Error(`${stillPending} payment(s) still unanswered by the provider`);
    },
  });
  await queue.every(CONFIRM_PENDING, CONFIRM_EVERY_MS);
  logger.info('payments worker ready');
  return {
    relay,
    readiness: { database: () => prisma.$queryRawUnsafe('SELECT 1') },
    close: async () => {
      await jobs.close();
      await orders.close();
      await relay.stop();
      await prisma.$disconnect();
    },
  };
}
