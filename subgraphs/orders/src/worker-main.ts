import { runWorkerProcess } from '@food/platform';
import { loadOrdersConfig } from './config.js';
import { startOrdersWorker } from './worker.js';

runWorkerProcess({
  name: 'orders-worker',
  loadConfig: loadOrdersConfig,
  operationsPort: (config) => config.ORDERS_WORKER_PORT,
  start: (config, messaging, logger) => startOrdersWorker(config, messaging, logger),
});
