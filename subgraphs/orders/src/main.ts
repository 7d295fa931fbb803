import { runMain, shutdownOnSignal } from '@food/platform';
import { loadOrdersConfig } from './config.js';
import { startOrdersSubgraph } from './app.js';

runMain(async () => {
  const subgraph = await startOrdersSubgraph(loadOrdersConfig());
  shutdownOnSignal(() => subgraph.close());
});
