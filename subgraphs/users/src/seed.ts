import type { UsersConfig } from './config.js';
import { createUsersService } from './app.js';
import { DomainError, ErrorCode, type Role } from '@food/platform';

/** Demo accounts for development, with passwords the README gives. Never loaded in production. */
export const demoUsers: {
  email: string;
  password: string;
  name: string;
  role: Role;
  phone: string;
  deliveryAddress: string;
}[] = [
  {
    email: 'ada@example.com',
    password: 'ada-demo-password',
    name: 'Ada Lovelace',
    role: 'CUSTOMER',
    phone: '+441234567890',
    deliveryAddress: '12 St James Square, London',
  },
  {
    email: 'grace@example.com',
    password: 'grace-demo-password',
    name: 'Grace Hopper',
    role: 'CUSTOMER',
    phone: '+12025550143',
    deliveryAddress: '1 Navy Yard, Arlington',
  },
  {
    email: 'chef@example.com',
    password: 'chef-demo-password',
    name: 'Chef Remy',
    role: 'STAFF',
    phone: '+33123456789',
    deliveryAddress: 'Kitchen',
  },
  {
    email: 'admin@example.com',
    password: 'admin-demo-password',
    name: 'Admin',
    role: 'ADMIN',
    phone: '+33198765432',
    deliveryAddress: 'Office',
  },
];

/** Creates the demo accounts that do not exist yet; safe to run on every start. */
export async function seedUsers(config: UsersConfig): Promise<number> {
  const { prisma, users } = createUsersService(config);
  let created = 0;
  try {
    for (const demo of demoUsers) {
      try {
        const { user } = await users.signUp(demo);
        if (demo.role !== 'CUSTOMER') await prisma.user.update({ where: { id: user.id }, data: { role: demo.role } });
        created += 1;
      } catch (error) {
        // Already there (emails are stored encrypted: signing up is how to ask).
        if (!(error instanceof DomainError && error.code === ErrorCode.EMAIL_TAKEN)) throw error;
      }
    }
  } finally {
    await prisma.$disconnect();
  }
  return created;
}
