//! CMAF (fragmented MP4) writing: the init segment (`ftyp` + `moov`) and media fragments
//! (`moof` + `mdat`). Boxes come from `mp4-atom`; the `mdat` header is written by hand so
//! samples are copied exactly once, into the fragment buffer.

use bytes::{BufMut, Bytes, BytesMut};
use mp4_atom::{
    Atom, Audio, Avc1, Avcc, Dinf, Dref, Encode, Esds, Ftyp, Hdlr, Mdhd, Mdia, Mfhd, Minf, Moof,
    Moov, Mp4a, Mvex, Mvhd, Smhd, Stbl, Stco, Stsd, Tfdt, Tfhd, Tkhd, Traf, Trak, Trex, Trun,
    TrunEntry, Url, Visual, Vmhd, esds,
};
use relay::media::{AacConfig, AvcConfig};

/// Video track timescale: 90 kHz, so millisecond FLV timestamps map exactly.
pub const VIDEO_TIMESCALE: u32 = 90_000;

/// `sample_flags` for a sync sample (sample_depends_on = 2).
const FLAGS_SYNC: u32 = 0x0200_0000;
/// `sample_flags` for a non-sync sample (sample_depends_on = 1, sample_is_non_sync_sample).
const FLAGS_NON_SYNC: u32 = 0x0101_0000;

#[derive(Debug, thiserror::Error)]
pub enum CmafError {
    #[error("AVC decoder configuration record rejected by the MP4 writer: {0}")]
    AvcConfig(mp4_atom::Error),
    #[error("MP4 encoding failed: {0}")]
    Encode(#[from] mp4_atom::Error),
    #[error("fragment is larger than 4 GiB")]
    TooLarge,
}

/// The tracks of one init segment, in track-id order (video first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackSet {
    pub video: Option<std::sync::Arc<AvcConfig>>,
    pub audio: Option<std::sync::Arc<AacConfig>>,
}

impl TrackSet {
    pub fn video_track_id(&self) -> Option<u32> {
        self.video.as_ref().map(|_| 1)
    }

    pub fn audio_track_id(&self) -> Option<u32> {
        self.audio
            .as_ref()
            .map(|_| if self.video.is_some() { 2 } else { 1 })
    }

    /// RFC 6381 codecs, comma separated, for `CODECS=` and the MPD.
    pub fn codecs(&self) -> String {
        let mut v = Vec::new();
        if let Some(c) = &self.video {
            v.push(c.codec_string());
        }
        if let Some(c) = &self.audio {
            v.push(c.codec_string());
        }
        v.join(",")
    }
}

/// Writes `ftyp` + `moov` for the given tracks.
pub fn write_init(tracks: &TrackSet) -> Result<Bytes, CmafError> {
    let ftyp = Ftyp {
        major_brand: b"iso6".into(),
        minor_version: 0,
        compatible_brands: vec![
            b"iso6".into(),
            b"cmfc".into(),
            b"mp41".into(),
            b"dash".into(),
        ],
    };
    let mut traks = Vec::new();
    let mut trex = Vec::new();
    if let (Some(c), Some(id)) = (&tracks.video, tracks.video_track_id()) {
        traks.push(video_trak(c, id)?);
        trex.push(trex_for(id));
    }
    if let (Some(c), Some(id)) = (&tracks.audio, tracks.audio_track_id()) {
        traks.push(audio_trak(c, id));
        trex.push(trex_for(id));
    }
    let moov = Moov {
        mvhd: Mvhd {
            timescale: 1000,
            rate: 1.into(),
            volume: 1.into(),
            next_track_id: traks.len() as u32 + 1,
            ..Default::default()
        },
        mvex: Some(Mvex { mehd: None, trex }),
        trak: traks,
        ..Default::default()
    };
    let mut buf = Vec::with_capacity(1024);
    ftyp.encode(&mut buf)?;
    moov.encode(&mut buf)?;
    Ok(Bytes::from(buf))
}

fn trex_for(track_id: u32) -> Trex {
    Trex {
        track_id,
        default_sample_description_index: 1,
        default_sample_duration: 0,
        default_sample_size: 0,
        default_sample_flags: 0,
    }
}

