// Plays a live URL with a real web player in headless Chromium and prints one JSON object:
// latency samples, errors, stalls and decoded frames.
// Usage: node player.mjs hlsjs|shaka|dashjs URL SECONDS
//   hlsjs  hls.js with lowLatencyMode; latency = now - hls.playingDate (PROGRAM-DATE-TIME)
//   shaka  Shaka Player with lowLatencyMode; latency = now - getPlayheadTimeAsDate()
//   dashjs dash.js; latency = getCurrentLiveLatency() (from availabilityStartTime)
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const [kind, url, secondsArg] = process.argv.slice(2);
const seconds = Number(secondsArg || 15);
const scripts = {
  hlsjs: 'hls.js/dist/hls.min.js',
  shaka: 'shaka-player/dist/shaka-player.compiled.js',
  dashjs: 'dashjs/dist/modern/umd/dash.all.min.js',
};
if (!scripts[kind]) {
  console.error(`unknown player ${kind}`);
  process.exit(2);
}

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
  // By file path: some packages' `exports` hide their browser bundles from require.resolve.
  await page.addScriptTag({ path: fileURLToPath(new URL(`./node_modules/${scripts[kind]}`, import.meta.url)) });
  const result = await page.evaluate(async ({ kind, url, seconds }) => {
    const video = document.getElementById('v');
    const out = { player: kind, samples: [], errors: [], stalls: 0, fatal: null };
    const fail = (what, fatal) => {
      out.errors.push(what);
      if (fatal) out.fatal = what;
    };
    let latency = () => null;
    let stop = () => {};
    if (kind === 'hlsjs') {
      const hls = new Hls({ lowLatencyMode: true });
      hls.on(Hls.Events.ERROR, (_, d) => fail(`${d.type}/${d.details}`, d.fatal));
      hls.loadSource(url);
      hls.attachMedia(video);
      latency = () => (hls.playingDate ? (Date.now() - hls.playingDate.getTime()) / 1000 : null);
      stop = () => hls.destroy();
      out.lowLatencyMode = hls.lowLatencyMode;
    } else if (kind === 'shaka') {
      shaka.polyfill.installAll();
      const player = new shaka.Player();
      await player.attach(video);
      player.configure({ streaming: { lowLatencyMode: true } });
      player.addEventListener('error', (e) => fail(`shaka ${e.detail.code}`, e.detail.severity === 2));
      try {
        await player.load(url);
      } catch (e) {
        fail(`shaka load ${e.code}`, true);
      }
      latency = () => {
        const d = player.getPlayheadTimeAsDate();
        return d ? (Date.now() - d.getTime()) / 1000 : null;
      };
      stop = () => player.destroy();
    } else {
      const player = dashjs.MediaPlayer().create();
      player.on(dashjs.MediaPlayer.events.ERROR, (e) => fail(`dashjs ${JSON.stringify(e.error)}`, true));
      player.initialize(video, url, true);
      latency = () => {
        const l = player.getCurrentLiveLatency();
        return Number.isFinite(l) && l > 0 ? l : null;
      };
      stop = () => player.reset();
    }
    video.addEventListener('waiting', () => { out.stalls += 1; });
    video.play().catch((e) => out.errors.push(`play: ${e}`));
    const start = Date.now();
    while (Date.now() - start < seconds * 1000 && !out.fatal) {
      await new Promise((r) => setTimeout(r, 250));
      const l = latency();
      if (l !== null && !video.paused && video.currentTime > 0) {
        out.samples.push({ t: Date.now() - start, latency: l });
      }
    }
    const q = video.getVideoPlaybackQuality();
    out.decodedFrames = q.totalVideoFrames;
    out.droppedFrames = q.droppedVideoFrames;
    out.currentTime = video.currentTime;
    stop();
    return out;
  }, { kind, url, seconds });
  result.pageErrors = pageErrors;
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
}
