import { runMain, shutdownOnSignal, startTracing } from '@food/platform';
import { loadPaymentsConfig } from './config.js';
import { startPaymentsSubgraph } from './app.js';

runMain(async () => {
  const config = loadPaymentsConfig();
  const tracing = startTracing('payments', config);
  const subgraph = await startPaymentsSubgraph(config);
  shutdownOnSignal(async () => {
    await subgraph.close();
    await tracing.shutdown();
  });
});
