import { Prisma } from './generated/prisma/client.js';
import type { UsersPrisma } from './prisma.js';
import { EmailTakenError, type EmailKey, type NewUser, type StoredUser, type UsersStore } from '../domain/users.js';

const columns = {
  id: true,
  email: true,
  emailEncrypted: true,
  passwordHash: true,
  name: true,
  role: true,
  phoneEncrypted: true,
  deliveryAddressEncrypted: true,
  createdAt: true,
} as const;

type Row = Prisma.UserGetPayload<{ select: typeof columns }>;

const toStored = ({ email, ...row }: Row): StoredUser => ({ ...row, legacyEmail: email });

/** A legacy row's plaintext email, or a moved row's blind index: one or the other finds the account. */
const byEmail = (email: EmailKey) => ({ OR: [{ emailBlindIndex: email.blindIndex }, { email: email.normalised }] });

export class PrismaUsersStore implements UsersStore {
  constructor(private readonly prisma: UsersPrisma) {}

  async create({ email, ...user }: NewUser): Promise<StoredUser> {
    // A legacy row (not yet moved by the worker) holds its email in plaintext, outside the blind
    // index's unique constraint: it is looked for first.
    if (await this.prisma.user.findFirst({ where: { email: email.normalised }, select: { id: true } })) {
      throw new EmailTakenError();
    }
    try {
      return toStored(
        await this.prisma.user.create({ data: { ...user, emailBlindIndex: email.blindIndex }, select: columns }),
      );
    } catch (error) {
      if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2002') throw new EmailTakenError();
      throw error;
    }
  }

  async findByEmail(email: EmailKey): Promise<StoredUser | null> {
    const row = await this.prisma.user.findFirst({ where: byEmail(email), select: columns });
    return row && toStored(row);
  }

  async findByIds(ids: readonly string[]): Promise<StoredUser[]> {
    if (ids.length === 0) return [];
    return (await this.prisma.user.findMany({ where: { id: { in: [...ids] } }, select: columns })).map(toStored);
  }

  async update(id: string, changes: Parameters<UsersStore['update']>[1]): Promise<StoredUser | null> {
    try {
      return toStored(await this.prisma.user.update({ where: { id }, data: changes, select: columns }));
    } catch (error) {
      if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2025') return null;
      throw error;
    }
  }
}
