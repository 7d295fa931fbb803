import { runWorkerProcess } from '@food/platform';
import { loadMealsConfig } from './config.js';
import { startMealsWorker } from './worker.js';

runWorkerProcess({
  name: 'meals-worker',
  loadConfig: loadMealsConfig,
  operationsPort: (config) => config.MEALS_WORKER_PORT,
  start: (config, messaging, logger) => startMealsWorker(config, messaging, logger),
});
