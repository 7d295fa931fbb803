import { randomUUID } from 'node:crypto';
import { expect } from 'vitest';
import type { GraphQLResponse } from './harness.js';

type Post = <T = any>(
  url: string,
  body: { query: string; variables?: Record<string, unknown> },
  headers?: Record<string, string>,
) => Promise<GraphQLResponse<T>>;

export const ORDER = `query ($id: ID!) { order(id: $id) { id status version payment { status }
  statusHistory { from to actor } } }`;

export type DemoUser = 'ada' | 'grace' | 'chef';

/**
 * What a frontend does with the supergraph, as the demo users, through one gateway URL: log in, place,
 * pay, cancel, and (as the kitchen) move orders on. Each call fails the test on a GraphQL error.
 */
export class Shop {
  readonly tokens = {} as Record<DemoUser, string>;
  readonly userIds = {} as Record<DemoUser, string>;
  mealId = '';

  constructor(
    private readonly post: Post,
    public gatewayUrl: string,
  ) {}

  /** Logs the demo users in and picks an available meal. */
  async open(): Promise<this> {
    for (const name of ['ada', 'grace', 'chef'] as const) {
      const response = await this.call(
        `mutation ($input: LogInInput!) { logIn(input: $input) { token user { id } } }`,
        { input: { email: `${name}@example.com`, password: `${name}-demo-password` } },
      );
      this.tokens[name] = response.logIn.token;
      this.userIds[name] = response.logIn.user.id;
    }
    const menu = await this.call(`{ meals(first: 1, filter: { available: true }) { edges { node { id } } } }`);
    this.mealId = menu.meals.edges[0].node.id;
    return this;
  }

  headers(user: DemoUser): Record<string, string> {
    return { authorization: `Bearer ${this.tokens[user]}` };
  }

  async placeOrder(user: DemoUser = 'ada'): Promise<string> {
    const placed = await this.call(
      `mutation ($input: PlaceOrderInput!) { placeOrder(input: $input) { id } }`,
      {
        input: {
          deliveryAddress: '1 Tracking Street',
          items: [{ mealId: this.mealId, quantity: 1 }],
          // A new key per order: the same key again would answer with this order, not place another.
          idempotencyKey: `order-${randomUUID()}`,
        },
      },
      user,
    );
    return placed.placeOrder.id as string;
  }

  /** Pays with a sandbox token; the order itself moves later, through the payment event. */
  async pay(orderId: string, paymentToken = 'tok_sandbox_success', user: DemoUser = 'ada'): Promise<string> {
    const paid = await this.call(
      `mutation ($input: PayForOrderInput!) { payForOrder(input: $input) { status } }`,
      { input: { orderId, paymentToken, idempotencyKey: `key-${randomUUID()}` } },
      user,
    );
    return paid.payForOrder.status as string;
  }

  async changeStatus(orderId: string, status: string): Promise<void> {
    await this.call(
      `mutation ($input: ChangeOrderStatusInput!) { changeOrderStatus(input: $input) { status } }`,
      { input: { orderId, status } },
      'chef',
    );
  }

  async cancel(orderId: string, user: DemoUser = 'ada'): Promise<string> {
    const cancelled = await this.call(
      `mutation ($input: CancelOrderInput!) { cancelOrder(input: $input) { status } }`,
      { input: { orderId } },
      user,
    );
    return cancelled.cancelOrder.status as string;
  }

  async order(orderId: string): Promise<any> {
    return (await this.call(ORDER, { id: orderId }, 'chef')).order;
  }

  /** Polls the order (as the kitchen) until it has `status`; fails with what it last saw. */
  async orderOnceItIs(orderId: string, status: string, timeoutMs = 20_000): Promise<any> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const order = await this.order(orderId);
      if (order?.status === status) return order;
      if (Date.now() > deadline) throw new Error(`order ${orderId} never reached ${status}: ${JSON.stringify(order)}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  async call(query: string, variables: Record<string, unknown> = {}, user?: DemoUser): Promise<any> {
    const response = await this.post(this.gatewayUrl, { query, variables }, user ? this.headers(user) : {});
    expect(response.errors, `${query}\n${JSON.stringify(variables)}`).toBeUndefined();
    return response.data;
  }
}
