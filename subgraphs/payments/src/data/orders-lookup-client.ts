import { z } from 'zod';
import { DomainError, ErrorCode, ServiceCallError, type ServiceClient } from '@food/platform';
import type { OrderLookup, PayableOrder } from '../domain/payments.js';

export const ORDER_QUERY = `query ($id: ID!) { order(id: $id) { id status total { amount currency } customer { id } } }`;

const OrderResponse = z.object({
  order: z
    .object({
      id: z.string(),
      status: z.string(),
      total: z.object({ amount: z.number().int(), currency: z.string().length(3) }),
      customer: z.object({ id: z.string() }),
    })
    .nullable(),
});

/** Reads orders from the orders subgraph, signed as the payments service. */
export class OrdersLookupClient implements OrderLookup {
  constructor(private readonly orders: Pick<ServiceClient, 'request'>) {}

  async findOrder(id: string): Promise<PayableOrder | null> {
    let data: unknown;
    try {
      data = await this.orders.request<unknown>(ORDER_QUERY, { id });
    } catch (error) {
      if (error instanceof DomainError) throw error;
      if (error instanceof ServiceCallError && error.hasCode(ErrorCode.NOT_FOUND)) return null;
      // Its message names internal URLs: the client only learns that orders did not answer.
      throw new DomainError(ErrorCode.UPSTREAM_UNAVAILABLE, 'The orders service could not answer');
    }
    const parsed = OrderResponse.safeParse(data);
    if (!parsed.success) {
      throw new DomainError(ErrorCode.UPSTREAM_UNAVAILABLE, 'The orders service answered in an unexpected shape');
    }
    const { order } = parsed.data;
    if (!order) return null;
    return { id: order.id, status: order.status, customerId: order.customer.id, total: order.total };
  }
}
