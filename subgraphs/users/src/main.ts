import { runSubgraphProcess } from '@food/platform';
import { loadUsersConfig } from './config.js';
import { startUsersSubgraph } from './app.js';

runSubgraphProcess({ name: 'users', loadConfig: loadUsersConfig, start: (config) => startUsersSubgraph(config) });
