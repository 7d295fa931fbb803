import { createHash } from 'node:crypto';
import type { ChargeRequest, ChargeResult, PaymentProvider, RefundRequest, RefundResult } from './payment-provider.js';

/** Test tokens with fixed outcomes, so development and tests never touch a real processor. */
export const SandboxTokens = {
  success: 'tok_sandbox_success',
  decline: 'tok_sandbox_decline',
  error: 'tok_sandbox_error',
} as const;

/** A deterministic provider: the outcome depends only on the token, the reference only on the key. */
export class SandboxPaymentProvider implements PaymentProvider {
  /**
   * Money that actually moved, by idempotency key, as a real processor's ledger would show it: a
   * repeated key moves nothing new. Tests read it to prove "charged once, refunded once".
   */
  readonly ledger = { charges: new Map<string, number>(), refunds: new Map<string, number>() };

  async charge({ paymentToken, idempotencyKey, amount }: ChargeRequest): Promise<ChargeResult> {
    switch (paymentToken) {
      case SandboxTokens.success:
        if (!this.ledger.charges.has(idempotencyKey)) this.ledger.charges.set(idempotencyKey, amount);
        return { outcome: 'succeeded', reference: sandboxReference(idempotencyKey) };
      case SandboxTokens.decline:
        return { outcome: 'declined', reason: 'Your card was declined' };
      case SandboxTokens.error:
        return { outcome: 'failed', reason: 'The payment provider had an error; try again' };
      default:
        return { outcome: 'declined', reason: 'The payment method is not known to the provider' };
    }
  }

  async refund({ chargeReference, amount, idempotencyKey }: RefundRequest): Promise<RefundResult> {
    if (!chargeReference.startsWith('sandbox_ch_')) return { outcome: 'failed', reason: 'Unknown charge' };
    if (!this.ledger.refunds.has(idempotencyKey)) this.ledger.refunds.set(idempotencyKey, amount);
    return { outcome: 'refunded', reference: sandboxReference(`refund:${idempotencyKey}`).replace('_ch_', '_re_') };
  }
}

/** Same key, same reference: what a real provider's idempotent charge would answer. */
export function sandboxReference(idempotencyKey: string): string {
  return `sandbox_ch_${createHash('sha256').update(idempotencyKey).digest('hex').slice(0, 24)}`;
}
