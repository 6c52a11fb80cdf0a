// Opens a player page (the origin's public player, `http.player`) in headless Chromium and
// prints one JSON object: whether its video plays (frames decoded over two seconds), the
// status line it shows, and page errors.
// Usage: node page.mjs URL
import { launch } from './chromium.mjs';

const [url] = process.argv.slice(2);
const browser = await launch();
const out = { pageErrors: [] };
try {
  const page = await browser.newPage();
  page.on('pageerror', (e) => out.pageErrors.push(String(e)));
  const resp = await page.goto(url);
  out.status = resp.status();
  const frames = () => page.evaluate(() => document.querySelector('video').getVideoPlaybackQuality().totalVideoFrames);
  await page.waitForFunction(() => document.querySelector('video').getVideoPlaybackQuality().totalVideoFrames > 0, null, { timeout: 20000 });
  const f0 = await frames();
  await page.waitForFunction((n) => document.querySelector('video').getVideoPlaybackQuality().totalVideoFrames >= n + 30, f0, { timeout: 10000 });
  out.framesAdvanced = (await frames()) - f0;
  await page.waitForFunction(() => /behind/.test(document.getElementById('status').textContent), null, { timeout: 10000 });
  out.statusLine = await page.textContent('#status');
  out.usedHlsJs = await page.evaluate(() => Boolean(window.glasscastHls));
} catch (e) {
  out.error = String(e && e.stack || e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
