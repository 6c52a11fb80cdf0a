// Summarises player.mjs results (one JSON object per line on stdin) for BENCHMARKS.md:
// latency p50/p95 after a warm-up, stalls after the first presented frame, rendered frames
// per second, and (hls.js) the median time of each step of a part's way to the screen.
// Usage: node player.mjs ... | node summary.mjs [WARMUP_SECONDS]
import { createInterface } from 'node:readline';

const warmupMs = Number(process.argv[2] || 5) * 1000;
const pct = (xs, q) => {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * q))];
};
const ms = (x) => (x === null || Number.isNaN(x) ? '-' : `${Math.round(x)} ms`);

for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim().startsWith('{')) continue;
  const r = JSON.parse(line);
  const lat = r.samples.filter((s) => s.t >= warmupMs).map((s) => s.latency);
  const firstFrame = r.presented.length ? r.presented[0][0] : null;
  const stallsAfter = r.stallTimes.filter((t) => firstFrame !== null && t > firstFrame).length;
  const window = r.presented.filter(([t]) => t >= warmupMs);
  let fps = null;
  if (window.length >= 2) {
    const [t0, f0] = window[0];
    const [t1, f1] = window[window.length - 1];
    fps = ((f1 - f0) * 1000) / (t1 - t0);
  }
  const out = {
    player: r.player,
    config: r.config,
    samples: lat.length,
    p50: pct(lat, 0.5),
    p95: pct(lat, 0.95),
    stallsAfterStart: stallsAfter,
    stallTimes: r.stallTimes,
    renderedFps: fps,
    fatal: r.fatal,
    errors: r.errors.length,
    target: r.samples.length ? r.samples[r.samples.length - 1].target : undefined,
    firstPlaylist: r.firstPlaylist,
    firstPlaying: r.firstPlaying,
  };
  // Each step relative to the end of the part's media (its PROGRAM-DATE-TIME + duration): the
  // part's last frame arrived at the relay then.
  const parts = (r.parts || []).filter((p) => p.loaded && p.pdt + 0 >= 0);
  if (parts.length) {
    const step = (k) => pct(parts.filter((p) => p[k]).map((p) => p[k] - (p.pdt + p.duration * 1000)), 0.5);
    out.partSteps = {
      parts: parts.length,
      listed: ms(step('listed')),
      requested: ms(step('requested')),
      firstByte: ms(step('firstByte')),
      loaded: ms(step('loaded')),
      buffered: ms(step('buffered')),
      meanPartDuration: ms((1000 * parts.reduce((a, p) => a + p.duration, 0)) / parts.length),
    };
  }
  console.log(JSON.stringify(out));
}
