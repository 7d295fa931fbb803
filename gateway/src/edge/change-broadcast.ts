import { randomUUID } from 'node:crypto';
import {
  connectRedis,
  type EntityReference,
  type Logger,
  type RedisConnection,
  type RedisTarget,
} from '@food/platform';

/**
 * Changes a subgraph reported to one gateway replica (its mutation's `changedEntities`), told to every
 * other replica over Redis pub/sub, for their in-process response caches: the entity cache lives in
 * Redis and is dropped once for all, but each replica keeps its own responses. Changes that events
 * announce reach every replica anyway (each tails the streams); these are the ones with no event.
 *
 * Pub/sub delivers to whoever is subscribed at the moment: a replica whose subscription was cut may
 * have missed some, so it forgets every response it kept (`onGap`) when it subscribes again.
 */
export interface ChangeBroadcast {
  /** Tells the other replicas (not this one, which has dropped them already). */
  publish(entities: readonly EntityReference[]): Promise<void>;
  close(): Promise<void>;
}

interface Message {
  from: string;
  entities: EntityReference[];
}

export async function broadcastChanges(options: {
  target: RedisTarget;
  /** The edge's connection, which publishes. */
  publisher: RedisConnection;
  keyPrefix: string;
  logger: Logger;
  /** Changes another replica reported. */
  onRemote: (entities: EntityReference[]) => void;
  /** The subscription was cut and is back: changes may have been missed meanwhile. */
  onGap: () => void;
}): Promise<ChangeBroadcast> {
  const { publisher, logger } = options;
  const channel = `${options.keyPrefix}:changed-entities`;
  const self = randomUUID();
  const subscriber = connectRedis(options.target, {
    name: `${options.keyPrefix}:gateway-changes`,
    logger,
  });
  let cut = false;
  subscriber.on('close', () => (cut = true));
  subscriber.on('ready', () => {
    if (!cut) return;
    cut = false;
    logger.warn('change broadcast: subscription was cut; forgetting every kept response');
    options.onGap();
  });
  subscriber.on('message', (from: string, text: string) => {
    if (from !== channel) return;
    try {
      const message = JSON.parse(text) as Message;
      if (message.from !== self && Array.isArray(message.entities)) options.onRemote(message.entities);
    } catch (error) {
      logger.warn({ err: error }, 'change broadcast: unreadable message');
    }
  });
  await subscriber.subscribe(channel);
  return {
    publish: async (entities) => {
      try {
        await publisher.publish(channel, JSON.stringify({ from: self, entities: [...entities] } satisfies Message));
      } catch (error) {
        // The TTL bounds what the other replicas keep meanwhile.
        logger.warn({ err: error }, 'change broadcast: could not tell the other replicas of a change');
      }
    },
    close: async () => {
      await subscriber.quit().catch(() => subscriber.disconnect());
    },
  };
}
