import { counter, sampledGauge } from '../telemetry/metrics.js';

/** What events and jobs count, on the process's `/metrics`. */
export const messagingMetrics = {
  eventsPublished: counter('events_published_total', 'Events appended to their stream by an outbox relay.', [
    'stream',
    'type',
  ]),
  eventsConsumed: counter(
    'events_consumed_total',
    "Deliveries to a consumer group's handler: ok, retry (the handler threw; tried again) or dead_letter.",
    ['stream', 'group', 'outcome'],
  ),
  eventsUnconfirmed: counter(
    'events_unconfirmed_total',
    'Publishes by an outbox relay that too few Redis replicas confirmed: their rows stay unpublished and are sent again.',
    ['stream'],
  ),
  outboxPending: sampledGauge('outbox_pending_events', 'Outbox rows not yet published to the event bus.', ['outbox']),
  outboxLag: sampledGauge(
    'outbox_lag_seconds',
    'Age of the oldest unpublished outbox row (0 when all are published).',
    ['outbox'],
  ),
  jobsProcessed: counter(
    'jobs_processed_total',
    'Job runs, by outcome (a failed run is retried until its attempts are used up).',
    ['queue', 'job', 'outcome'],
  ),
  queueDepth: sampledGauge('job_queue_depth', 'Jobs waiting, delayed or running.', ['queue']),
  queueFailed: sampledGauge('job_queue_failed_jobs', 'Jobs in the failed set: their attempts are used up.', ['queue']),
};
