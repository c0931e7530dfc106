// The file manager in a real browser: Debian's chromium, headless, driven by playwright-core,
// against a gateway with Basic auth (alice may write, bob may only read). Upload with the file
// input (progress per file) and by drag and drop, new folder from the keyboard, rename, delete
// with confirmation, download byte-identical, sorting, a name made of HTML shown as text, no
// request to any other origin and no console error. DAVGATE_SCREENSHOT=FILE saves the page.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import bcrypt from 'bcryptjs';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { startGateway, type TestGateway } from '../helpers/inproc.js';

const CHROMIUM = '/usr/bin/chromium';
const missing = existsSync(CHROMIUM) ? undefined : 'chromium is not installed (Debian package chromium)';
const XSS = '<img src=x onerror=alert(1)>.txt';
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

interface Watched { page: Page; errors: string[]; foreign: string[]; dialogs: string[] }

describe('file manager in chromium', { skip: missing }, () => {
  let gw: TestGateway;
  let browser: Browser;
  let work: string;
  let origin: string;
  const contexts: BrowserContext[] = [];

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'davgate-browser-'));
    const htpasswd = join(work, 'htpasswd');
    await writeFile(htpasswd, `alice:${bcrypt.hashSync('alice-pw', 8)}\nbob:${bcrypt.hashSync('bob-pw', 8)}\n`);
    gw = await startGateway({ auth: { htpasswd, readOnlyUsers: ['bob'] } });
    origin = new URL(gw.url).origin;
    await mkdir(join(gw.upstreamDir, 'docs'));
    await writeFile(join(gw.upstreamDir, 'docs', 'readme.txt'), 'inside docs\n');
    await writeFile(join(gw.upstreamDir, XSS), 'not html\n');
    await writeFile(join(gw.upstreamDir, 'small.txt'), 'small\n');
    await writeFile(join(gw.upstreamDir, 'medium.bin'), randomBytes(300_000));
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
  });
  after(async () => {
    for (const c of contexts) await c.close().catch(() => undefined);
    await browser?.close();
    await gw?.close();
    await rm(work, { recursive: true, force: true });
  });

  async function open(user: string, password: string, path = '/'): Promise<Watched> {
    const context = await browser.newContext({ httpCredentials: { username: user, password }, acceptDownloads: true });
    contexts.push(context);
    const page = await context.newPage();
    const w: Watched = { page, errors: [], foreign: [], dialogs: [] };
    page.on('console', (m) => { if (m.type() === 'error') w.errors.push(m.text()); });
    page.on('pageerror', (e) => w.errors.push(String(e)));
    page.on('request', (r) => { if (!r.url().startsWith(origin + '/') && !/^(data|blob):/.test(r.url())) w.foreign.push(r.url()); });
    const res = await page.goto(gw.url.replace(/\/$/, '') + path);
    assert.equal(res?.status(), 200);
    return w;
  }
  const names = (page: Page) => page.$$eval('#listing tbody tr', (rows) => rows.map((r) => (r as HTMLElement).dataset.name));

  test('the listing: breadcrumbs, sizes, absolute dates, cache state, an HTML name as text, sorting', async () => {
    const w = await open('alice', 'alice-pw');
    const { page } = w;
    page.on('dialog', (d) => { w.dialogs.push(d.message()); void d.dismiss(); });
    assert.deepEqual(await names(page), ['docs', XSS, 'medium.bin', 'small.txt'], 'folders first, then by name');
    assert.equal(await page.textContent(`#listing tr[data-name="${XSS.replace(/"/g, '\\"')}"] td.name a`), XSS);
    assert.equal(await page.$$eval('#listing img', (imgs) => imgs.length), 0, 'no element made from a name');
    assert.match((await page.textContent('tr[data-name="medium.bin"] td.mtime')) ?? '', /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);
    assert.equal(await page.textContent('tr[data-name="medium.bin"] td.size'), '293.0 KiB');
    assert.equal(await page.textContent('tr[data-name="medium.bin"] td.cache'), 'not cached');
    await page.keyboard.press('Tab'); // keyboard: the size header's button sorts by size
    await page.focus('th[data-sort="size"] button');
    await page.keyboard.press('Enter');
    assert.deepEqual(await names(page), ['docs', 'small.txt', XSS, 'medium.bin'], '6, 9 and 300k bytes');
    assert.equal(await page.getAttribute('th[data-sort="size"]', 'aria-sort'), 'ascending');
    await page.click('a.dir');
    await page.waitForURL(/\/docs\/$/);
    assert.deepEqual(await names(page), ['readme.txt']);
    assert.deepEqual(await page.$$eval('nav.crumbs a', (as) => as.map((a) => a.getAttribute('href'))), ['/']);
    assert.deepEqual(w.dialogs, [], 'no script ran from a name');
    assert.deepEqual(w.errors, []);
    assert.deepEqual(w.foreign, []);
  });

  test('upload several files with a progress bar each, and by drag and drop; the page shows their cache state', async () => {
    const w = await open('alice', 'alice-pw');
    const { page } = w;
    const big = randomBytes(24 * 1024 * 1024);
    const small = Buffer.from('a small upload\n');
    await page.evaluate(() => {
      const seen: string[] = [];
      (window as unknown as { seen: string[] }).seen = seen;
      new MutationObserver(() => {
        for (const s of document.querySelectorAll('#uploads li span:last-child')) seen.push(s.textContent ?? '');
      }).observe(document.getElementById('uploads')!, { subtree: true, childList: true, characterData: true });
    });
    await page.setInputFiles('#files', [
      { name: 'big upload.bin', mimeType: 'application/octet-stream', buffer: big },
      { name: 'small.upload.txt', mimeType: 'text/plain', buffer: small },
    ]);
    await page.waitForFunction(() => document.getElementById('status')?.textContent?.startsWith('Uploaded 2'), undefined, { timeout: 60_000 });
    assert.deepEqual(await page.$$eval('#uploads li span:last-child', (s) => s.map((x) => x.textContent)), ['done', 'done']);
    const bars = await page.$$eval('#uploads progress', (ps) => ps.map((p) => [(p as HTMLProgressElement).value, (p as HTMLProgressElement).max]));
    assert.deepEqual(bars, [[big.length, big.length], [small.length, small.length]]);
    const seen = await page.evaluate(() => (window as unknown as { seen: string[] }).seen);
    assert.ok(seen.some((s) => /^\d+ %$/.test(s)), `progress was shown before done: ${[...new Set(seen)].join(', ')}`);
    assert.equal(sha(await readFile(join(gw.upstreamDir, 'big upload.bin'))), sha(big));
    assert.ok((await readFile(join(gw.upstreamDir, 'small.upload.txt'))).equals(small));
    assert.ok((await names(page)).includes('big upload.bin'), 'the table was refreshed');

    const dropped = await page.evaluateHandle(() => {
      const dt = new DataTransfer();
      dt.items.add(new File(['dropped here\n'], 'dropped.txt', { type: 'text/plain' }));
      return dt;
    });
    await page.dispatchEvent('#drop', 'drop', { dataTransfer: dropped });
    await page.waitForFunction(() => document.getElementById('status')?.textContent === 'Uploaded 1 file', undefined, { timeout: 30_000 });
    assert.equal(await readFile(join(gw.upstreamDir, 'dropped.txt'), 'utf8'), 'dropped here\n');

    // Read once through the gateway: the page then says it is cached.
    await page.evaluate(async () => { await (await fetch('/small.upload.txt')).text(); });
    await page.reload();
    assert.equal(await page.textContent('tr[data-name="small.upload.txt"] td.cache'), 'cached');
    assert.deepEqual(w.errors, []);
    assert.deepEqual(w.foreign, []);
  });

  test('new folder from the keyboard, rename, delete with confirmation, download byte-identical', async () => {
    const w = await open('alice', 'alice-pw');
    const { page } = w;
    await page.focus('#folder-name');
    await page.keyboard.type('made in browser');
    await page.keyboard.press('Enter');
    await page.waitForSelector('tr[data-name="made in browser"]');
    assert.ok(existsSync(join(gw.upstreamDir, 'made in browser')));

    page.once('dialog', (d) => { assert.equal(d.type(), 'prompt'); void d.accept('renamed.txt'); });
    await page.click('tr[data-name="small.txt"] button.rename');
    await page.waitForSelector('tr[data-name="renamed.txt"]');
    assert.equal(await readFile(join(gw.upstreamDir, 'renamed.txt'), 'utf8'), 'small\n');
    assert.ok(!existsSync(join(gw.upstreamDir, 'small.txt')));

    page.once('dialog', (d) => { assert.equal(d.type(), 'confirm'); void d.dismiss(); });
    await page.click('tr[data-name="renamed.txt"] button.delete');
    await page.waitForTimeout(300);
    assert.ok(existsSync(join(gw.upstreamDir, 'renamed.txt')), 'a dismissed confirmation deletes nothing');
    page.once('dialog', (d) => void d.accept());
    await page.click('tr[data-name="renamed.txt"] button.delete');
    await page.waitForSelector('tr[data-name="renamed.txt"]', { state: 'detached' });
    assert.ok(!existsSync(join(gw.upstreamDir, 'renamed.txt')));

    const [download] = await Promise.all([page.waitForEvent('download'), page.click('tr[data-name="medium.bin"] td.name a')]);
    const saved = join(work, 'downloaded.bin');
    await download.saveAs(saved);
    assert.equal(sha(await readFile(saved)), sha(await readFile(join(gw.upstreamDir, 'medium.bin'))));
    assert.deepEqual(w.errors, []);
    assert.deepEqual(w.foreign, []);
    const shot = process.env.DAVGATE_SCREENSHOT;
    if (shot) {
      await mkdir(dirname(shot), { recursive: true });
      await page.setViewportSize({ width: 1000, height: 560 });
      await page.screenshot({ path: shot });
    }
  });

  test('a read-only user sees no write controls, and a write from the page is refused', async () => {
    const w = await open('bob', 'bob-pw');
    const { page } = w;
    assert.equal(await page.$('#files'), null);
    assert.equal(await page.$('#mkdir'), null);
    assert.equal(await page.$$eval('button.rename, button.delete', (b) => b.length), 0);
    assert.ok((await names(page)).includes('medium.bin'));
    assert.deepEqual(w.errors, []);
    assert.deepEqual(w.foreign, []);
    const status = await page.evaluate(async () => (await fetch('/bob.txt', { method: 'PUT', body: 'no' })).status);
    assert.equal(status, 403);
    assert.ok(!(await readdir(gw.upstreamDir)).includes('bob.txt'));
  });

  test('a change asked for by a page of another origin is refused; the page has a strict CSP', async () => {
    const auth = 'Basic ' + Buffer.from('alice:alice-pw').toString('base64');
    const foreign = await fetch(gw.url + 'csrf.txt', { method: 'PUT', body: 'x', headers: { authorization: auth, origin: 'http://evil.example' } });
    assert.equal(foreign.status, 403);
    const sameSite = await fetch(gw.url + 'csrf.txt', { method: 'PUT', body: 'x', headers: { authorization: auth, origin } });
    assert.equal(sameSite.status, 201);
    assert.ok(!(await fetch(gw.url + 'x/', { method: 'MKCOL', headers: { authorization: auth, origin: 'null' } })).ok);
    assert.ok(!existsSync(join(gw.upstreamDir, 'x')));
    const page = await fetch(gw.url, { headers: { authorization: auth, accept: 'text/html' } });
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'; script-src 'self'/);
    assert.match(page.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
    const icon = await fetch(gw.url + '.davgate-ui/favicon.svg', { headers: { authorization: auth } });
    assert.equal(icon.status, 200);
    assert.equal(icon.headers.get('content-type'), 'image/svg+xml');
    assert.equal((await fetch(gw.url + '.davgate-ui/nothing.js', { headers: { authorization: auth } })).status, 404);
    // An uploaded page runs sandboxed (no scripts, an opaque origin): it cannot act as this site.
    await fetch(gw.url + 'upload.html', { method: 'PUT', body: '<script>fetch("/x", {method: "DELETE"})</script>', headers: { authorization: auth } });
    const html = await fetch(gw.url + 'upload.html', { headers: { authorization: auth } });
    assert.equal(html.headers.get('content-security-policy'), 'sandbox');
    const plain = await fetch(gw.url + 'csrf.txt', { headers: { authorization: auth } });
    assert.equal(plain.headers.get('content-security-policy'), null);
  });
});
