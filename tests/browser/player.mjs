// Plays a live URL with a real web player in headless Chromium and prints one JSON object:
// latency samples, errors, stalls, decoded and rendered frames, and (hls.js) where the time
// goes for every part: when it appeared in a playlist, was requested, arrived and was buffered.
// Usage: node player.mjs hlsjs|shaka|dashjs URL SECONDS [CONFIG_JSON]
//   hlsjs  hls.js with lowLatencyMode; latency = now - hls.playingDate (PROGRAM-DATE-TIME)
//   shaka  Shaka Player with lowLatencyMode; latency = now - getPlayheadTimeAsDate()
//   dashjs dash.js; latency = getCurrentLiveLatency() (from availabilityStartTime)
// CONFIG_JSON is merged into the player's configuration (hls.js config, Shaka's, dash.js
// settings), so a tuned configuration is measured the same way as the default one.
import { fileURLToPath } from 'node:url';
import { launch } from './chromium.mjs';

const [kind, url, secondsArg, configArg] = process.argv.slice(2);
const extra = configArg ? JSON.parse(configArg) : {};
const seconds = Number(secondsArg || 15);
const scripts = {
  hlsjs: 'hls.js/dist/hls.min.js',
  // The debug build when Shaka's log is asked for ({"shakaLog":"V1"}, with PLAYER_CONSOLE=1).
  shaka: extra.shakaLog
    ? 'shaka-player/dist/shaka-player.compiled.debug.js'
    : 'shaka-player/dist/shaka-player.compiled.js',
  dashjs: 'dashjs/dist/modern/umd/dash.all.min.js',
};
if (!scripts[kind]) {
  console.error(`unknown player ${kind}`);
  process.exit(2);
}

