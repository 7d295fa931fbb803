import { runMain, shutdownOnSignal, startTracing } from '@food/platform';
import { loadUsersConfig } from './config.js';
import { startUsersSubgraph } from './app.js';

runMain(async () => {
  const config = loadUsersConfig();
  const tracing = startTracing('users', config);
  const subgraph = await startUsersSubgraph(config);
  shutdownOnSignal(async () => {
    await subgraph.close();
    await tracing.shutdown();
  });
});
