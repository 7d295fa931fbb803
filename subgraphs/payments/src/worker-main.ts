import { createLogger, createSharedMessaging, runMain, shutdownOnSignal } from '@food/platform';
import { loadPaymentsConfig } from './config.js';
import { startPaymentsWorker } from './worker.js';

runMain(async () => {
  const config = loadPaymentsConfig();
  const logger = createLogger('payments-worker', config.LOG_LEVEL);
  const messaging = createSharedMessaging('payments worker', config, logger);
  const worker = await startPaymentsWorker(config, messaging, logger);
  shutdownOnSignal(async () => {
    await worker.close();
    await messaging.close();
  });
});
