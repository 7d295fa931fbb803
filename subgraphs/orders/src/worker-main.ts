import { ConfigError, createLogger, createMessaging, runMain, shutdownOnSignal } from '@food/platform';
import { loadOrdersConfig } from './config.js';
import { startOrdersWorker } from './worker.js';

runMain(async () => {
  const config = loadOrdersConfig();
  // A worker process beside others must share Redis; the in-process stand-ins are for one process only.
  if (!config.REDIS_URL) throw new ConfigError('orders worker: invalid configuration: REDIS_URL: is required');
  const logger = createLogger('orders-worker', config.LOG_LEVEL);
  const messaging = createMessaging({ redisUrl: config.REDIS_URL, logger });
  const worker = await startOrdersWorker(config, messaging, logger);
  shutdownOnSignal(async () => {
    await worker.close();
    await messaging.close();
  });
});
