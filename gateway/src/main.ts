import {
  createLogger,
  createSharedMessaging,
  redisTargetOf,
  runMain,
  shutdownOnSignal,
  startTracing,
} from '@food/platform';
import { startGateway } from './app.js';
import { loadGatewayConfig } from './config.js';

runMain(async () => {
  const config = loadGatewayConfig();
  const tracing = startTracing('gateway', config);
  const logger = createLogger('gateway', config.LOG_LEVEL);
  // Subscribers on any replica must see changes made anywhere, so events come through Redis. A
  // development gateway may run without it, serving queries and mutations only.
  const messaging =
    redisTargetOf(config) || config.NODE_ENV === 'production'
      ? createSharedMessaging('gateway', config, logger)
      : undefined;
  if (!messaging) {
    logger.warn(
      'no REDIS_URL or REDIS_CLUSTER_NODES: subscriptions are refused (SUBSCRIPTIONS_UNAVAILABLE); rate budgets, persisted queries ' +
        'and the entity cache are kept in this process only',
    );
  }
  const gateway = await startGateway(config, logger, { eventBus: messaging?.bus });
  shutdownOnSignal(async () => {
    await gateway.close();
    await messaging?.close();
    await tracing.shutdown();
  });
});
