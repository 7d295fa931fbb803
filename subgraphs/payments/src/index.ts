export { loadPaymentsConfig, PaymentsConfigSchema, type PaymentsConfig } from './config.js';
export { startPaymentsSubgraph, createPaymentsService, paymentsTypeDefs } from './app.js';
export * from './worker.js';
