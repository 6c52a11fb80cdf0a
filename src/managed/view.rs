//! A stream's delivery as the control task and the admin API read it, and the report fields
//! (`alternate`, `delivery`) made from it.

use relay::cloud::client::{Alternate, DeliveryReport, OutputStatus};

use super::Playback;
use super::mode::{DeliveryMode, PlatformKind};

/// Where a stream's delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for the cloud's first answer (it may name the mode).
    Deciding,
    /// Our origin alone serves it (mode `self`).
    Origin,
    /// Creating the platform stream.
    Creating,
    /// Forwarding; the platform does not serve it yet.
    Waiting,
    /// The platform serves it.
    Live,
    /// The platform did not serve it in time; forwarding goes on.
    NotServed,
    /// The platform stream could not be created; our origin serves it instead.
    FellBack,
    /// The platform stream could not be created and falling back is off.
    Failed,
    /// Our stream ended.
    Ended,
}

/// A stream's delivery as the control task and the admin API see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryView {
    pub mode: DeliveryMode,
    pub platform: Option<PlatformKind>,
    pub phase: Phase,
    /// The platform's playback URLs, once it serves the stream.
    pub playback: Option<Playback>,
    pub viewers: Option<u64>,
    /// What went wrong with the platform (names it; never a secret).
    pub error: Option<String>,
    /// The stream's destinations as platform outputs (`cloudflare` mode), keys masked.
    pub outputs: Vec<OutputStatus>,
}

impl DeliveryView {
    pub(super) fn new(mode: DeliveryMode) -> Self {
        Self {
            mode,
            platform: None,
            phase: Phase::Deciding,
            playback: None,
            viewers: None,
            error: None,
            outputs: Vec::new(),
        }
    }

    /// The platform side's state word (`connecting`, `active`, `error`, `stopped`).
    pub fn platform_status(&self) -> &'static str {
        match self.phase {
            Phase::Deciding | Phase::Creating | Phase::Waiting => "connecting",
            Phase::Live => "active",
            Phase::NotServed | Phase::FellBack | Phase::Failed => "error",
            Phase::Ended => "stopped",
            Phase::Origin => "active",
        }
    }

    /// What serves viewers: `self`, the platform's word, or `ab`.
    pub fn serving(&self) -> &'static str {
        match (self.mode, self.phase) {
            (_, Phase::FellBack) => "self",
            (DeliveryMode::Platform(_), Phase::Failed) => "none",
            (mode, _) => mode.word(),
        }
    }

    /// True when the platform alone was to serve the stream and it does not.
    pub fn is_error(&self) -> bool {
        matches!(self.mode, DeliveryMode::Platform(_))
            && matches!(self.phase, Phase::Failed | Phase::NotServed)
    }

    /// `alternate` of a status report (`ab` mode).
    pub fn alternate(&self) -> Option<Alternate> {
        if self.mode != DeliveryMode::Ab {
            return None;
        }
        let p = self.playback.as_ref();
        Some(Alternate {
            platform: self.platform.map_or("", PlatformKind::word).to_string(),
            hls_url: p.map(|p| p.hls.clone()).unwrap_or_default(),
            dash_url: p.and_then(|p| p.dash.clone()).unwrap_or_default(),
            status: self.platform_status().to_string(),
            viewers: self.viewers,
        })
    }

    /// `delivery` of a status report: present unless the stream is simply ours.
    pub fn report(&self) -> Option<DeliveryReport> {
        (self.mode != DeliveryMode::Origin).then(|| DeliveryReport {
            requested: self.mode.word().to_string(),
            serving: self.serving().to_string(),
            error: self.error.clone(),
        })
    }
}
