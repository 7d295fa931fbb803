import { runSubgraphProcess } from '@food/platform';
import { loadOrdersConfig } from './config.js';
import { startOrdersSubgraph } from './app.js';

runSubgraphProcess({ name: 'orders', loadConfig: loadOrdersConfig, start: (config) => startOrdersSubgraph(config) });
