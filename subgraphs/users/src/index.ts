export { loadUsersConfig, UsersConfigSchema, type UsersConfig } from './config.js';
export { startUsersSubgraph, createUsersService, usersTypeDefs } from './app.js';
export { seedUsers, demoUsers } from './seed.js';
// The bench seeds users rows as this service writes them.
export { PersonalDataCipher } from './domain/personal-data-cipher.js';
export { hashPassword } from './domain/passwords.js';
