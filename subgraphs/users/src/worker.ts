import { createLogger, type Logger, type Messaging } from '@food/platform';
import { usersPersonalData } from './app.js';
import type { UsersConfig } from './config.js';
import { connectUsersDatabase } from './data/prisma.js';
import {
  PROTECT_PERSONAL_DATA,
  PROTECT_PERSONAL_DATA_EVERY_MS,
  protectPersonalData,
} from './jobs/protect-personal-data.js';

export const USERS_QUEUE = 'users';

/**
 * The users worker: keeps personal data at rest under the active key (jobs/protect-personal-data.ts).
 * Runs as its own process (worker-main.ts) or inside the dev start command.
 */
export async function startUsersWorker(
  config: UsersConfig,
  messaging: Messaging,
  logger: Logger = createLogger('users-worker', config.LOG_LEVEL),
) {
  // The primary only: the job writes what it read.
  const prisma = connectUsersDatabase(config.USERS_DATABASE_URL, 2);
  const jobs = messaging.work(USERS_QUEUE, {
    [PROTECT_PERSONAL_DATA]: protectPersonalData({ prisma, ...usersPersonalData(config), logger }),
  });
  const queue = messaging.queue(USERS_QUEUE);
  // Once now (the active key may just have changed, or legacy rows wait), then on a schedule.
  await queue.add(PROTECT_PERSONAL_DATA, {});
  await queue.every(PROTECT_PERSONAL_DATA, PROTECT_PERSONAL_DATA_EVERY_MS);
  logger.info('users worker ready');
  return {
    readiness: { database: () => prisma.$queryRawUnsafe('SELECT 1') },
    close: async () => {
      await jobs.close();
      await prisma.$disconnect();
    },
  };
}
