export * from './events.js';
export * from './outbox.js';
export * from './types.js';
export * from './messaging.js';
export * from './outbox-relay.js';
export * from './redis-event-bus.js';
export * from './in-process.js';
export * from './bullmq-jobs.js';
