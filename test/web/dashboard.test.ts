/**
 * The dashboard in a real browser (Debian's Chromium through playwright-core), against the service
 * as `npm start` runs it, behind a TCP proxy the test can cut. Screenshots of each view go to
 * test-artifacts/web/. Figures (the bundle's gzipped size as served, time to first live price) are
 * printed and written to test-artifacts/web/figures.json (render-speed.test.ts writes those at 20k
 * ticks/s); they are measured, not asserted, beyond "the page keeps working".
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { ARTIFACTS, launchBrowser, startApp, startProxy, type App, type Proxy } from './support.ts';

let app: App;
let proxy: Proxy;
let browser: Browser;
let page: Page;
const figures: Record<string, unknown> = {};

const ASSETS = fileURLToPath(new URL('../../web/dist/assets', import.meta.url));
const shot = (name: string) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`) });
const ltpOf = (symbol: string) => page.locator(`[data-testid=watch-row][data-symbol="${symbol}"] [data-testid=ltp]`);

beforeAll(async () => {
  app = await startApp({ SIM_RATE: '2000', LOG_LEVEL: 'debug' });
  // The service has built web/dist by now; what a browser downloads, gzipped as the service sends it (level 9).
  for (const ext of ['js', 'css']) {
    const files = readdirSync(ASSETS).filter((f) => f.endsWith(`.${ext}`));
    figures[`${ext}Bytes`] = files.reduce((n, f) => n + readFileSync(join(ASSETS, f)).length, 0);
    figures[`${ext}GzipBytes`] = files.reduce((n, f) => n + gzipSync(readFileSync(join(ASSETS, f)), { level: 9 }).length, 0);
  }
  proxy = await startProxy(app.port);
  browser = await launchBrowser();
  page = await browser.newPage({ viewport: { width: 1366, height: 768 } });
}, 180_000);

afterAll(async () => {
  writeFileSync(join(ARTIFACTS, 'figures.json'), `${JSON.stringify(figures, null, 2)}\n`);
  console.log('dashboard figures', figures);
  await browser?.close();
  await proxy?.close();
  await app?.stop();
});

describe('the dashboard', () => {
  it('signs in with the dev key, shows the paper mode and live prices that change', async () => {
    const t0 = Date.now();
    await page.goto(`http://127.0.0.1:${proxy.port}/`);
    await page.getByTestId('key-input').fill(app.devKey);
    await page.getByTestId('sign-in').click();
    await expect.poll(() => page.getByTestId('key-mode').textContent(), { timeout: 20_000 }).toMatch(/paper/i);
    const nifty = ltpOf('NIFTY 50');
    await nifty.waitFor({ timeout: 20_000 });
    await expect.poll(async () => (await nifty.textContent())?.trim() ?? '', { timeout: 20_000 }).toMatch(/\d/);
    figures.navigationToFirstPriceMs = await page.evaluate(() => (globalThis as any).__n50?.firstPriceAt ?? null);
    figures.signInToFirstPriceWallMs = Date.now() - t0;
    // Some watched price changes within a second of being looked at.
    const before = await page.getByTestId('watchlist').innerText();
    const changedAt = Date.now();
    await expect.poll(() => page.getByTestId('watchlist').innerText(), { timeout: 10_000, interval: 50 }).not.toBe(before);
    figures.watchlistChangeMs = Date.now() - changedAt;
    await shot('watchlist');
  });

  it('opens a chart with candles and a live last bar for the selected instrument', async () => {
    await page.locator('[data-testid=watch-row][data-symbol="INFY"]').click();
    await page.getByTestId('depth').waitFor();
    await page.getByTestId('tf-1m').click();
    const state = () => page.evaluate(() => (globalThis as any).__n50.chartState() as { candles: number; lastTime: number | null; lastClose: number | null; tf: string });
    await expect.poll(async () => (await state()).candles, { timeout: 20_000 }).toBeGreaterThan(0);
    const first = await state();
    expect(first.tf).toBe('1m');
    await expect.poll(async () => (await state()).lastClose, { timeout: 20_000 }).not.toBe(first.lastClose);
    await shot('chart');
  });

  it('shows the option chain with IV', async () => {
    await page.getByTestId('chain').scrollIntoViewIfNeeded();
    const iv = page.locator('[data-testid=chain-row] [data-testid=iv-ce]').first();
    await expect.poll(async () => (await iv.textContent())?.trim() ?? '', { timeout: 30_000 }).toMatch(/\d/);
    await shot('option-chain');
  });

  it('refuses a bad quantity beside the field, then places a paper market order that completes and shows in positions', async () => {
    await page.locator('[data-testid=watch-row][data-symbol="INFY"]').click();
    await page.keyboard.press('b');
    const ticket = page.getByTestId('ticket');
    await ticket.waitFor();
    await ticket.locator('[name=quantity]').fill('0');
    await ticket.locator('[name=order_type][value=MARKET]').check();
    await page.getByTestId('place').click();
    await expect.poll(async () => (await page.getByTestId('error-quantity').textContent()) ?? '', { timeout: 10_000 }).toMatch(/quantity/i);
    await shot('ticket-error');
    await ticket.locator('[name=quantity]').fill('3');
    await page.getByTestId('place').click();
    const done = page.locator('[data-testid=order-row][data-status=COMPLETE]');
    await done.first().waitFor({ timeout: 20_000 });
    await page.locator('[data-testid=position-row][data-symbol="INFY"]').waitFor({ timeout: 20_000 });
    await shot('blotter-positions');
  });

  it('dims the prices and says since when they are stale when the connection is cut, and recovers on its own', async () => {
    const terminal = page.getByTestId('terminal');
    const banner = page.getByTestId('feed-banner');
    const nifty = ltpOf('NIFTY 50');
    const opacity = () => nifty.evaluate((el) => (globalThis as any).getComputedStyle(el).opacity as string);
    const boxes = () => Promise.all(['watchlist', 'chain', 'positions'].map((id) => page.getByTestId(id).boundingBox()));
    expect(await terminal.getAttribute('data-feed')).toBe('live');
    expect(await opacity()).toBe('1');
    const before = await boxes();

    proxy.cut();
    await expect.poll(() => page.getByTestId('feed-status').getAttribute('data-state'), { timeout: 20_000 }).not.toBe('live');
    await expect.poll(() => terminal.getAttribute('data-feed'), { timeout: 5_000 }).not.toBe('live');
    await banner.waitFor({ state: 'visible', timeout: 5_000 });
    expect(await banner.textContent()).toMatch(/since \d\d:\d\d:\d\d IST/);
    await expect.poll(async () => Number(await opacity()), { timeout: 5_000 }).toBeLessThan(1);
    // The banner lies over the page: no panel moved or changed size.
    expect(await boxes()).toEqual(before);
    await shot('stale');

    proxy.restore();
    await expect.poll(() => page.getByTestId('feed-status').getAttribute('data-state'), { timeout: 30_000 }).toBe('live');
    await banner.waitFor({ state: 'detached', timeout: 5_000 });
    expect(await terminal.getAttribute('data-feed')).toBe('live');
    expect(await opacity()).toBe('1');
  });

  it('shows pipeline health and switches themes', async () => {
    await page.getByTestId('health').scrollIntoViewIfNeeded();
    await expect.poll(async () => (await page.getByTestId('health').innerText()).length, { timeout: 10_000 }).toBeGreaterThan(20);
    await shot('health');
    await page.getByTestId('theme').click();
    await shot('dark');
  });

  it('keeps the API key out of the service\'s logs', () => {
    // The start-up line prints the dev key once, by design; nothing after it may.
    const startup = app.lines.findIndex((l) => typeof l.devKey === 'string');
    const after = app.lines.slice(startup + 1).map((l) => JSON.stringify(l)).join('\n');
    expect(after).toContain('"msg":"request"'); // the access log ran
    expect(after).not.toContain(app.devKey);
  });
});
