// Plays an HLS URL with hls.js (lowLatencyMode) in real headless Chromium and prints one JSON
// object: latency samples (wall clock minus the PROGRAM-DATE-TIME being shown, and hls.js's own
// live-edge latency), errors, stalls and decoded frames.
// Usage: node hlsjs.mjs URL SECONDS
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const [url, secondsArg] = process.argv.slice(2);
const seconds = Number(secondsArg || 15);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--autoplay-policy=no-user-gesture-required',
  ],
});
try {
  const page = await browser.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  await page.setContent('<html><body><video id="v" muted playsinline></video></body></html>');
  await page.addScriptTag({ path: require.resolve('hls.js/dist/hls.min.js') });
  const result = await page.evaluate(async ({ url, seconds }) => {
    const video = document.getElementById('v');
    const out = { supported: Hls.isSupported(), samples: [], errors: [], stalls: 0, fatal: null };
    if (!out.supported) return out;
    const hls = new Hls({ lowLatencyMode: true });
    hls.on(Hls.Events.ERROR, (_, d) => {
      out.errors.push(`${d.type}/${d.details}${d.fatal ? ' (fatal)' : ''}`);
      if (d.fatal) out.fatal = d.details;
    });
    video.addEventListener('waiting', () => { out.stalls += 1; });
    hls.loadSource(url);
    hls.attachMedia(video);
    video.play().catch((e) => out.errors.push(`play: ${e}`));
    const start = Date.now();
    while (Date.now() - start < seconds * 1000 && !out.fatal) {
      await new Promise((r) => setTimeout(r, 250));
      const shown = hls.playingDate;
      if (shown && !video.paused && video.currentTime > 0) {
        out.samples.push({
          t: Date.now() - start,
          pdtLatency: (Date.now() - shown.getTime()) / 1000,
          hlsLatency: hls.latency,
        });
      }
    }
    const q = video.getVideoPlaybackQuality();
    out.decodedFrames = q.totalVideoFrames;
    out.droppedFrames = q.droppedVideoFrames;
    out.currentTime = video.currentTime;
    out.lowLatencyMode = hls.lowLatencyMode;
    hls.destroy();
    return out;
  }, { url, seconds });
  result.pageErrors = pageErrors;
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
}
