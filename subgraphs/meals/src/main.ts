import { runSubgraphProcess } from '@food/platform';
import { loadMealsConfig } from './config.js';
import { startMealsSubgraph } from './app.js';

runSubgraphProcess({ name: 'meals', loadConfig: loadMealsConfig, start: (config) => startMealsSubgraph(config) });
