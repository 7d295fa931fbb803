import { z } from 'zod';
import {
  DomainError,
  ErrorCode,
  forbidden,
  isStaff,
  parseInput,
  requireUser,
  type BlindIndex,
  type Caller,
  type PersonalDataCipher,
  type Role,
} from '@food/platform';
import { decoyPasswordHash, hashPassword, verifyPassword } from './passwords.js';
import type { LoginThrottle } from './login-throttle.js';
import type { Sessions } from './sessions.js';

/** A user as the domain sees it: personal data decrypted, no password hash. */
export interface User {
  id: string;
  email: string;
  name: string;
  role: Role;
  phone: string | null;
  deliveryAddress: string | null;
  createdAt: Date;
  /** Set on the user inside a new session: the caller just proved to be them. */
  isSessionHolder?: boolean;
}

/** A stored user: what the store reads and writes. Personal data stays sealed here. */
export interface StoredUser {
  id: string;
  /** Sealed; null only on a legacy row the worker has not moved yet, whose `legacyEmail` is set. */
  emailEncrypted: string | null;
  /** The plaintext email of a row from before emails were encrypted (emptied by the worker). */
  legacyEmail: string | null;
  passwordHash: string;
  name: string;
  role: Role;
  phoneEncrypted: string | null;
  deliveryAddressEncrypted: string | null;
  createdAt: Date;
}

export interface NewUser {
  email: EmailKey;
  emailEncrypted: string;
  passwordHash: string;
  name: string;
  phoneEncrypted: string | null;
  deliveryAddressEncrypted: string | null;
}

/**
 * How the store finds an account by its email without storing it: the keyed blind index of the
 * normalised email, and the normalised email itself, for a legacy row the worker has not moved yet.
 */
export interface EmailKey {
  normalised: string;
  blindIndex: string;
}

/** The persistence the users domain needs; implemented over Prisma in ../data. */
export interface UsersStore {
  /** Stores the email's blind index (never the email). Throws EmailTakenError when the email is in use. */
  create(user: NewUser): Promise<StoredUser>;
  findByEmail(email: EmailKey): Promise<StoredUser | null>;
  findByIds(ids: readonly string[]): Promise<StoredUser[]>;
  update(
    id: string,
    changes: Partial<Pick<StoredUser, 'name' | 'role' | 'phoneEncrypted' | 'deliveryAddressEncrypted'>>,
  ): Promise<StoredUser | null>;
}

export class EmailTakenError extends Error {}

/** An email as it is compared and indexed: trimmed and lower-cased. */
export const normaliseEmail = (email: string) => email.trim().toLowerCase();

const email = z
  .string()
  .trim()
  .toLowerCase()
  .max(254)
  .pipe(z.email({ error: 'must be a valid email address' }));
const name = z.string().trim().min(1, 'must not be empty').max(100, 'must be at most 100 characters');
const phone = z
  .string()
  .trim()
  .regex(/^\+[1-9][0-9]{6,14}$/, 'must be + and 7 to 15 digits');
const address = z.string().trim().min(5, 'must be at least 5 characters').max(500, 'must be at most 500 characters');

const password = z.string().min(8, 'must be at least 8 characters').max(128, 'must be at most 128 characters');

export const ZSignUpInput = z.object({
  email,
  password,
  name,
  phone: phone.nullish(),
  deliveryAddress: address.nullish(),
});
export const ZLogInInput = z.object({ email: z.string().max(254), password: z.string().max(128) });
export const ZChangePasswordInput = z.object({ currentPassword: z.string().max(128), newPassword: password });
const ZRefreshToken = z.string().min(1).max(200);
export const ZUpdateProfileInput = z.object({
  name: name.nullish(),
  phone: phone.nullish(),
  deliveryAddress: address.nullish(),
});
const ZUserId = z.uuid({ error: 'must be a UUID' });

/** Accounts, sessions and profiles: every rule about users lives here. */
export class UsersService {
  constructor(
    private readonly store: UsersStore,
    private readonly cipher: PersonalDataCipher,
    private readonly sessions: Sessions,
    private readonly throttle: LoginThrottle,
    /** The email's keyed blind index (USERS_BLIND_INDEX_KEY): the login look-up. */
    private readonly emailIndex: BlindIndex,
  ) {}

  async signUp(input: unknown) {
    const data = parseInput(ZSignUpInput, input);
    let stored: StoredUser;
    try {
      stored = await this.store.create({
        email: this.emailKey(data.email),
        emailEncrypted: this.cipher.encrypt(data.email),
        passwordHash: await hashPassword(data.password),
        name: data.name,
        phoneEncrypted: data.phone ? this.cipher.encrypt(data.phone) : null,
        deliveryAddressEncrypted: data.deliveryAddress ? this.cipher.encrypt(data.deliveryAddress) : null,
      });
    } catch (error) {
      if (error instanceof EmailTakenError) {
        throw new DomainError(ErrorCode.EMAIL_TAKEN, 'An account with this email already exists', { field: 'email' });
      }
      throw error;
    }
    return this.session(stored);
  }

  /**
   * Credentials for a session. An unknown email and a wrong password get the same answer in the same
   * time (an unknown email still costs a hash, against a decoy); failures are throttled per account
   * and per client address (`clientAddress`, as the gateway saw it).
   */
  async logIn(input: unknown, clientAddress?: string) {
    const data = parseInput(ZLogInInput, input);
    const email = normaliseEmail(data.email);
    await this.throttle.check(email, clientAddress);
    const stored = await this.store.findByEmail(this.emailKey(data.email));
    const valid = await verifyPassword(data.password, stored?.passwordHash ?? (await decoyPasswordHash()));
    if (!stored || !valid) {
      await this.throttle.failed(email, clientAddress);
      throw new DomainError(ErrorCode.INVALID_CREDENTIALS, 'Email or password is wrong');
    }
    await this.throttle.succeeded(email);
    return this.session(stored);
  }

