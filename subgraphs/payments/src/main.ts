import { runSubgraphProcess } from '@food/platform';
import { loadPaymentsConfig } from './config.js';
import { startPaymentsSubgraph } from './app.js';

runSubgraphProcess({
  name: 'payments',
  loadConfig: loadPaymentsConfig,
  start: (config) => startPaymentsSubgraph(config),
});
