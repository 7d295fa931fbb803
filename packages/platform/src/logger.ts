import { pino, type Logger } from 'pino';

export type { Logger };

/** Structured JSON logs. Anything that could carry a secret or personal data is redacted by path. */
export function createLogger(service: string, level = 'info'): Logger {
  return pino({
    name: service,
    level,
    base: { service },
    redact: {
      paths: [
        'password',
        '*.password',
        'token',
        '*.token',
        'authorization',
        '*.authorization',
        'headers.authorization',
        'req.headers.authorization',
        'paymentToken',
        '*.paymentToken',
        'phone',
        '*.phone',
        'deliveryAddress',
        '*.deliveryAddress',
        'email',
        '*.email',
        'variables',
      ],
      censor: '[redacted]',
    },
  });
}
