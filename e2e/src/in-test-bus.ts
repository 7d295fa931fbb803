import { createLogger, type EventBus } from '@food/platform';
import { EmitterBus, testSecrets } from '@food/platform/testing';

export { EmitterBus };
import { loadGatewayConfig, startGateway, type RunningGateway } from '@food/gateway';

/**
 * A gateway of a test's own, on an event bus the test drives, beside the supergraph's gateway and on
 * the same subgraphs: each case publishes exactly the changes it wants the subscribers to see.
 */

/** Starts a gateway on `subgraphUrls` whose subscriptions hear `eventBus` (none: subscribe is refused). */
export function startGatewayOnBus(
  subgraphUrls: Record<string, string>,
  eventBus: EventBus | undefined,
  env: Record<string, string> = {},
): Promise<RunningGateway> {
  const { users, meals, orders, payments } = subgraphUrls;
  return startGateway(
    loadGatewayConfig({
      ...testSecrets,
      LOG_LEVEL: 'silent',
      GATEWAY_PORT: '0',
      USERS_SUBGRAPH_URL: users,
      MEALS_SUBGRAPH_URL: meals,
      ORDERS_SUBGRAPH_URL: orders,
      PAYMENTS_SUBGRAPH_URL: payments,
      // The bus carries only what a test emits, not the real changes' events (those go to Redis),
      // so nothing would tell a private entity cache or the response cache of them; the tails
      // counted here are the hub's.
      ENTITY_CACHE_PRIVATE_TYPES: '',
      RESPONSE_CACHE_MAX_MB: '0',
      ...env,
    }),
    createLogger('gateway', 'silent'),
    { eventBus },
  );
}
