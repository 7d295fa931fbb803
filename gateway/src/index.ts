export { startGateway, type RunningGateway } from './app.js';
export { loadGatewayConfig, GatewayConfigSchema, type GatewayConfig } from './config.js';
export { composeSupergraph, subgraphNames, defaultSubgraphPorts, type SubgraphName } from './compose/compose.js';
