import { runMain, shutdownOnSignal, startTracing } from '@food/platform';
import { loadMealsConfig } from './config.js';
import { startMealsSubgraph } from './app.js';

runMain(async () => {
  const config = loadMealsConfig();
  const tracing = startTracing('meals', config);
  const subgraph = await startMealsSubgraph(config);
  shutdownOnSignal(async () => {
    await subgraph.close();
    await tracing.shutdown();
  });
});
