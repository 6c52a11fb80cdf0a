//! Packaging throughput: FLV tag bodies -> media messages -> CMAF parts and segments -> LL-HLS
//! playlist state (and, in the second benchmark, the media store with DASH's single-track
//! views), on a committed 4 s 720p30 fixture. Reported in MB/s of FLV input.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use origin::fragmenter::{FragmentEvent, Fragmenter, FragmenterConfig};
use origin::naming::Names;
use origin::playlist::{Playlist, PlaylistConfig};
use origin::stream_core::{StreamCore, part_info};
use relay::flv::{TagKind, TagParser, read_file};

const FIXTURE: &[u8] = include_bytes!("fixtures/glasses-720p30.flv");

/// Feeds the fixture's tags through the tag parser and the fragmenter, handing every event on.
fn feed(tags: &[relay::flv::FileTag], mut on_event: impl FnMut(FragmentEvent)) {
    let mut parser = TagParser::new();
    let mut frag = Fragmenter::new(FragmenterConfig::default());
    for (i, t) in tags.iter().enumerate() {
        let msg = match t.kind {
            TagKind::Video => parser.handle_video(t.body.clone(), t.timestamp),
            TagKind::Audio => parser.handle_audio(t.body.clone(), t.timestamp),
            TagKind::Script => continue,
        };
        if let Ok(Some(m)) = msg {
            frag.handle_message(m, 1_700_000_000_000 + i as i64)
                .expect("packages");
            while let Some(ev) = frag.poll_event() {
                on_event(ev);
            }
        }
    }
    frag.handle_end().expect("flushes");
    while let Some(ev) = frag.poll_event() {
        on_event(ev);
    }
}

fn names() -> Names {
    Names {
        prefix: "bench".into(),
    }
}

/// Fragmenter and playlist only (the playlist rendered after every part).
fn package(tags: &[relay::flv::FileTag]) -> u64 {
    let mut playlist = Playlist::new(PlaylistConfig::default(), names());
    let mut bytes_out = 0;
    feed(tags, |ev| match ev {
        FragmentEvent::Init(i) => playlist.handle_init(i.id),
        FragmentEvent::SegmentStart(s) => {
            playlist.handle_segment_start(s.discontinuity, s.pdt_ms, s.start, s.timescale)
        }
        FragmentEvent::PdtRevised(pdt) => playlist.handle_pdt_revised(pdt),
        FragmentEvent::Chunk(c) => {
            black_box(c);
        }
        FragmentEvent::Part(p) => {
            bytes_out += p.len();
            playlist.handle_part(part_info(&p));
            black_box(playlist.render(false));
        }
        FragmentEvent::SegmentEnd => {
            playlist.handle_segment_end();
        }
    });
    bytes_out
}

/// The same through the per-stream core: playlist and media store, the playlist rendered
/// after every part as a held request would.
fn package_core(tags: &[relay::flv::FileTag]) -> u64 {
    let mut core = StreamCore::new(PlaylistConfig::default(), names(), 1);
    let mut parts = 0;
    feed(tags, |ev| {
        if core.handle_event(ev).part {
            parts += 1;
            black_box(core.playlist.render(false));
        }
    });
    parts
}

fn bench(c: &mut Criterion) {
    let data = Bytes::from_static(FIXTURE);
    let tags = read_file(&data).expect("fixture is FLV");
    let mut g = c.benchmark_group("packaging");
    g.throughput(Throughput::Bytes(FIXTURE.len() as u64));
    g.bench_function("flv_to_cmaf_and_playlist_720p30", |b| {
        b.iter(|| black_box(package(black_box(&tags))))
    });
    g.bench_function("flv_to_cmaf_playlist_and_store_720p30", |b| {
        b.iter(|| black_box(package_core(black_box(&tags))))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
