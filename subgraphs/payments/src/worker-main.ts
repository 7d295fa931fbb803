import { ConfigError, createLogger, createMessaging, runMain, shutdownOnSignal } from '@food/platform';
import { loadPaymentsConfig } from './config.js';
import { startPaymentsWorker } from './worker.js';

runMain(async () => {
  const config = loadPaymentsConfig();
  // A worker process beside others must share Redis; the in-process stand-ins are for one process only.
  if (!config.REDIS_URL) throw new ConfigError('payments worker: invalid configuration: REDIS_URL: is required');
  const logger = createLogger('payments-worker', config.LOG_LEVEL);
  const messaging = createMessaging({ redisUrl: config.REDIS_URL, logger });
  const worker = await startPaymentsWorker(config, messaging, logger);
  shutdownOnSignal(async () => {
    await worker.close();
    await messaging.close();
  });
});
