import type { Resolvers } from '../__generated__/resolvers-types.js';
import { DateTime } from '@food/platform';
import { Mutation } from './Mutation.js';
import { Order } from './Order.js';
import { Payment } from './Payment.js';
import { Query } from './Query.js';

export const resolvers: Resolvers = { DateTime, Query, Mutation, Payment, Order };