  /** A new access token and refresh token for a refresh token, which is used up; the role is read now. */
  async refreshSession(refreshToken: unknown) {
    const token = parseInput(ZRefreshToken, refreshToken);
    const refreshed = await this.sessions.refresh(token, async (userId) => {
      const [stored] = await this.store.findByIds([userId]);
      return stored?.role ?? null;
    });
    const [stored] = await this.store.findByIds([refreshed.userId]);
    if (!stored) throw new DomainError(ErrorCode.UNAUTHENTICATED, 'Your account no longer exists');
    const { userId: _userId, ...tokens } = refreshed;
    return { ...tokens, user: { ...this.reveal(stored), isSessionHolder: true } };
  }

  /** Ends the caller's session: its refresh token stops working and the gateways refuse its access tokens. */
  async logOut(caller: Caller): Promise<boolean> {
    const user = requireUser(caller);
    if (!user.sessionId) throw new DomainError(ErrorCode.UNAUTHENTICATED, 'This request has no session to end');
    await this.sessions.logOut(user.sessionId);
    return true;
  }

  /** A new password, given the current one; every other session of the user is revoked. */
  async changePassword(caller: Caller, input: unknown): Promise<boolean> {
    const { userId, sessionId } = requireUser(caller);
    const data = parseInput(ZChangePasswordInput, input);
    const [stored] = await this.store.findByIds([userId]);
    if (!stored) throw new DomainError(ErrorCode.NOT_FOUND, 'Your account no longer exists');
    if (!(await verifyPassword(data.currentPassword, stored.passwordHash))) {
      throw new DomainError(ErrorCode.INVALID_CREDENTIALS, 'The current password is wrong', {
        field: 'currentPassword',
      });
    }
    await this.sessions.changePassword(userId, await hashPassword(data.newPassword), sessionId);
    return true;
  }

  async me(caller: Caller): Promise<User | null> {
    if (caller.kind !== 'user') return null;
    const [stored] = await this.store.findByIds([caller.userId]);
    return stored ? this.reveal(stored) : null;
  }

  async updateProfile(caller: Caller, input: unknown): Promise<User> {
    const { userId } = requireUser(caller);
    const data = parseInput(ZUpdateProfileInput, input);
    const changes: Parameters<UsersStore['update']>[1] = {};
    if (data.name) changes.name = data.name;
    // Absent leaves a field alone; an explicit null clears it.
    if (data.phone !== undefined) changes.phoneEncrypted = data.phone ? this.cipher.encrypt(data.phone) : null;
    if (data.deliveryAddress !== undefined) {
      changes.deliveryAddressEncrypted = data.deliveryAddress ? this.cipher.encrypt(data.deliveryAddress) : null;
    }
    const stored = await this.store.update(userId, changes);
    if (!stored) throw new DomainError(ErrorCode.NOT_FOUND, 'Your account no longer exists');
    return this.reveal(stored);
  }

  async setRole(caller: Caller, userId: unknown, role: Role): Promise<User> {
    if (caller.kind !== 'user' || caller.role !== 'ADMIN') throw forbidden('Only admins may change roles');
    const id = parseInput(ZUserId, userId);
    const stored = await this.store.update(id, { role });
    if (!stored) throw new DomainError(ErrorCode.NOT_FOUND, `User ${id} was not found`, { id });
    // Tokens carry the role: every session of the user ends now (its subscriptions too), and the next
    // login (or any refresh, which reads the role afresh) carries the new one.
    await this.sessions.revokeAll(id, 'role_changed');
    return this.reveal(stored);
  }

  /** Batched look-up for entity references: one store call for any number of ids. */
  async byIds(ids: readonly string[]): Promise<(User | null)[]> {
    const valid = ids.filter((id) => ZUserId.safeParse(id).success);
    const found = new Map((await this.store.findByIds(valid)).map((stored) => [stored.id, this.reveal(stored)]));
    return ids.map((id) => found.get(id) ?? null);
  }

  /** Email, phone and address are for the user themself and for staff. */
  canSeePersonalData(caller: Caller, user: User): boolean {
    return user.isSessionHolder === true || isStaff(caller) || (caller.kind === 'user' && caller.userId === user.id);
  }

  private async session(stored: StoredUser) {
    const { token, expiresAt, refreshToken, refreshTokenExpiresAt } = await this.sessions.start(stored.id, stored.role);
    return {
      token,
      expiresAt,
      refreshToken,
      refreshTokenExpiresAt,
      user: { ...this.reveal(stored), isSessionHolder: true },
    };
  }

  private emailKey(email: string): EmailKey {
    const normalised = normaliseEmail(email);
    return { normalised, blindIndex: this.emailIndex.of(normalised) };
  }

  private reveal(stored: StoredUser): User {
    return {
      id: stored.id,
      email: stored.emailEncrypted ? this.cipher.decrypt(stored.emailEncrypted) : stored.legacyEmail!,
      name: stored.name,
      role: stored.role,
      phone: stored.phoneEncrypted ? this.cipher.decrypt(stored.phoneEncrypted) : null,
      deliveryAddress: stored.deliveryAddressEncrypted ? this.cipher.decrypt(stored.deliveryAddressEncrypted) : null,
      createdAt: stored.createdAt,
    };
  }
}