const browser = await launch();
try {
  const page = await browser.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  // PLAYER_CONSOLE=1 passes the page's console to stderr (player debugging).
  if (process.env.PLAYER_CONSOLE) page.on('console', (m) => console.error(`[${m.type()}] ${m.text()}`));
  // PLAYER_MEDIA_LOG=1 passes Chromium's own media log (what chrome://media-internals shows:
  // MSE parser and buffer warnings, dropped frames) to stderr, through the DevTools protocol.
  if (process.env.PLAYER_MEDIA_LOG) {
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Media.enable');
    cdp.on('Media.playerMessagesLogged', (e) => e.messages.forEach((m) => console.error(`[media ${m.level}] ${m.message}`)));
    cdp.on('Media.playerErrorsRaised', (e) => e.errors.forEach((m) => console.error(`[media error] ${JSON.stringify(m)}`)));
  }
  await page.setContent('<html><body><video id="v" muted playsinline></video></body></html>');
  // Every SourceBuffer abort() and timestampOffset the player sets is counted (in the result
  // as `mse`), and logged to the page console with PLAYER_MSE_LOG=1 (so with PLAYER_CONSOLE=1):
  // an abort() makes MSE drop media until the next keyframe, which is how Shaka loses
  // non-independent parts (BENCHMARKS.md).
  await page.addScriptTag({
    content: `(() => {
      const log = ${JSON.stringify(Boolean(process.env.PLAYER_MSE_LOG))};
      window.__mse = { aborts: 0, offsets: 0 };
      const P = SourceBuffer.prototype;
      const abort = P.abort;
      P.abort = function () {
        window.__mse.aborts += 1;
        if (log) console.log('MSE abort');
        return abort.call(this);
      };
      const tso = Object.getOwnPropertyDescriptor(P, 'timestampOffset');
      Object.defineProperty(P, 'timestampOffset', {
        get() { return tso.get.call(this); },
        set(v) {
          window.__mse.offsets += 1;
          if (log) console.log('MSE timestampOffset ' + v);
          tso.set.call(this, v);
        },
      });
    })();`,
  });
  // By file path: some packages' `exports` hide their browser bundles from require.resolve.
  await page.addScriptTag({ path: fileURLToPath(new URL(`./node_modules/${scripts[kind]}`, import.meta.url)) });
  const result = await page.evaluate(async ({ kind, url, seconds, extra }) => {
    const video = document.getElementById('v');
    const out = {
      player: kind, samples: [], errors: [], stalls: 0, stallTimes: [], fatal: null, parts: [],
      config: extra,
    };
    const start = Date.now();
    // performance.now() (what hls.js stamps its stats with) to wall-clock milliseconds.
    const wall = (t) => performance.timeOrigin + t;
    const fail = (what, fatal) => {
      out.errors.push(what);
      if (fatal) out.fatal = what;
    };
    let latency = () => null;
    let extraSample = () => ({});
    let describeBuffer = null;
    out.stallBuffers = [];
    let stop = () => {};
    if (kind === 'hlsjs') {
      const hls = new Hls({ lowLatencyMode: true, ...extra });
      hls.on(Hls.Events.ERROR, (_, d) => fail(`${d.type}/${d.details}`, d.fatal));
      // Where each part's time goes, relative to the wall clock: the first playlist that
      // lists it, its request, first byte and last byte, and its append to the buffer.
      const seen = new Map();
      const byUrl = new Map();
      hls.on(Hls.Events.LEVEL_LOADED, (_, d) => {
        const now = Date.now();
        const last = (d.details.partList || []).at(-1);
        if (!out.firstPlaylist && last && last.fragment.programDateTime !== null) {
          // How old the newest part was when the first playlist arrived, and what the player
          // then aims for: the start of playback is measured from here.
          const end = last.fragment.programDateTime + (last.start - last.fragment.start + last.duration) * 1000;
          out.firstPlaylist = { t: now - start, edgeAgeMs: now - end, target: hls.targetLatency };
        }
        for (const p of d.details.partList || []) {
          if (!seen.has(p.url)) seen.set(p.url, now);
        }
      });
      const record = (part, frag) => {
        if (!part || frag.programDateTime === null || byUrl.has(part.url)) return null;
        const pdt = frag.programDateTime + (part.start - frag.start) * 1000;
        const r = { url: part.url, pdt, duration: part.duration, listed: seen.get(part.url) ?? null };
        byUrl.set(part.url, r);
        out.parts.push(r);
        return r;
      };
      hls.on(Hls.Events.FRAG_LOADED, (_, d) => {
        const r = record(d.part, d.frag);
        if (!r) return;
        const l = d.part.stats.loading;
        r.requested = wall(l.start);
        r.firstByte = wall(l.first);
        r.loaded = wall(l.end);
      });
      hls.on(Hls.Events.FRAG_BUFFERED, (_, d) => {
        const r = d.part && byUrl.get(d.part.url);
        if (r) r.buffered = wall(d.part.stats.buffering.end);
      });
      hls.loadSource(url);
      hls.attachMedia(video);
      latency = () => (hls.playingDate ? (Date.now() - hls.playingDate.getTime()) / 1000 : null);
      // `edge`: hls.js's own distance behind the live edge of the playlists it has (what the
      // player controls, independent of how far the encoder runs behind the wall clock).
      extraSample = () => ({ target: hls.targetLatency, rate: video.playbackRate, edge: hls.latency });
      stop = () => hls.destroy();
      out.lowLatencyMode = hls.lowLatencyMode;
    } else if (kind === 'shaka') {
      shaka.polyfill.installAll();
      if (extra.shakaLog && shaka.log) shaka.log.setLevel(shaka.log.Level[extra.shakaLog]);
      const player = new shaka.Player();
      await player.attach(video);
      player.configure({ streaming: { lowLatencyMode: true } });
      const { shakaLog, ...config } = extra;
      if (Object.keys(config).length) player.configure(config);
      player.addEventListener('error', (e) => fail(`shaka ${e.detail.code}`, e.detail.severity === 2));
      try {
        await player.load(url);
      } catch (e) {
        fail(`shaka load ${e.code ?? e.stack}`, true);
      }
      const ranges = (rs) => (rs || []).map((r) => [Number(r.start.toFixed(3)), Number(r.end.toFixed(3))]);
      describeBuffer = () => {
        const b = player.getBufferedInfo();
        return { audio: ranges(b.audio), video: ranges(b.video) };
      };
      latency = () => {
        const d = player.getPlayheadTimeAsDate();
        return d ? (Date.now() - d.getTime()) / 1000 : null;
      };
      stop = () => player.destroy();
    } else {
      const player = dashjs.MediaPlayer().create();
      player.updateSettings(extra);
      player.on(dashjs.MediaPlayer.events.ERROR, (e) => fail(`dashjs ${JSON.stringify(e.error)}`, true));
      player.initialize(video, url, true);
      latency = () => {
        const l = player.getCurrentLiveLatency();
        return Number.isFinite(l) && l > 0 ? l : null;
      };
      stop = () => player.reset();
    }
    video.addEventListener('playing', () => {
      if (!out.firstPlaying) out.firstPlaying = { t: Date.now() - start, latency: latency() };
    }, { once: true });
    video.addEventListener('waiting', () => {
      out.stalls += 1;
      out.stallTimes.push(Date.now() - start);
      // Where the buffer ends around the playhead, per track where the player tells.
      if (describeBuffer) out.stallBuffers.push({ t: Date.now() - start, now: video.currentTime, ...describeBuffer() });
    });
    // Frames actually presented, per wall-clock second (not only decoded).
    out.presented = [];
    if (video.requestVideoFrameCallback) {
      let lastSecond = -1;
      const onFrame = (_, meta) => {
        const t = Date.now() - start;
        if (Math.floor(t / 1000) !== lastSecond) {
          lastSecond = Math.floor(t / 1000);
          out.presented.push([t, meta.presentedFrames]);
        }
        video.requestVideoFrameCallback(onFrame);
      };
      video.requestVideoFrameCallback(onFrame);
    }
    // dash.js starts playback itself (autoplay) and must see the element's `play` event: a
    // `play()` of ours before it listens leaves its manifest updates paused for good.
    if (kind !== 'dashjs') video.play().catch((e) => out.errors.push(`play: ${e}`));
    while (Date.now() - start < seconds * 1000 && !out.fatal) {
      await new Promise((r) => setTimeout(r, 250));
      const l = latency();
      if (l !== null && !video.paused && video.currentTime > 0) {
        out.samples.push({ t: Date.now() - start, latency: l, ...extraSample() });
      }
    }
    const q = video.getVideoPlaybackQuality();
    out.decodedFrames = q.totalVideoFrames;
    out.droppedFrames = q.droppedVideoFrames;
    out.currentTime = video.currentTime;
    out.mse = window.__mse;
    stop();
    return out;
  }, { kind, url, seconds, extra });
  result.pageErrors = pageErrors;
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
}
