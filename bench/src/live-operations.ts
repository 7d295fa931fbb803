/**
 * The operations of the subscription scenarios, and how a change is named: the same key from the
 * change mutation's response (when it was made) and from a subscriber's result (when it arrived), so
 * that every receipt is matched to the change it shows. Shared by the bench and the subscriber client.
 */

/** Order scenario: one order, as its customer. */
export const TRACK = `subscription Track($id: ID!) { orderStatusChanged(orderId: $id) { id status version customer { name } items { quantity meal { name } } payment { status } } }`;
/** Feed scenario: every order, as staff. */
export const FEED = `subscription Feed { orderUpdates { id status version customer { name } items { quantity meal { name } } payment { status } } }`;
/** Menu scenario: meals' availability and price, anonymously; `$mealIds` null follows every meal. */
export const MENU = `subscription Menu($mealIds: [ID!]) { mealAvailabilityChanged(mealIds: $mealIds) { id name available price { amount currency } version } }`;

export const CHANGE_ORDER = `mutation Change($input: ChangeOrderStatusInput!) { changeOrderStatus(input: $input) { id status version } }`;
export const CHANGE_MEAL = `mutation ChangeMeal($id: ID!, $input: UpdateMealInput!) { updateMeal(id: $id, input: $input) { id available price { amount currency } version } }`;

/** What the entity of a result is: an order (its status changes) or a meal (its availability or price). */
export type ReceiptKind = 'order' | 'meal';

/**
 * The change an entity shows: an order's id and status; a meal's id, version, availability and price
 * (each change gives the meal a new version, and the values show that the result is the change's own).
 */
export function changeKey(kind: ReceiptKind, entity: unknown): string | undefined {
  if (!entity || typeof entity !== 'object') return undefined;
  const e = entity as Record<string, unknown>;
  if (typeof e.id !== 'string') return undefined;
  if (kind === 'order') return typeof e.status === 'string' ? `${e.id} ${e.status}` : undefined;
  const price = e.price as { amount?: unknown; currency?: unknown } | undefined;
  if (typeof e.version !== 'number' || typeof e.available !== 'boolean' || !price) return undefined;
  return `${e.id} v${e.version} available=${e.available} price=${String(price.amount)} ${String(price.currency)}`;
}
