import { runMain, shutdownOnSignal } from '@food/platform';
import { loadUsersConfig } from './config.js';
import { startUsersSubgraph } from './app.js';

runMain(async () => {
  const subgraph = await startUsersSubgraph(loadUsersConfig());
  shutdownOnSignal(() => subgraph.close());
});
