import { Prisma } from './generated/prisma/client.js';
import type { UsersPrisma } from './prisma.js';
import { EmailTakenError, type NewUser, type StoredUser, type UsersStore } from '../domain/users.js';

const columns = {
  id: true,
  email: true,
  passwordHash: true,
  name: true,
  role: true,
  phoneEncrypted: true,
  deliveryAddressEncrypted: true,
  createdAt: true,
} as const;

export class PrismaUsersStore implements UsersStore {
  constructor(private readonly prisma: UsersPrisma) {}

  async create(user: NewUser): Promise<StoredUser> {
    try {
      return await this.prisma.user.create({ data: user, select: columns });
    } catch (error) {
      if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2002') throw new EmailTakenError();
      throw error;
    }
  }

  findByEmail(email: string): Promise<StoredUser | null> {
    return this.prisma.user.findUnique({ where: { email }, select: columns });
  }

  findByIds(ids: readonly string[]): Promise<StoredUser[]> {
    if (ids.length === 0) return Promise.resolve([]);
    return this.prisma.user.findMany({ where: { id: { in: [...ids] } }, select: columns });
  }

  async update(id: string, changes: Parameters<UsersStore['update']>[1]): Promise<StoredUser | null> {
    try {
      return await this.prisma.user.update({ where: { id }, data: changes, select: columns });
    } catch (error) {
      if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2025') return null;
      throw error;
    }
  }
}
