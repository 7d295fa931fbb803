import type { Resolvers } from '../__generated__/resolvers-types.js';
import { DateTime } from '@food/platform';
import { KitchenQueueConnection } from './KitchenQueueConnection.js';
import { Mutation } from './Mutation.js';
import { Order } from './Order.js';
import { OrderItem } from './OrderItem.js';
import { Query } from './Query.js';
import { User } from './User.js';

export const resolvers: Resolvers = { DateTime, Query, Mutation, Order, OrderItem, KitchenQueueConnection, User };
