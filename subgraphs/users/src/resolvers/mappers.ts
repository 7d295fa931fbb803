import type { User } from '../domain/users.js';

/** GraphQL types backed by domain types (see codegen.ts at the repository root). */
export type UserModel = User;
