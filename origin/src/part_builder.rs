//! What the chunks of the part being made add up to: the fragmenter cuts, this keeps count.
//! Pure bookkeeping over samples that were already written.

use bytes::Bytes;

use crate::cmaf::Sample;
use crate::fragment::Part;

/// The chunks emitted so far for the part being made, and what they hold.
#[derive(Debug, Default)]
pub(crate) struct PartBuilder {
    chunks: Vec<Bytes>,
    master_samples: u32,
    duration: u64,
    independent: Option<bool>,
    video_samples: u32,
    audio_samples: u32,
    /// First audio decode time and end of the last audio sample.
    audio: Option<(u64, u64)>,
    audio_bytes: u64,
}

impl PartBuilder {
    /// A chunk `data` holding `video` and `audio`; `master` is whichever of them times parts.
    pub(crate) fn add_chunk(
        &mut self,
        data: Bytes,
        master: &[Sample],
        video: &[Sample],
        audio: &[Sample],
    ) {
        if self.independent.is_none() {
            self.independent = master.first().map(|s| s.sync);
        }
        self.master_samples += master.len() as u32;
        self.duration += master.iter().map(|s| u64::from(s.duration)).sum::<u64>();
        self.video_samples += video.len() as u32;
        self.audio_samples += audio.len() as u32;
        self.audio_bytes += audio.iter().map(|s| s.data.len() as u64).sum::<u64>();
        if let (Some(first), Some(last)) = (audio.first(), audio.last()) {
            let end = last.dts + u64::from(last.duration);
            self.audio = Some(match self.audio {
                Some((start, _)) => (start, end),
                None => (first.dts, end),
            });
        }
        self.chunks.push(data);
    }

    /// Whether no master sample was added yet.
    pub(crate) fn has_no_master_samples(&self) -> bool {
        self.master_samples == 0
    }

    /// The part, on the master track's `timescale`; the builder starts over.
    pub(crate) fn finish(&mut self, timescale: u32) -> Part {
        let acc = std::mem::take(self);
        Part {
            chunks: acc.chunks,
            duration: acc.duration,
            timescale,
            independent: acc.independent.unwrap_or(false),
            video_samples: acc.video_samples,
            audio_samples: acc.audio_samples,
            audio: acc.audio.map(|(start, end)| (start, end - start)),
            audio_bytes: acc.audio_bytes,
        }
    }
}
