import { createHash } from 'node:crypto';
import type { ChargeRequest, ChargeResult, PaymentProvider } from './payment-provider.js';

/** Test tokens with fixed outcomes, so development and tests never touch a real processor. */
export const SandboxTokens = {
  success: 'tok_sandbox_success',
  decline: 'tok_sandbox_decline',
  error: 'tok_sandbox_error',
} as const;

/** A deterministic provider: the outcome depends only on the token, the reference only on the key. */
export class SandboxPaymentProvider implements PaymentProvider {
  async charge({ paymentToken, idempotencyKey }: ChargeRequest): Promise<ChargeResult> {
    switch (paymentToken) {
      case SandboxTokens.success:
        return { outcome: 'succeeded', reference: sandboxReference(idempotencyKey) };
      case SandboxTokens.decline:
        return { outcome: 'declined', reason: 'Your card was declined' };
      case SandboxTokens.error:
        return { outcome: 'failed', reason: 'The payment provider had an error; try again' };
      default:
        return { outcome: 'declined', reason: 'The payment method is not known to the provider' };
    }
  }
}

/** Same key, same reference: what a real provider's idempotent charge would answer. */
export function sandboxReference(idempotencyKey: string): string {
  return `sandbox_ch_${createHash('sha256').update(idempotencyKey).digest('hex').slice(0, 24)}`;
}