fn video_trak(c: &AvcConfig, track_id: u32) -> Result<Trak, CmafError> {
    let avcc = Avcc::decode_body(&mut c.record.as_ref()).map_err(CmafError::AvcConfig)?;
    let (w, h) = (
        c.width.min(u16::MAX.into()) as u16,
        c.height.min(u16::MAX.into()) as u16,
    );
    Ok(Trak {
        tkhd: Tkhd {
            track_id,
            enabled: true,
            in_movie: true,
            width: w.into(),
            height: h.into(),
            ..Default::default()
        },
        mdia: Mdia {
            mdhd: Mdhd {
                timescale: VIDEO_TIMESCALE,
                language: "und".into(),
                ..Default::default()
            },
            hdlr: Hdlr {
                handler: b"vide".into(),
                name: "Glasscast Video".into(),
            },
            minf: Minf {
                vmhd: Some(Vmhd::default()),
                dinf: Dinf {
                    dref: Dref {
                        entries: vec![Url::default().into()],
                    },
                },
                stbl: empty_stbl(
                    Avc1 {
                        visual: Visual {
                            data_reference_index: 1,
                            width: w,
                            height: h,
                            horizresolution: 72.into(),
                            vertresolution: 72.into(),
                            frame_count: 1,
                            compressor: "".into(),
                            depth: 24,
                        },
                        avcc,
                        btrt: None,
                        colr: None,
                        pasp: None,
                        taic: None,
                        fiel: None,
                        spatial: None,
                    }
                    .into(),
                ),
                ..Default::default()
            },
        },
        ..Default::default()
    })
}

fn audio_trak(c: &AacConfig, track_id: u32) -> Trak {
    let (profile, freq_index, chan_conf) = asc_fields(&c.asc);
    Trak {
        tkhd: Tkhd {
            track_id,
            alternate_group: 1,
            enabled: true,
            in_movie: true,
            volume: 1.into(),
            ..Default::default()
        },
        mdia: Mdia {
            mdhd: Mdhd {
                timescale: c.sample_rate,
                language: "und".into(),
                ..Default::default()
            },
            hdlr: Hdlr {
                handler: b"soun".into(),
                name: "Glasscast Audio".into(),
            },
            minf: Minf {
                smhd: Some(Smhd::default()),
                dinf: Dinf {
                    dref: Dref {
                        entries: vec![Url::default().into()],
                    },
                },
                stbl: empty_stbl(
                    Mp4a {
                        audio: Audio {
                            data_reference_index: 1,
                            channel_count: u16::from(c.channels),
                            sample_size: 16,
                            // The 16.16 field cannot hold rates above 65535; the esds is authoritative.
                            sample_rate: (c.sample_rate.min(65535) as u16).into(),
                        },
                        esds: Esds {
                            es_desc: esds::EsDescriptor {
                                es_id: track_id as u16,
                                dec_config: esds::DecoderConfig {
                                    object_type_indication: 0x40,
                                    stream_type: 5,
                                    up_stream: 0,
                                    buffer_size_db: Default::default(),
                                    max_bitrate: 0,
                                    avg_bitrate: 0,
                                    dec_specific: Some(esds::DecoderSpecific {
                                        profile,
                                        freq_index,
                                        chan_conf,
                                        raw: c.asc.to_vec(),
                                    }),
                                },
                                ..Default::default()
                            },
                        },
                        btrt: None,
                        taic: None,
                    }
                    .into(),
                ),
                ..Default::default()
            },
        },
        ..Default::default()
    }
}

/// The (profile, frequency index, channel config) triple mp4-atom keeps beside the raw ASC.
fn asc_fields(asc: &[u8]) -> (u8, u8, u8) {
    if asc.len() < 2 {
        return (0, 0, 0);
    }
    let profile = asc[0] >> 3;
    let freq_index = ((asc[0] & 0x07) << 1) | (asc[1] >> 7);
    let chan_conf = (asc[1] >> 3) & 0x0f;
    (profile, freq_index, chan_conf)
}

