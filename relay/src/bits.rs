//! A big-endian bit reader for H.264 parameter sets (Exp-Golomb codes).

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("bitstream ended early")]
pub struct EndOfData;

/// Reads bits MSB first from a byte slice that has had emulation prevention bytes removed.
pub struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    pub fn bit(&mut self) -> Result<u32, EndOfData> {
        let byte = self.data.get(self.pos / 8).ok_or(EndOfData)?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Ok(u32::from(bit))
    }

    pub fn bits(&mut self, n: u32) -> Result<u32, EndOfData> {
        let mut v = 0u32;
        for _ in 0..n {
            v = (v << 1) | self.bit()?;
        }
        Ok(v)
    }

    pub fn skip(&mut self, n: usize) -> Result<(), EndOfData> {
        if self.pos + n > self.data.len() * 8 {
            return Err(EndOfData);
        }
        self.pos += n;
        Ok(())
    }

    /// Unsigned Exp-Golomb.
    pub fn ue(&mut self) -> Result<u32, EndOfData> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return Err(EndOfData);
            }
        }
        Ok(((1u64 << zeros) - 1 + u64::from(self.bits(zeros)?)) as u32)
    }

    /// Signed Exp-Golomb.
    pub fn se(&mut self) -> Result<i32, EndOfData> {
        let k = self.ue()?;
        Ok(if k % 2 == 1 {
            k.div_ceil(2) as i32
        } else {
            -((k / 2) as i32)
        })
    }
}

/// Removes H.264 emulation prevention bytes (00 00 03 -> 00 00).
pub fn unescape_rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_golomb() {
        // 1 -> 0, 010 -> 1, 011 -> 2, 00100 -> 3
        let data = [0b1010_0110, 0b0100_0000];
        let mut r = BitReader::new(&data);
        assert_eq!(r.ue(), Ok(0));
        assert_eq!(r.ue(), Ok(1));
        assert_eq!(r.ue(), Ok(2));
        assert_eq!(r.ue(), Ok(3));
    }

    #[test]
    fn signed_exp_golomb() {
        // 010 -> +1, 011 -> -1
        let data = [0b0100_1100];
        let mut r = BitReader::new(&data);
        assert_eq!(r.se(), Ok(1));
        assert_eq!(r.se(), Ok(-1));
    }

    #[test]
    fn unescape() {
        assert_eq!(unescape_rbsp(&[0, 0, 3, 1, 0, 0, 3]), vec![0, 0, 1, 0, 0]);
    }

    #[test]
    fn end_of_data_is_an_error() {
        let mut r = BitReader::new(&[0]);
        assert_eq!(r.ue(), Err(EndOfData));
    }
}
