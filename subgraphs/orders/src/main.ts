import { runMain, shutdownOnSignal, startTracing } from '@food/platform';
import { loadOrdersConfig } from './config.js';
import { startOrdersSubgraph } from './app.js';

runMain(async () => {
  const config = loadOrdersConfig();
  const tracing = startTracing('orders', config);
  const subgraph = await startOrdersSubgraph(config);
  shutdownOnSignal(async () => {
    await subgraph.close();
    await tracing.shutdown();
  });
});