fn empty_stbl(codec: mp4_atom::Codec) -> Stbl {
    Stbl {
        stsd: Stsd {
            codecs: vec![codec],
        },
        stco: Some(Stco::default()),
        ..Default::default()
    }
}

/// One sample ready to be written into a fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Decode time in the track's timescale.
    pub dts: u64,
    pub duration: u32,
    /// Composition offset (PTS - DTS) in the track's timescale.
    pub cts: i32,
    pub sync: bool,
    pub data: Bytes,
}

/// The samples of one track inside a fragment.
#[derive(Debug, Clone, Copy)]
pub struct TrackRun<'a> {
    pub track_id: u32,
    pub samples: &'a [Sample],
}

/// Writes one `moof` + `mdat`. Tracks with no samples are left out.
pub fn write_fragment(sequence: u32, runs: &[TrackRun<'_>]) -> Result<Bytes, CmafError> {
    let runs: Vec<_> = runs.iter().filter(|r| !r.samples.is_empty()).collect();
    let mut trafs = Vec::with_capacity(runs.len());
    for run in &runs {
        let entries: Vec<TrunEntry> = run
            .samples
            .iter()
            .map(|s| TrunEntry {
                duration: Some(s.duration),
                size: Some(s.data.len() as u32),
                flags: Some(if s.sync { FLAGS_SYNC } else { FLAGS_NON_SYNC }),
                cts: Some(i64::from(s.cts)),
            })
            .collect();
        trafs.push(Traf {
            tfhd: Tfhd {
                track_id: run.track_id,
                default_base_is_moof: true,
                ..Default::default()
            },
            tfdt: Some(Tfdt {
                base_media_decode_time: run.samples[0].dts,
            }),
            trun: vec![Trun {
                data_offset: Some(0),
                samples: entries.into(),
            }],
            ..Default::default()
        });
    }
    let mut moof = Moof {
        mfhd: Mfhd {
            sequence_number: sequence,
        },
        traf: trafs,
    };
    // The data offsets depend on the moof's size, which does not depend on their values.
    let mut sized = Vec::new();
    moof.encode(&mut sized)?;
    let payload: usize = runs
        .iter()
        .flat_map(|r| r.samples.iter())
        .map(|s| s.data.len())
        .sum();
    let mdat_len = 8 + payload;
    let total = sized.len() + mdat_len;
    if total > u32::MAX as usize {
        return Err(CmafError::TooLarge);
    }
    let mut offset = sized.len() + 8;
    for (traf, run) in moof.traf.iter_mut().zip(&runs) {
        traf.trun[0].data_offset = Some(offset as i32);
        offset += run.samples.iter().map(|s| s.data.len()).sum::<usize>();
    }
    let mut out = BytesMut::with_capacity(total);
    let mut head = Vec::with_capacity(sized.len());
    moof.encode(&mut head)?;
    debug_assert_eq!(head.len(), sized.len());
    out.put_slice(&head);
    out.put_u32(mdat_len as u32);
    out.put_slice(b"mdat");
    for run in &runs {
        for s in run.samples {
            out.put_slice(&s.data);
        }
    }
    Ok(out.freeze())
}

#[path = "cmaf_extract.rs"]
mod extract;
pub use extract::extract_track;

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use super::*;
    use mp4_atom::Decode;

    pub(crate) fn avc() -> Arc<AvcConfig> {
        const SPS: [u8; 28] = [
            103, 100, 0, 31, 172, 217, 128, 80, 5, 187, 1, 106, 2, 2, 2, 128, 0, 0, 3, 0, 128, 0,
            0, 30, 7, 140, 24, 205,
        ];
        let mut rec = vec![1, 100, 0, 31, 0xff, 0xe1, 0, SPS.len() as u8];
        rec.extend_from_slice(&SPS);
        rec.extend_from_slice(&[1, 0, 5, 104, 233, 123, 44, 139]);
        Arc::new(AvcConfig {
            record: Bytes::from(rec),
            tag: Bytes::new(),
            profile: 100,
            compatibility: 0,
            level: 31,
            nal_length_size: 4,
            width: 1280,
            height: 720,
        })
    }

    pub(crate) fn aac() -> Arc<AacConfig> {
        Arc::new(AacConfig {
            asc: Bytes::from_static(&[0x12, 0x08]),
            tag: Bytes::new(),
            object_type: 2,
            sample_rate: 44100,
            channels: 1,
        })
    }

    /// The `mp4` crate (an independent implementation) reads what we wrote.
    #[test]
    fn init_and_fragment_parse_with_mp4_crate() {
        let tracks = TrackSet {
            video: Some(avc()),
            audio: Some(aac()),
        };
        let init = write_init(&tracks).unwrap();
        let v = [
            Sample {
                dts: 9000,
                duration: 3000,
                cts: 6000,
                sync: true,
                data: Bytes::from_static(&[0, 0, 0, 2, 0x65, 0x88]),
            },
            Sample {
                dts: 12000,
                duration: 3000,
                cts: -3000,
                sync: false,
                data: Bytes::from_static(&[0, 0, 0, 2, 0x41, 0x9a]),
            },
        ];
        let a = [Sample {
            dts: 4410,
            duration: 1024,
            cts: 0,
            sync: true,
            data: Bytes::from_static(&[0x21, 0x10, 0x04]),
        }];
        let frag = write_fragment(
            7,
            &[
                TrackRun {
                    track_id: 1,
                    samples: &v,
                },
                TrackRun {
                    track_id: 2,
                    samples: &a,
                },
            ],
        )
        .unwrap();

        let mut file = init.to_vec();
        file.extend_from_slice(&frag);
        let len = file.len() as u64;
        let reader = mp4::Mp4Reader::read_header(std::io::Cursor::new(file), len).unwrap();
        assert_eq!(reader.tracks().len(), 2);
        let video = reader.tracks().get(&1).unwrap();
        assert_eq!(video.width(), 1280);
        assert_eq!(video.timescale(), VIDEO_TIMESCALE);
        let audio = reader.tracks().get(&2).unwrap();
        assert_eq!(audio.timescale(), 44100);
        assert_eq!(reader.moofs.len(), 1);
        // mp4 0.14 derives fragment sample times from trex defaults, so read the boxes.
        let moof = &reader.moofs[0];
        assert_eq!(moof.mfhd.sequence_number, 7);
        let vt = &moof.trafs[0];
        assert_eq!(vt.tfhd.track_id, 1);
        assert_eq!(vt.tfdt.as_ref().unwrap().base_media_decode_time, 9000);
        let trun = vt.trun.as_ref().unwrap();
        assert_eq!(trun.version, 1);
        assert_eq!(trun.sample_durations, vec![3000, 3000]);
        assert_eq!(trun.sample_cts, vec![6000, (-3000i32) as u32]);
        assert_eq!(trun.sample_flags, vec![FLAGS_SYNC, FLAGS_NON_SYNC]);
        let at = &moof.trafs[1];
        assert_eq!(at.tfhd.track_id, 2);
        assert_eq!(at.tfdt.as_ref().unwrap().base_media_decode_time, 4410);
        // Sample bytes land where the data offsets point, relative to the moof
        // (default-base-is-moof; mp4 0.14 ignores that flag, so check by hand).
        let vo = trun.data_offset.unwrap() as usize;
        assert_eq!(&frag[vo..vo + 6], &v[0].data[..]);
        assert_eq!(&frag[vo + 6..vo + 12], &v[1].data[..]);
        let ao = at.trun.as_ref().unwrap().data_offset.unwrap() as usize;
        assert_eq!(&frag[ao..ao + 3], &a[0].data[..]);
        assert_eq!(ao + 3, frag.len());
    }

    #[test]
    fn extract_one_track_of_a_muxed_fragment() {
        let v = [Sample {
            dts: 9000,
            duration: 3000,
            cts: 0,
            sync: true,
            data: Bytes::from_static(&[0, 0, 0, 2, 0x65, 0x88]),
        }];
        let a = [Sample {
            dts: 441,
            duration: 1024,
            cts: 0,
            sync: true,
            data: Bytes::from_static(&[1, 2, 3]),
        }];
        let frag = write_fragment(
            3,
            &[
                TrackRun {
                    track_id: 1,
                    samples: &v,
                },
                TrackRun {
                    track_id: 2,
                    samples: &a,
                },
            ],
        )
        .unwrap();
        // Our own fragments are cut without decoding them.
        assert!(super::extract::cut_in_place_handles(&frag, 1));
        assert!(super::extract::cut_in_place_handles(&frag, 2));
        let pieces = extract_track(&frag, 2, 1).unwrap();
        let [head, data] = <[Bytes; 2]>::try_from(pieces).unwrap();
        assert_eq!(&data[..], &[1, 2, 3]);
        let joined = [head.clone(), data].concat();
        let moof = Moof::decode(&mut joined.as_slice()).unwrap();
        assert_eq!(moof.traf.len(), 1);
        assert_eq!(moof.traf[0].tfhd.track_id, 1);
        assert_eq!(
            moof.traf[0].tfdt.as_ref().unwrap().base_media_decode_time,
            441
        );
        let off = moof.traf[0].trun[0].data_offset.unwrap() as usize;
        assert_eq!(&joined[off..], &[1, 2, 3]);
        assert_eq!(&joined[off - 4..off], b"mdat");
        assert!(extract_track(&frag, 7, 1).unwrap().is_empty());
        // Two fragments in a row (a part made of chunks): each is extracted on its own.
        let two = Bytes::from([frag.clone(), frag.clone()].concat());
        let pieces = extract_track(&two, 2, 1).unwrap();
        assert_eq!(pieces.len(), 4);
        assert_eq!(pieces[2], head);
        assert_eq!(&pieces[3][..], &[1, 2, 3]);
    }

    proptest::proptest! {
        /// Cutting a track in place gives the same bytes as decoding and re-encoding it.
        #[test]
        fn cutting_in_place_is_decoding_and_reencoding(
            frags in proptest::collection::vec(
                (
                    proptest::collection::vec((1u32..6000, -3000i32..6000, proptest::bool::ANY, 1usize..40), 0..5),
                    proptest::collection::vec((1u32..2048, 1usize..20), 0..5),
                ),
                1..4,
            )
        ) {
            let mut all = Vec::new();
            let (mut vt, mut at) = (0u64, 0u64);
            for (i, (v, a)) in frags.iter().enumerate() {
                let vs: Vec<Sample> = v.iter().map(|&(d, cts, sync, n)| {
                    let s = Sample { dts: vt, duration: d, cts, sync, data: Bytes::from(vec![7u8; n]) };
                    vt += u64::from(d);
                    s
                }).collect();
                let as_: Vec<Sample> = a.iter().map(|&(d, n)| {
                    let s = Sample { dts: at, duration: d, cts: 0, sync: true, data: Bytes::from(vec![9u8; n]) };
                    at += u64::from(d);
                    s
                }).collect();
                if vs.is_empty() && as_.is_empty() {
                    continue;
                }
                let f = write_fragment(i as u32 + 1, &[
                    TrackRun { track_id: 1, samples: &vs },
                    TrackRun { track_id: 2, samples: &as_ },
                ]).unwrap();
                all.extend_from_slice(&f);
            }
            let all = Bytes::from(all);
            for track in [1, 2, 3] {
                let fast: Vec<u8> = extract_track(&all, track, 1).unwrap().concat();
                let slow: Vec<u8> = super::extract::extract_track_decoded(&all, track, 1).unwrap().concat();
                proptest::prop_assert_eq!(fast, slow);
            }
        }
    }

    #[test]
    fn codecs_string() {
        let t = TrackSet {
            video: Some(avc()),
            audio: Some(aac()),
        };
        assert_eq!(t.codecs(), "avc1.64001f,mp4a.40.2");
        assert_eq!(t.audio_track_id(), Some(2));
        let a = TrackSet {
            video: None,
            audio: Some(aac()),
        };
        assert_eq!(a.audio_track_id(), Some(1));
    }
}
