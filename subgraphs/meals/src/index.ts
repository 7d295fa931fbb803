export { loadMealsConfig, MealsConfigSchema, type MealsConfig } from './config.js';
export { startMealsSubgraph, createMealsService, mealsTypeDefs } from './app.js';
export { seedMeals, demoMenu } from './seed.js';
export * from './worker.js';
