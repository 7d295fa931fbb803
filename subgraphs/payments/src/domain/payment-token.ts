import { badInput } from '@food/platform';

const TOKEN = /^tok_[A-Za-z0-9_]{3,100}$/;
/** 13 to 19 digits, optionally grouped by spaces or dashes, anywhere in the input. */
const CARD_NUMBER_LIKE = /(?:\d[ -]*){12,18}\d/;

export const CARD_NUMBER_REFUSED = 'Send a payment-method token from the provider, never a card number';

/**
 * Returns the token when it is a provider token. Card-like input is refused without being echoed,
 * so it never reaches the database, the logs or the response.
 */
export function parsePaymentToken(input: unknown): string {
  if (typeof input !== 'string') throw badInput('paymentToken must be a string', { field: 'paymentToken' });
  if (CARD_NUMBER_LIKE.test(input)) throw badInput(CARD_NUMBER_REFUSED, { field: 'paymentToken' });
  if (!TOKEN.test(input)) {
    throw badInput('paymentToken must be a provider token: tok_ followed by 3 to 100 letters, digits or _', {
      field: 'paymentToken',
    });
  }
  return input;
}
