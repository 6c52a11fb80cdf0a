// Drives the operator console in headless Chromium the way an operator would, step by step
// with the Rust test (tests/console.rs): it prints {"step": …} lines and waits for a line on
// stdin where the test has to act (publish, check the destination). Every page is saved as a
// screenshot into SHOTS_DIR. Every /v1 answer the console received and the text of every page
// are searched for the secrets given; what is found is reported in `leaks`.
// Usage: node console.mjs '{"url","token","userId","streamId","dest","secrets":[],"shots"}'
import { createInterface } from 'node:readline';
import { mkdirSync } from 'node:fs';
import { launch } from './chromium.mjs';

const cfg = JSON.parse(process.argv[2]);
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const say = (o) => console.log(JSON.stringify(o));
const proceed = async () => { await lines.next(); };
mkdirSync(cfg.shots, { recursive: true });

const browser = await launch();
const out = { step: 'done', leaks: [], pageErrors: [], api: 0 };
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 820 } });
  page.on('pageerror', (e) => out.pageErrors.push(String(e)));
  page.on('dialog', (d) => d.accept());
  const texts = [];
  let pending = 0;
  page.on('response', async (r) => {
    if (!new URL(r.url()).pathname.startsWith('/v1/')) return;
    out.api += 1;
    pending += 1;
    try { texts.push(`${r.url()}: ${await r.text()}`); } catch { /* a body gone with its page */ }
    pending -= 1;
  });
  // Every answer received so far has been read (polled, with a deadline).
  const settled = async () => {
    for (let i = 0; pending && i < 250; i += 1) await new Promise((r) => setTimeout(r, 20));
  };
  const snapshot = async (name) => {
    texts.push(`page ${name}: ${await page.evaluate(() => document.body.innerText)}`);
    await page.screenshot({ path: `${cfg.shots}/console-${name}.png` });
  };
  const row = `tr[data-stream="${cfg.userId}/${cfg.streamId}"]`;

  // A wrong token is refused, and nothing is shown.
  await page.goto(cfg.url);
  await page.waitForSelector('#token');
  await page.fill('#token', `${cfg.token}-wrong`);
  await page.click('#login-submit');
  await page.waitForFunction(() => /refused/.test(document.getElementById('login-error')?.textContent || ''));
  out.wrongToken = await page.textContent('#login-error');
  out.streamsShownToWrongToken = await page.$('#streams') !== null;
  await snapshot('login');

  await page.fill('#token', cfg.token);
  await page.click('#login-submit');
  await page.waitForSelector('#streams');
  say({ step: 'ready' });
  await proceed();

  // The stream appears by itself (no reload), with its ingest figures.
  const published = Date.now();
  await page.waitForSelector(`${row}[data-state="live"]`, { timeout: 10000 });
  out.appearMs = Date.now() - published;
  await page.waitForFunction((sel) => {
    const r = document.querySelector(sel);
    return r && /Mbit|kbit/.test(r.innerText) && /avc1/.test(r.innerText) && /ms \(max/.test(r.innerText);
  }, row, { timeout: 10000 });
  out.streamRow = await page.textContent(row);
  await snapshot('streams');

  // The stream page plays it: frames advance, the latency is shown.
  await page.click(`${row} a`);
  await page.waitForSelector('#player');
  const frames = () => page.evaluate(() => document.getElementById('player').getVideoPlaybackQuality().totalVideoFrames);
  await page.waitForFunction(() => document.getElementById('latency').getAttribute('data-seconds') !== '', null, { timeout: 20000 });
  const f0 = await frames();
  out.latencies = [];
  for (let i = 0; i < 6; i += 1) {
    await page.waitForTimeout(500);
    out.latencies.push(Number(await page.getAttribute('#latency', 'data-seconds')));
  }
  out.framesAdvanced = (await frames()) - f0;
  out.latencyShown = await page.textContent('#latency');
  await snapshot('stream');

  // An output to the destination becomes active; the page never shows its key.
  const added = Date.now();
  await page.fill('#output-name', 'nginx');
  await page.fill('#output-url', cfg.dest);
  await page.click('#output-add');
  await page.waitForSelector('tr[data-output][data-status="active"]', { timeout: 20000 });
  out.outputActiveMs = Date.now() - added;
  const outputId = await page.getAttribute('tr[data-output][data-status="active"]', 'data-output');
  out.outputRow = await page.textContent(`tr[data-output="${outputId}"]`);
  await snapshot('stream-output');
  say({ step: 'output-active', outputId });
  await proceed();

  // Removing it.
  await page.click(`[data-remove="${outputId}"]`);
  await page.waitForSelector(`tr[data-output="${outputId}"]`, { state: 'detached', timeout: 10000 });
  out.outputRemoved = true;
  say({ step: 'output-removed' });
  await proceed();

  // Kicking the publisher ends the stream.
  await page.click('#kick');
  await page.waitForSelector('#app [data-state="ended"]', { timeout: 10000 });
  out.kicked = true;
  // The broadcast's recording is listed, then plays in the same player and downloads as MP4.
  const rec = await page.waitForSelector('tr[data-recording]:has(a[download])', { timeout: 20000 });
  out.recordingRow = await rec.innerText();
  out.recordingMp4 = await page.getAttribute('tr[data-recording] a[download]', 'href');
  await page.click('tr[data-recording] button');
  await page.waitForFunction(() => /^recording/.test(document.getElementById('playing').textContent));
  const r0 = await frames();
  await page.waitForFunction((n) => document.getElementById('player').getVideoPlaybackQuality().totalVideoFrames > n + 30, r0, { timeout: 20000 });
  out.recordingPlayed = true;
  await snapshot('stream-ended');
  await page.goto(`${cfg.url}#/`);
  await page.waitForSelector(`${row}[data-state="ended"]`, { timeout: 10000 });
  await snapshot('streams-ended');
  say({ step: 'kicked' });
  await proceed();

  // Keys: one created (shown once), then revoked; the list never shows a key.
  await page.click('#nav-keys');
  await page.waitForSelector('#keys tr');
  await page.fill('#key-user', 'bob@example.com');
  await page.fill('#key-alias', 'bob-glasses');
  await page.click('#key-create');
  await page.waitForSelector('#new-key');
  const created = await page.textContent('#new-key');
  const keyRow = await page.waitForSelector('#keys tr[data-key]:has-text("bob-glasses")');
  out.createdKeyId = await keyRow.getAttribute('data-key');
  await snapshot('keys');
  // The one place a key may appear is the creation notice: leave it out of the search.
  await settled();
  texts.splice(0, texts.length, ...texts.map((t) => t.split(created).join('<created key>')));
  await page.click(`[data-revoke="${out.createdKeyId}"]`);
  await page.waitForSelector(`tr[data-key="${out.createdKeyId}"]`, { state: 'detached', timeout: 10000 });
  out.revoked = true;
  texts.push(`page keys-after: ${await page.evaluate(() => document.body.innerText)}`);
  await settled();
  // The notice stays until the operator leaves the page; no API answer repeats the key.
  out.keysShownAfterCreation = texts.filter((t) => !t.startsWith('page ') && t.includes(created)).length;

  for (const secret of cfg.secrets) {
    for (const t of texts) if (t.includes(secret)) out.leaks.push(`${secret} in ${t.slice(0, 200)}`);
  }
  out.searched = texts.length;
} catch (e) {
  out.error = String(e && e.stack || e);
} finally {
  await browser.close();
}
say(out);
process.exit(0);
