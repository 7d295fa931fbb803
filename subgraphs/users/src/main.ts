import { createLogger, createSharedMessaging, runSubgraphProcess } from '@food/platform';
import { loadUsersConfig } from './config.js';
import { startUsersSubgraph } from './app.js';

runSubgraphProcess({
  name: 'users',
  loadConfig: loadUsersConfig,
  start: async (config) => {
    const logger = createLogger('users', config.LOG_LEVEL);
    // Redis is required: session revocations reach the gateways through it.
    const messaging = createSharedMessaging('users', config, logger);
    const subgraph = await startUsersSubgraph(config, messaging, logger).catch(async (error: unknown) => {
      await messaging.close();
      throw error;
    });
    return {
      ...subgraph,
      close: async () => {
        await subgraph.close();
        await messaging.close();
      },
    };
  },
});
