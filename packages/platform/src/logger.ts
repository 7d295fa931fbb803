import { pino, type Logger } from 'pino';
import { traceLogFields } from './telemetry/tracing.js';

export type { Logger };

/**
 * Structured JSON logs. Anything that could carry a secret or personal data is redacted by path.
 * A line written while a traced request is handled carries its `trace_id` and `span_id`.
 */
export function createLogger(service: string, level = 'info'): Logger {
  return pino({
    name: service,
    level,
    base: { service },
    mixin: traceLogFields,
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
