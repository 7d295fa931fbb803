/** What a charge needs: the amount comes from the order, never from the client. */
export interface ChargeRequest {
  /** Minor units. */
  amount: number;
  /** ISO-4217. */
  currency: string;
  /** The provider's payment-method token (validated: never card data). */
  paymentToken: string;
  /** Repeating a charge with the same key must not take the money twice. */
  idempotencyKey: string;
}

export type ChargeResult =
  | { outcome: 'succeeded'; reference: string }
  | { outcome: 'declined'; reason: string }
  | { outcome: 'failed'; reason: string };

export interface RefundRequest {
  /** The provider's reference of the charge to pay back. */
  chargeReference: string;
  amount: number;
  currency: string;
  /** Repeating a refund with the same key must not pay back twice. */
  idempotencyKey: string;
}

export type RefundResult = { outcome: 'refunded'; reference: string } | { outcome: 'failed'; reason: string };

/** A card processor, behind a port so the domain and tests do not depend on a real one. */
export interface PaymentProvider {
  charge(request: ChargeRequest): Promise<ChargeResult>;
  refund(request: RefundRequest): Promise<RefundResult>;
}
