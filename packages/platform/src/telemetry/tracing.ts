import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  context,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Context,
  type Span,
} from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { registerInstrumentations } from '@opentelemetry/instrumentation';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { PrismaInstrumentation } from '@prisma/instrumentation';
import type { NextFunction, Request, Response } from 'express';
import { z } from 'zod';

/** The tracing variables every service reads (spread into its config schema). */
export const tracingEnv = {
  /** OTLP/HTTP collector base URL (e.g. http://otel-collector:4318); unset, tracing is a no-op. */
  OTEL_EXPORTER_OTLP_ENDPOINT: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional(),
  /** The `service.name` spans carry; defaults to the process's own name. */
  OTEL_SERVICE_NAME: z.string().min(1).optional(),
};

export interface Tracing {
  /** Flushes spans not yet exported, then stops exporting. */
  shutdown(): Promise<void>;
}

let started: NodeTracerProvider | undefined;

/**
 * Traces with OpenTelemetry when OTEL_EXPORTER_OTLP_ENDPOINT is set, and costs nothing otherwise (the
 * API's no-op tracer stays in place). Once per process, before its services start: it installs the
 * W3C trace-context propagator (so the gateway's fetches carry `traceparent` and subgraphs continue
 * the trace), async context tracking (so log lines can carry the trace id) and Prisma's spans.
 * `exporter` replaces OTLP (tests).
 */
export function startTracing(
  serviceName: string,
  env: { OTEL_EXPORTER_OTLP_ENDPOINT?: string; OTEL_SERVICE_NAME?: string },
  exporter?: SpanExporter,
): Tracing {
  const endpoint = env.OTEL_EXPORTER_OTLP_ENDPOINT;
  if (!exporter && !endpoint) return { shutdown: async () => {} };
  if (started) throw new Error('tracing is already started in this process');
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ 'service.name': env.OTEL_SERVICE_NAME ?? serviceName }),
    spanProcessors: [
      new BatchSpanProcessor(exporter ?? new OTLPTraceExporter({ url: `${endpoint!.replace(/\/+$/, '')}/v1/traces` }), {
        scheduledDelayMillis: 1_000,
      }),
    ],
  });
  provider.register();
  started = provider;
  const unregister = registerInstrumentations({
    tracerProvider: provider,
    instrumentations: [new PrismaInstrumentation()],
  });
  return {
    shutdown: async () => {
      unregister();
      await provider.shutdown();
      trace.disable();
      context.disable();
      propagation.disable();
      started = undefined;
    },
  };
}

/** The SERVER span of each request being handled, once it has one. */
const requestSpans = new WeakMap<IncomingMessage, { span: Span; parent: Context }>();

/**
 * The SERVER span of a GraphQL request, continuing the caller's trace from its `traceparent`: made on
 * first use and ended when the response is finished, so a request handled in two stages (answered
 * from a cache before Express, or handed on to it) is one span.
 */
function requestSpan(server: string, req: IncomingMessage, res: ServerResponse): { span: Span; parent: Context } {
  let known = requestSpans.get(req);
  if (known) return known;
  const parent = propagation.extract(ROOT_CONTEXT, req.headers);
  // Express rewrites `url` below its mount point; `originalUrl` is the request's own.
  const url = (req as { originalUrl?: string }).originalUrl ?? req.url ?? '/';
  const path = new URL(url, 'http://request').pathname;
  // Looked up per request, not at import: a tracer taken before startTracing stays a no-op one.
  const span = trace.getTracer('@food/platform').startSpan(
    `${req.method} ${path}`,
    {
      kind: SpanKind.SERVER,
      attributes: { 'http.request.method': req.method ?? '', 'url.path': url, 'food.server': server },
    },
    parent,
  );
  res.once('finish', () => {
    span.setAttribute('http.response.status_code', res.statusCode);
    if (res.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
    span.end();
  });
  known = { span, parent };
  requestSpans.set(req, known);
  return known;
}

/** Runs `work` inside the request's SERVER span (see `traceRequests`). */
export function inRequestSpan<T>(server: string, req: IncomingMessage, res: ServerResponse, work: () => T): T {
  const { span, parent } = requestSpan(server, req, res);
  return context.with(trace.setSpan(parent, span), work);
}

/**
 * Express middleware: a SERVER span for each GraphQL request, continuing the caller's trace from its
 * `traceparent`, active while the request is handled (Apollo's spans, fetches to subgraphs and
 * Prisma's queries become its children). Mounted after the body parser: body-parser's callbacks run
 * in the socket's async context, which would lose the active span.
 */
export function traceRequests(server: string) {
  return (req: Request, res: Response, next: NextFunction) => inRequestSpan(server, req, res, next);
}

/**
 * Runs `work` inside a child span of the active one, named `name`, ended when it settles (with an
 * error status if it throws). Without tracing it only calls `work`: the API's no-op tracer.
 */
export function inSpan<T>(name: string, attributes: Record<string, string>, work: () => Promise<T>): Promise<T> {
  return trace.getTracer('@food/platform').startActiveSpan(name, { attributes }, async (span) => {
    try {
      return await work();
    } catch (error) {
      span.setStatus({ code: SpanStatusCode.ERROR });
      throw error;
    } finally {
      span.end();
    }
  });
}

/** Adds the active trace's `traceparent` to an outgoing request's headers (gateway -> subgraph). */
export function injectTraceContext(headers: { set(name: string, value: string): void }): void {
  propagation.inject(context.active(), headers, { set: (carrier, key, value) => carrier.set(key, value) });
}

/** The span of the request being handled, if tracing is on. */
export function activeSpan(): Span | undefined {
  const span = trace.getActiveSpan();
  return span?.isRecording() ? span : undefined;
}

/** `trace_id` and `span_id` for a log line written while a traced request is handled. */
export function traceLogFields(): Record<string, string> {
  const span = activeSpan();
  if (!span) return {};
  const { traceId, spanId } = span.spanContext();
  return { trace_id: traceId, span_id: spanId };
}
