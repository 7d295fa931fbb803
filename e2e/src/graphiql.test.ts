import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium } from './browser.js';
import { startTestSupergraph } from './harness.js';
import { Shop } from './shop.js';

let t: Awaited<ReturnType<typeof startTestSupergraph>>;
let shop: Shop;
let browser: Browser;

beforeAll(async () => {
  t = await startTestSupergraph();
  shop = await new Shop(t.post, t.supergraph.gatewayUrl).open();
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
  await t?.stop();
});

/**
 * Opens the gateway's IDE as a developer would, with `query` in the editor and `headers` in the headers
 * editor (set where GraphiQL keeps them, before the page loads), recording every URL the page asks for.
 */
async function openIde(query: string, headers?: Record<string, string>): Promise<{ page: Page; requested: string[] }> {
  const page = await browser.newPage();
  const requested: string[] = [];
  page.on('request', (request) => requested.push(request.url()));
  await page.addInitScript(
    ([storedQuery, storedHeaders]) => {
      // Runs in the page; this package's types have no DOM.
      const storage = (globalThis as unknown as { localStorage: { setItem(key: string, value: string): void } })
        .localStorage;
      storage.setItem('graphiql:query', storedQuery);
      if (storedHeaders) storage.setItem('graphiql:headers', storedHeaders);
    },
    [query, headers ? JSON.stringify(headers) : ''] as const,
  );
  await page.goto(t.supergraph.gatewayUrl);
  await page.waitForSelector('.graphiql-query-editor .CodeMirror', { timeout: 15_000 });
  await expect.poll(() => page.locator('.graphiql-query-editor').innerText()).toContain(query.split(' ')[0]);
  return { page, requested };
}

/** Runs what is in the editor, with the button a developer clicks. */
const run = (page: Page) => page.click('.graphiql-execute-button');

const resultText = (page: Page) => page.locator('.result-window').innerText();

describe('GraphiQL in the development gateway', () => {
  it('loads with no request off this machine, runs a query and shows the result', async () => {
    const { page, requested } = await openIde('query TwoMeals { meals(first: 2) { edges { node { name } } } }');
    try {
      await run(page);
      const expected = (await shop.call('{ meals(first: 2) { edges { node { name } } } }')).meals.edges.map(
        (edge: { node: { name: string } }) => edge.node.name,
      ) as string[];
      await expect.poll(() => resultText(page), { timeout: 10_000 }).toContain(expected[0]!);
      expect(await resultText(page)).toContain(expected[1]!);
      const origin = new URL(t.supergraph.gatewayUrl).origin;
      expect(requested.filter((url) => !url.startsWith(origin) && !url.startsWith('data:'))).toEqual([]);
    } finally {
      await page.close();
    }
  });

  it('follows an order over a subscription (graphql-ws), authenticated by the headers editor', async () => {
    const orderId = await shop.placeOrder('ada');
    const { page } = await openIde(
      `subscription Track { orderStatusChanged(orderId: "${orderId}") { status version } }`,
      { Authorization: `Bearer ${shop.tokens.ada}` },
    );
    try {
      await run(page);
      await expect.poll(() => resultText(page), { timeout: 10_000 }).toContain('PENDING_PAYMENT');
      await shop.pay(orderId);
      await expect.poll(() => resultText(page), { timeout: 15_000 }).toContain('PAID');
    } finally {
      await page.close();
    }
  });
});
