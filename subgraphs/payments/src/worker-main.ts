import { runWorkerProcess } from '@food/platform';
import { loadPaymentsConfig } from './config.js';
import { startPaymentsWorker } from './worker.js';

runWorkerProcess({
  name: 'payments-worker',
  loadConfig: loadPaymentsConfig,
  operationsPort: (config) => config.PAYMENTS_WORKER_PORT,
  start: (config, messaging, logger) => startPaymentsWorker(config, messaging, logger),
});
