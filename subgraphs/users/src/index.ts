export { loadUsersConfig, UsersConfigSchema, type UsersConfig } from './config.js';
export { startUsersSubgraph, createUsersService, usersTypeDefs } from './app.js';
export { seedUsers, demoUsers } from './seed.js';
export * from './worker.js';
