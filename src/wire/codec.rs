//! Length-checked primitives: `Writer`, `Reader` (never allocates on a peer's word
//! before checking it against the bytes left), and profiles in their wire form.

use super::*;

pub fn encode_profile(w: &mut Writer, p: &Profile) {
    w.bytes(&p.user_id.0);
    w.bytes(&p.dh_public);
    w.u64(p.updated_ms);
    w.u8(p.display_name.len().min(255) as u8);
    w.bytes(p.display_name.as_bytes());
    w.bytes(&p.signature);
}

pub fn decode_profile(r: &mut Reader<'_>) -> Result<Profile, WireError> {
    let user_id = UserId(r.array()?);
    let dh_public = r.array()?;
    let updated_ms = r.u64()?;
    let len = r.u8()? as usize;
    if len > MAX_DISPLAY_NAME_BYTES {
        return Err(WireError::TooLarge {
            len,
            max: MAX_DISPLAY_NAME_BYTES,
        });
    }
    let name = std::str::from_utf8(r.take(len)?)
        .map_err(|_| WireError::Invalid {
            what: "display name",
        })?
        .to_string();
    Ok(Profile {
        user_id,
        display_name: name,
        dh_public,
        updated_ms,
        signature: r.array()?,
    })
}

pub fn profile_to_bytes(p: &Profile) -> Vec<u8> {
    let mut w = Writer::with_capacity(PROFILE_MIN_LEN + p.display_name.len());
    encode_profile(&mut w, p);
    w.into_bytes()
}

pub fn profile_from_bytes(bytes: &[u8]) -> Result<Profile, WireError> {
    let mut r = Reader::new(bytes);
    let p = decode_profile(&mut r)?;
    r.finish()?;
    Ok(p)
}

/// Big-endian writer. Lengths are u32 (`var_bytes`) or u16 counts.
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn with_capacity(n: usize) -> Self {
        Writer {
            buf: Vec::with_capacity(n),
        }
    }
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }
    pub fn var_bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.buf.extend_from_slice(b);
    }
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

/// Bounds-checked reader; every method returns an error instead of panicking.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.remaining() < n {
            return Err(WireError::Truncated {
                offset: self.pos,
                needed: n - self.remaining(),
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }
    pub fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    pub fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// A u32 length followed by that many bytes, checked against `max` and the input
    /// size before anything is taken.
    pub fn var_bytes(&mut self, max: usize) -> Result<&'a [u8], WireError> {
        let len = self.u32()? as usize;
        if len > max {
            return Err(WireError::TooLarge { len, max });
        }
        self.take(len)
    }

    /// Bytes with a one-byte length (at most 255, so nothing to bound).
    pub fn var_bytes_u8(&mut self) -> Result<&'a [u8], WireError> {
        let n = self.u8()? as usize;
        self.take(n)
    }

    pub fn string(&mut self, max: usize) -> Result<String, WireError> {
        let bytes = self.var_bytes(max)?;
        std::str::from_utf8(bytes)
            .map(str::to_string)
            .map_err(|_| WireError::Invalid { what: "utf-8 text" })
    }

    fn check_count(
        &self,
        what: &'static str,
        count: usize,
        max: usize,
        min_item: usize,
    ) -> Result<usize, WireError> {
        if count > max {
            return Err(WireError::TooMany { what, count, max });
        }
        // Each item needs at least `min_item` bytes: a lying count cannot make us allocate.
        if count.saturating_mul(min_item) > self.remaining() {
            return Err(WireError::Truncated {
                offset: self.pos,
                needed: count * min_item - self.remaining(),
            });
        }
        Ok(count)
    }

    pub fn count16(
        &mut self,
        what: &'static str,
        max: usize,
        min_item: usize,
    ) -> Result<usize, WireError> {
        let n = self.u16()? as usize;
        self.check_count(what, n, max, min_item)
    }

    pub fn count32(
        &mut self,
        what: &'static str,
        max: usize,
        min_item: usize,
    ) -> Result<usize, WireError> {
        let n = self.u32()? as usize;
        self.check_count(what, n, max, min_item)
    }

    pub fn finish(&self) -> Result<(), WireError> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(WireError::TrailingBytes { extra }),
        }
    }
}
