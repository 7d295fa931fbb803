import { auditServer, type AuditResult } from 'graphql-http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestSupergraph } from './harness.js';
import { ServiceProcess } from './service-process.js';

/**
 * The GraphQL-over-HTTP spec's audit suite (the `graphql-http` package) against the gateway. Every
 * MUST passes. What remains, and why (README, "GraphQL over HTTP"):
 * - 3 SHOULDs: for `Accept: application/json` the spec suggests 200 for documents that do not parse,
 *   validate or coerce; Apollo Server answers 400 (as the spec requires for
 *   application/graphql-response+json), which clients handle and caches do not store.
 * - 3 MAYs about GET: CSRF prevention refuses a GET that a web page could send without a preflight
 *   (no `Content-Type: application/json`, no `Apollo-Require-Preflight`); with it off they pass.
 */
const knownWarnings = [
  'SHOULD use 200 status code on document parsing failure when accepting application/json',
  'SHOULD use 200 status code on document validation failure when accepting application/json',
  'SHOULD use a status code of 200 on variable coercion failure when accepting application/json',
];
const refusedByCsrfPrevention = [
  'MAY accept application/x-www-form-urlencoded formatted GET requests',
  'MAY allow URL-encoded JSON string {variables} parameter in GETs when accepting application/json',
  'MAY allow URL-encoded JSON string {variables} parameter in GETs when accepting application/graphql-response+json',
];

let t: Awaited<ReturnType<typeof startTestSupergraph>>;
let withoutCsrfPrevention: ServiceProcess | undefined;

beforeAll(async () => {
  t = await startTestSupergraph();
});
afterAll(async () => {
  await withoutCsrfPrevention?.stop();
  await t?.stop();
});

const names = (results: AuditResult[], status: AuditResult['status']) =>
  results
    .filter((result) => result.status === status)
    .map((result) => result.name)
    .sort();

describe('the graphql-http audit suite against the gateway', () => {
  it('passes every MUST, and fails only the SHOULDs and MAYs explained above', async () => {
    const results = await auditServer({ url: t.supergraph.gatewayUrl });
    const report = results.map((result) => `${result.status.padEnd(6)} ${result.name}`).join('\n');
    expect(results.length, report).toBeGreaterThan(50);
    expect(names(results, 'error'), report).toEqual([]);
    expect(names(results, 'warn'), report).toEqual([...knownWarnings].sort());
    expect(names(results, 'notice'), report).toEqual([...refusedByCsrfPrevention].sort());
    expect(results.filter((result) => result.name.startsWith('MUST')).every((result) => result.status === 'ok')).toBe(
      true,
    );
  });

  it('passes the GET audits too when CSRF prevention is turned off', async () => {
    withoutCsrfPrevention = await ServiceProcess.start('gateway', {
      ...t.processEnv,
      GATEWAY_PORT: '0',
      CSRF_PREVENTION: 'false',
    });
    const results = await auditServer({ url: withoutCsrfPrevention.url });
    expect(names(results, 'error')).toEqual([]);
    expect(names(results, 'notice')).toEqual([]);
    expect(names(results, 'warn')).toEqual([...knownWarnings].sort());
  });
});
