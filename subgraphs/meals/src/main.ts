import { runMain, shutdownOnSignal } from '@food/platform';
import { loadMealsConfig } from './config.js';
import { startMealsSubgraph } from './app.js';

runMain(async () => {
  const subgraph = await startMealsSubgraph(loadMealsConfig());
  shutdownOnSignal(() => subgraph.close());
});
