// Parses playlists with hls-parser in strict mode (an independent LL-HLS implementation) and
// prints one JSON object per URL: {url, ok, error?, parts?, segments?}.
// Usage: node lint.mjs URL...
import HLS from 'hls-parser';

HLS.setOptions({ strictMode: true });
const results = [];
for (const url of process.argv.slice(2)) {
  try {
    const res = await fetch(url);
    const text = await res.text();
    const pl = HLS.parse(text);
    const r = { url, ok: true, master: pl.isMasterPlaylist };
    if (!pl.isMasterPlaylist) {
      r.segments = pl.segments.length;
      r.parts = pl.segments.reduce((n, s) => n + (s.parts ? s.parts.length : 0), 0) + (pl.prefetchSegments?.length ?? 0);
      r.lowLatency = pl.lowLatencyCompatibility ?? null;
    }
    results.push(r);
  } catch (e) {
    results.push({ url, ok: false, error: String(e && e.message ? e.message : e) });
  }
}
console.log(JSON.stringify(results));
