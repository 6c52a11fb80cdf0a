//! Packaging throughput: FLV tag bodies -> media messages -> CMAF parts and segments -> LL-HLS
//! playlist state (and, in the second benchmark, the media store with DASH's single-track
//! views), on a committed 4 s 720p30 fixture. Reported in MB/s of FLV input.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use origin::fragmenter::{FragmentEvent, Fragmenter, FragmenterConfig};
use origin::naming::Names;
use origin::playlist::{PartInfo, Playlist, PlaylistConfig};
use origin::store::MediaStore;
use relay::flv::{TagKind, TagParser, read_file};

const FIXTURE: &[u8] = include_bytes!("fixtures/glasses-720p30.flv");

fn package(tags: &[relay::flv::FileTag], mut store: Option<MediaStore>) -> u64 {
    let mut parser = TagParser::new();
    let mut frag = Fragmenter::new(FragmenterConfig::default());
    let mut playlist = Playlist::new(
        PlaylistConfig::default(),
        Names {
            prefix: "bench".into(),
        },
    );
    let mut bytes_out = 0;
    let mut drain = |frag: &mut Fragmenter, playlist: &mut Playlist| {
        while let Some(ev) = frag.poll_event() {
            match ev {
                FragmentEvent::Init(i) => {
                    playlist.handle_init(i.id);
                    if let Some(s) = store.as_mut() {
                        s.handle_init(i);
                    }
                }
                FragmentEvent::SegmentStart(s) => {
                    playlist.handle_segment_start(s.discontinuity, s.pdt_ms, s.start, s.timescale);
                    if let Some(st) = store.as_mut() {
                        st.handle_segment_start(s.init_id);
                    }
                }
                FragmentEvent::PdtRevised(pdt) => playlist.handle_pdt_revised(pdt),
                FragmentEvent::Chunk(c) => match store.as_mut() {
                    Some(s) => s.handle_chunk(c),
                    None => {
                        black_box(c);
                    }
                },
                FragmentEvent::Part(p) => {
                    bytes_out += p.len();
                    let index = playlist.handle_part(PartInfo {
                        duration: p.duration,
                        independent: p.independent,
                        bytes: p.len(),
                        video_samples: u64::from(p.video_samples),
                        audio: p.audio,
                        audio_bytes: p.audio_bytes,
                    });
                    black_box(playlist.render(false));
                    if let (Some(s), Some(index)) = (store.as_mut(), index) {
                        s.handle_part(index, p.chunks);
                    }
                }
                FragmentEvent::SegmentEnd => {
                    if let Some((msn, evicted)) = playlist.handle_segment_end()
                        && let Some(s) = store.as_mut()
                    {
                        s.handle_segment_end(msn, evicted);
                    }
                }
            }
        }
    };
    for (i, t) in tags.iter().enumerate() {
        let msg = match t.kind {
            TagKind::Video => parser.handle_video(t.body.clone(), t.timestamp),
            TagKind::Audio => parser.handle_audio(t.body.clone(), t.timestamp),
            TagKind::Script => continue,
        };
        if let Ok(Some(m)) = msg {
            frag.handle_message(m, 1_700_000_000_000 + i as i64)
                .expect("packages");
            drain(&mut frag, &mut playlist);
        }
    }
    frag.handle_end().expect("flushes");
    drain(&mut frag, &mut playlist);
    bytes_out
}

fn bench(c: &mut Criterion) {
    let data = Bytes::from_static(FIXTURE);
    let tags = read_file(&data).expect("fixture is FLV");
    let mut g = c.benchmark_group("packaging");
    g.throughput(Throughput::Bytes(FIXTURE.len() as u64));
    g.bench_function("flv_to_cmaf_and_playlist_720p30", |b| {
        b.iter(|| black_box(package(black_box(&tags), None)))
    });
    g.bench_function("flv_to_cmaf_playlist_and_store_720p30", |b| {
        b.iter(|| black_box(package(black_box(&tags), Some(MediaStore::new(1)))))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
