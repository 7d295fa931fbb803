import { runMain, shutdownOnSignal } from '@food/platform';
import { loadPaymentsConfig } from './config.js';
import { startPaymentsSubgraph } from './app.js';

runMain(async () => {
  const subgraph = await startPaymentsSubgraph(loadPaymentsConfig());
  shutdownOnSignal(() => subgraph.close());
});
