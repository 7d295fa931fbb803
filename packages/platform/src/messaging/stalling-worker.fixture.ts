/**
 * A worker process for the stalled-job test: runs the `stall` queue of the prefix in argv, whose
 * `hang` job never ends, and says `started` when it holds one, so the test can SIGKILL it mid-job.
 */
import { pino } from 'pino';
import { testRedisTarget } from '../testing/redis-server.js';
import { createMessaging } from './messaging.js';

const messaging = createMessaging({
  redis: testRedisTarget(),
  logger: pino({ level: 'silent' }),
  keyPrefix: process.argv[2]!,
  redeliverAfterMs: 1_000,
});
messaging.work('stall', {
  hang: async () => {
    process.stdout.write('started\n');
    await new Promise(() => undefined);
  },
});
