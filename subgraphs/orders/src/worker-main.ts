import { createLogger, createSharedMessaging, runMain, shutdownOnSignal } from '@food/platform';
import { loadOrdersConfig } from './config.js';
import { startOrdersWorker } from './worker.js';

runMain(async () => {
  const config = loadOrdersConfig();
  const logger = createLogger('orders-worker', config.LOG_LEVEL);
  const messaging = createSharedMessaging('orders worker', config, logger);
  const worker = await startOrdersWorker(config, messaging, logger);
  shutdownOnSignal(async () => {
    await worker.close();
    await messaging.close();
  });
});
