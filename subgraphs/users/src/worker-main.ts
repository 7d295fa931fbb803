import { runWorkerProcess } from '@food/platform';
import { loadUsersConfig } from './config.js';
import { startUsersWorker } from './worker.js';

runWorkerProcess({
  name: 'users-worker',
  loadConfig: loadUsersConfig,
  operationsPort: (config) => config.USERS_WORKER_PORT,
  start: (config, messaging, logger) => startUsersWorker(config, messaging, logger),
});
