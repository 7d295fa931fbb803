export { startGateway, type GatewayOptions, type RunningGateway } from './app.js';
export { SubscriptionErrorCode, SUBSCRIPTIONS_OVER_PLAIN_HTTP } from './subscriptions/errors.js';
export { loadGatewayConfig, GatewayConfigSchema, type GatewayConfig } from './config.js';
export { composeSupergraph, readSupergraphConfig, type SubgraphSource } from './compose/compose.js';
