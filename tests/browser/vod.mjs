// Plays a recording to its end in headless Chromium and prints one JSON object: whether it
// ended, its duration, where playback stopped, frames decoded, and any error.
// Usage: node vod.mjs mp4|hlsjs|dashjs URL
//   mp4     a plain <video src=URL> (a progressive MP4)
//   hlsjs   hls.js on a VOD playlist
//   dashjs  dash.js on a static MPD
// Playback runs at 4x, muted, so a 20 s recording takes about 5 s.
import { fileURLToPath } from 'node:url';
import { launch } from './chromium.mjs';

const [kind, url] = process.argv.slice(2);
const scripts = { hlsjs: 'hls.js/dist/hls.min.js', dashjs: 'dashjs/dist/modern/umd/dash.all.min.js' };
if (kind !== 'mp4' && !scripts[kind]) {
  console.error(`unknown player ${kind}`);
  process.exit(2);
}
const browser = await launch();
try {
  const page = await browser.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  await page.setContent('<html><body><video id="v" muted playsinline></video></body></html>');
  if (scripts[kind]) {
    await page.addScriptTag({ path: fileURLToPath(new URL(`./node_modules/${scripts[kind]}`, import.meta.url)) });
  }
  const result = await page.evaluate(async ({ kind, url }) => {
    const video = document.getElementById('v');
    const out = { player: kind, errors: [] };
    video.addEventListener('error', () => out.errors.push(`video: ${video.error && video.error.message}`));
    if (kind === 'mp4') {
      video.src = url;
    } else if (kind === 'hlsjs') {
      const hls = new Hls();
      hls.on(Hls.Events.ERROR, (_, d) => { if (d.fatal) out.errors.push(`${d.type}/${d.details}`); });
      hls.loadSource(url);
      hls.attachMedia(video);
    } else {
      const p = dashjs.MediaPlayer().create();
      p.on(dashjs.MediaPlayer.events.ERROR, (e) => out.errors.push(`dash: ${JSON.stringify(e.error || e)}`));
      p.initialize(video, url, false);
    }
    const ended = new Promise((resolve) => video.addEventListener('ended', () => resolve(true)));
    await new Promise((resolve) => {
      if (video.readyState >= 1) resolve();
      else video.addEventListener('loadedmetadata', resolve, { once: true });
      setTimeout(resolve, 20000);
    });
    out.duration = video.duration;
    video.playbackRate = 4;
    try { await video.play(); } catch (e) { out.errors.push(`play: ${e}`); }
    const limit = (Number.isFinite(video.duration) ? video.duration / 4 : 10) * 1000 + 20000;
    out.ended = await Promise.race([ended, new Promise((r) => setTimeout(() => r(false), limit))]);
    out.currentTime = video.currentTime;
    const q = video.getVideoPlaybackQuality();
    out.frames = q.totalVideoFrames;
    out.dropped = q.droppedVideoFrames;
    return out;
  }, { kind, url });
  result.pageErrors = pageErrors;
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
}
