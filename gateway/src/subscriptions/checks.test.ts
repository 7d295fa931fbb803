import { describe, expect, it } from 'vitest';
import { composeSubgraphs, CompositionError } from '../compose/compose.js';

/** A one-subgraph supergraph whose Subscription field is declared with `declaration`. */
function compose(field: string, declaration: string) {
  const sdl = `
    extend schema
      @link(url: "https://specs.apollo.dev/federation/v2.7", import: ["@key", "@composeDirective"])
      @link(url: "https://specs.food-supergraph.dev/live/v0.1", import: ["@subscribe"])
      @composeDirective(name: "@subscribe")
    directive @subscribe(event: String!, entity: String!, where: String, fields: String, version: String,
      until: String, audience: String = "CALLER", scopes: [[String!]!]) on FIELD_DEFINITION
    type Order @key(fields: "id") { id: ID! status: String! version: Int! }
    type Query { order(id: ID!): Order }
    type Subscription { ${field} @subscribe(${declaration}) }`;
  return composeSubgraphs([{ name: 'orders', sdl }]);
}

function problems(field: string, declaration: string): string[] {
  try {
    compose(field, declaration);
  } catch (error) {
    if (error instanceof CompositionError) return error.problems.map((problem) => problem.message);
    throw error;
  }
  return [];
}

const valid = 'event: "order.status_changed", entity: "{ id: orderId }", where: "{ orderId: $orderId }"';

describe('pnpm compose checks every @subscribe declaration', () => {
  it('accepts one whose event, data fields, arguments and key all exist', () => {
    expect(problems('tracked(orderId: ID!): Order!', `${valid}, fields: "{ status: to, version: version }"`)).toEqual(
      [],
    );
  });

  it('refuses an event the shared definitions do not define', () => {
    expect(problems('tracked(orderId: ID!): Order!', 'event: "order.teleported", entity: "{ id: orderId }"')).toEqual([
      "Subscription.tracked: @subscribe names event order.teleported, which packages/platform's event definitions do not define",
    ]);
  });

  it('refuses a key, condition or field the event does not carry, and an argument the field lacks', () => {
    expect(
      problems(
        'tracked(orderId: ID!): Order!',
        'event: "order.status_changed", entity: "{ id: orderUuid }", where: "{ orderId: $id, colour: $orderId }", fields: "{ status: state }"',
      ),
    ).toEqual([
      'Subscription.tracked: entity reads orderUuid, which event order.status_changed does not carry',
      'Subscription.tracked: fields reads state, which event order.status_changed does not carry',
      'Subscription.tracked: where uses $id, which is not an argument of the field',
      'Subscription.tracked: where reads colour, which event order.status_changed does not carry',
    ]);
  });

  it('refuses an entity mapping that is not a key of the type, and a field the type lacks', () => {
    expect(
      problems(
        'tracked(orderId: ID!): Order!',
        'event: "order.status_changed", entity: "{ customerId: customerId }", fields: "{ colour: to }"',
      ),
    ).toEqual([
      'Subscription.tracked: fields sets Order.colour, which does not exist',
      'Subscription.tracked: entity { customerId } is not a resolvable @key of Order in subgraph orders (its keys: "id")',
    ]);
  });
});
