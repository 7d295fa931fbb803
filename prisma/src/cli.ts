import { databaseServices, generateClient, migrateDeploy, type DatabaseService } from './index.js';

/**
 * `generate`: every service's Prisma client. `deploy`: committed migrations, for each service whose
 * `<SERVICE>_DATABASE_URL` is set (what a release job or the Helm hook runs).
 */
const command = process.argv[2];
const only = process.argv.slice(3) as DatabaseService[];
const services = only.length > 0 ? only : databaseServices;

if (command === 'generate') {
  await Promise.all(services.map((service) => generateClient(service)));
  console.log(`generated Prisma clients: ${services.join(', ')}`);
} else if (command === 'deploy') {
  for (const service of services) {
    const url = process.env[`${service.toUpperCase()}_DATABASE_URL`];
    if (!url) {
      console.error(`${service.toUpperCase()}_DATABASE_URL is not set`);
      process.exit(1);
    }
    process.stdout.write(await migrateDeploy(service, url));
  }
} else {
  console.error('usage: cli.ts generate|deploy [service...]');
  process.exit(2);
}
