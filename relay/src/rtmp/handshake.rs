//! The server side of the RTMP handshake (the "simple" one every encoder speaks): C0+C1 in,
//! S0+S1+S2 out, C2 in. The S1 version field is zero, which tells clients that also know the
//! digest handshake (ffmpeg, Flash-era encoders) not to expect one. C2's content is not
//! checked: some clients send garbage there, and checking it buys nothing.

/// Size of C1, S1, C2 and S2.
pub const PACKET: usize = 1536;

/// Why the handshake failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("RTMP version {0} is not supported (only 3; RTMPE is not)")]
    Version(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for C0 and C1.
    C0C1,
    /// S0-S2 sent; waiting for C2.
    C2,
    Done,
}

/// Handshake progress.
#[derive(Debug)]
pub struct Handshake {
    state: State,
    /// Seeds S1's random part (so tests are deterministic).
    seed: u64,
}

/// What one call produced.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Bytes to send.
    pub reply: Vec<u8>,
    /// Bytes of the input used; the rest belongs to the chunk stream once `done`.
    pub consumed: usize,
    pub done: bool,
}

impl Handshake {
    pub fn new(seed: u64) -> Self {
        Self {
            state: State::C0C1,
            seed,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Feeds the bytes received so far that the handshake has not consumed (the caller keeps
    /// them until it does).
    pub fn handle(&mut self, input: &[u8]) -> Result<Progress, HandshakeError> {
        let mut p = Progress::default();
        if self.state == State::C0C1 {
            let Some(&version) = input.first() else {
                return Ok(p);
            };
            if version != 3 {
                return Err(HandshakeError::Version(version));
            }
            let Some(c1) = input.get(1..1 + PACKET) else {
                return Ok(p);
            };
            p.reply.reserve(1 + 2 * PACKET);
            p.reply.push(3);
            // S1: time 0, zero version, then pseudo-random bytes.
            p.reply.extend_from_slice(&[0; 8]);
            let mut x = self.seed | 1;
            while p.reply.len() < 1 + PACKET {
                // xorshift64: not for security, RTMP's handshake has none.
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                p.reply.extend_from_slice(&x.to_le_bytes());
            }
            p.reply.truncate(1 + PACKET);
            // S2 echoes C1.
            p.reply.extend_from_slice(c1);
            p.consumed = 1 + PACKET;
            self.state = State::C2;
        }
        if self.state == State::C2 {
            if input.len() - p.consumed < PACKET {
                return Ok(p);
            }
            p.consumed += PACKET;
            p.done = true;
            self.state = State::Done;
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_one_piece_or_byte_by_byte() {
        let mut input = vec![3u8];
        input.extend((0..PACKET).map(|i| i as u8));
        input.extend(vec![9u8; PACKET]);
        input.extend([0xaa, 0xbb]);
        let mut h = Handshake::new(7);
        let p = h.handle(&input).unwrap();
        assert!(p.done);
        assert_eq!(p.consumed, 1 + 2 * PACKET);
        assert_eq!(p.reply.len(), 1 + 2 * PACKET);
        assert_eq!(p.reply[0], 3);
        assert_eq!(
            &p.reply[1 + PACKET..],
            &input[1..1 + PACKET],
            "S2 echoes C1"
        );

        let mut h = Handshake::new(7);
        let mut held: Vec<u8> = Vec::new();
        let mut reply = Vec::new();
        for b in &input {
            held.push(*b);
            let p = h.handle(&held).unwrap();
            reply.extend(p.reply);
            held.drain(..p.consumed);
            if p.done {
                break;
            }
        }
        assert!(h.is_done());
        assert_eq!(reply.len(), 1 + 2 * PACKET);
    }

    #[test]
    fn other_versions_are_refused() {
        assert_eq!(
            Handshake::new(1).handle(&[6]),
            Err(HandshakeError::Version(6))
        );
        assert_eq!(
            Handshake::new(1).handle(b"GET / HTTP/1.1"),
            Err(HandshakeError::Version(b'G'))
        );
    }
}
