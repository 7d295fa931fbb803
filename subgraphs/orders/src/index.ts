export { loadOrdersConfig, OrdersConfigSchema, type OrdersConfig } from './config.js';
export { startOrdersSubgraph, createOrdersService, ordersTypeDefs } from './app.js';
export * from './worker.js';
