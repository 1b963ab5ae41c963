//! Bounded byte and bit readers used by every parser. They never panic: every
//! read checks the remaining length and returns [`Error::Truncated`].

use crate::error::{Error, Result};

/// A cursor over a byte slice.
#[derive(Debug, Clone)]
pub(crate) struct ByteReader<'a> {
    data: &'a [u8],
    what: &'static str,
}

impl<'a> ByteReader<'a> {
    pub(crate) fn new(data: &'a [u8], what: &'static str) -> Self {
        Self { data, what }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.data.len()
    }

    pub(crate) fn rest(&self) -> &'a [u8] {
        self.data
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.data.len() {
            return Err(Error::Truncated {
                what: self.what,
                need: n - self.data.len(),
            });
        }
        let (head, tail) = self.data.split_at(n);
        self.data = tail;
        Ok(head)
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.bytes(1)?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn u24(&mut self) -> Result<u32> {
        let b = self.bytes(3)?;
        Ok(u32::from_be_bytes([0, b[0], b[1], b[2]]))
    }

    /// Signed 24-bit big-endian (FLV composition time offset).
    pub(crate) fn i24(&mut self) -> Result<i32> {
        let v = self.u24()?;
        // Sign-extend bit 23.
        Ok(((v << 8) as i32) >> 8)
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// Removes H.264/H.265 emulation prevention bytes (00 00 03 -> 00 00).
pub(crate) fn unescape_rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0usize;
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

/// MSB-first bit reader with Exp-Golomb support.
#[derive(Debug)]
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(data: &'a [u8], what: &'static str) -> Self {
        Self { data, pos: 0, what }
    }

    pub(crate) fn bit(&mut self) -> Result<u32> {
        let byte = self.data.get(self.pos / 8).ok_or(Error::Truncated {
            what: self.what,
            need: 1,
        })?;
        let v = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Ok(u32::from(v))
    }

    pub(crate) fn flag(&mut self) -> Result<bool> {
        Ok(self.bit()? == 1)
    }

    /// Reads up to 32 bits.
    pub(crate) fn bits(&mut self, n: u32) -> Result<u32> {
        let mut v: u32 = 0;
        for _ in 0..n.min(32) {
            v = (v << 1) | self.bit()?;
        }
        Ok(v)
    }

    pub(crate) fn skip(&mut self, n: usize) -> Result<()> {
        let end = self.pos.saturating_add(n);
        if end > self.data.len().saturating_mul(8) {
            return Err(Error::Truncated {
                what: self.what,
                need: 1,
            });
        }
        self.pos = end;
        Ok(())
    }

    /// Unsigned Exp-Golomb, bounded to 31 leading zeros.
    pub(crate) fn ue(&mut self) -> Result<u32> {
        let mut zeros = 0u32;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return Err(Error::invalid(self.what, "exp-golomb code too long"));
            }
        }
        let rest = self.bits(zeros)?;
        // (1 << zeros) - 1 + rest, computed in u64 to avoid overflow at zeros == 31/32.
        let v = (1u64 << zeros) - 1 + u64::from(rest);
        u32::try_from(v).map_err(|_| Error::invalid(self.what, "exp-golomb value too large"))
    }

    /// Signed Exp-Golomb.
    pub(crate) fn se(&mut self) -> Result<i32> {
        let k = i64::from(self.ue()?);
        let v = if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) };
        Ok(v as i32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn i24_sign_extends() {
        let mut r = ByteReader::new(&[0xff, 0xff, 0xfe, 0x00, 0x00, 0x21], "t");
        assert_eq!(r.i24().unwrap(), -2);
        assert_eq!(r.i24().unwrap(), 33);
        assert!(r.u8().is_err());
    }

    #[test]
    fn exp_golomb() {
        // 1 | 010 | 011 | 00100 -> 0, 1, 2, 3
        let data = [0b1010_0110, 0b0100_0000];
        let mut b = BitReader::new(&data, "t");
        assert_eq!(b.ue().unwrap(), 0);
        assert_eq!(b.ue().unwrap(), 1);
        assert_eq!(b.ue().unwrap(), 2);
        assert_eq!(b.ue().unwrap(), 3);
        let mut z = BitReader::new(&[0, 0, 0, 0, 0], "t");
        assert!(z.ue().is_err());
        let mut s = BitReader::new(&[0b0100_1100], "t");
        assert_eq!(s.se().unwrap(), 1);
        assert_eq!(s.se().unwrap(), -1);
    }

    #[test]
    fn unescape() {
        assert_eq!(unescape_rbsp(&[0, 0, 3, 1, 0, 0, 3]), vec![0, 0, 1, 0, 0]);
    }
}
