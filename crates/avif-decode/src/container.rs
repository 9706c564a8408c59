//! Just enough ISO-BMFF (HEIF) to find a still AVIF's items: the primary (colour)
//! item's AV1 data, its alpha item's (the one whose `auxl` reference names the primary)
//! and the colour description (`colr`/`nclx`). Every length is checked against what
//! is left, so a damaged file is an error, never a panic or an over-read.

use crate::DecodeError;

/// What [`parse`] finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Items<'a> {
    /// The primary item's AV1 OBUs.
    pub color: Vec<&'a [u8]>,
    /// The alpha item's AV1 OBUs, if there is one.
    pub alpha: Option<Vec<&'a [u8]>>,
    /// `nclx` matrix coefficients (1 BT.709, 5 or 6 BT.601, 0 identity); `None` without
    /// a `colr` box.
    pub matrix: Option<u16>,
    /// `nclx` full range flag (true without a `colr` box, as ravif writes).
    pub full_range: bool,
}

fn bad(what: impl Into<String>) -> DecodeError {
    DecodeError::Container(what.into())
}

/// A box: its four-character type and its body.
type Atom<'a> = ([u8; 4], &'a [u8]);

/// A cursor over a byte slice that never reads past its end.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, at: 0 }
    }

    fn left(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.left() {
            return Err(bad(format!(
                "wanted {n} bytes at {}, {} left",
                self.at,
                self.left()
            )));
        }
        let out = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(out)
    }

    fn uint(&mut self, n: usize) -> Result<u64, DecodeError> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |v, &b| (v << 8) | u64::from(b)))
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        u16::try_from(self.uint(2)?).map_err(|_| bad("u16"))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        u32::try_from(self.uint(4)?).map_err(|_| bad("u32"))
    }

    /// The next box: its type and body.
    fn next_box(&mut self) -> Result<Option<Atom<'a>>, DecodeError> {
        if self.left() == 0 {
            return Ok(None);
        }
        let size = u64::from(self.u32()?);
        let kind: [u8; 4] = self.take(4)?.try_into().map_err(|_| bad("box type"))?;
        let body = match size {
            0 => self.left() as u64,
            1 => self
                .uint(8)?
                .checked_sub(16)
                .ok_or_else(|| bad("box size"))?,
            n => n.checked_sub(8).ok_or_else(|| bad("box size"))?,
        };
        let body = usize::try_from(body).map_err(|_| bad("box size"))?;
        Ok(Some((kind, self.take(body)?)))
    }
}

/// Each child box of `body`, in order.
fn children(body: &[u8]) -> Result<Vec<Atom<'_>>, DecodeError> {
    let mut r = Reader::new(body);
    let mut out = Vec::new();
    while let Some(b) = r.next_box()? {
        out.push(b);
    }
    Ok(out)
}

/// One item's extents: (offset in the file, length).
type Extents = Vec<(u64, u64)>;

fn iloc(body: &[u8]) -> Result<Vec<(u32, Extents)>, DecodeError> {
    let mut r = Reader::new(body);
    let version = r.u8()?;
    r.take(3)?; // flags
    let sizes = r.u8()?;
    let (offset_size, length_size) = (usize::from(sizes >> 4), usize::from(sizes & 15));
    let sizes = r.u8()?;
    let base_size = usize::from(sizes >> 4);
    let index_size = if version >= 1 {
        usize::from(sizes & 15)
    } else {
        0
    };
    let count = if version < 2 {
        u32::from(r.u16()?)
    } else {
        r.u32()?
    };
    let mut out = Vec::new();
    for _ in 0..count {
        let id = if version < 2 {
            u32::from(r.u16()?)
        } else {
            r.u32()?
        };
        if version >= 1 && r.u16()? & 15 != 0 {
            return Err(bad("only items stored in the file itself are supported"));
        }
        r.u16()?; // data reference index
        let base = r.uint(base_size)?;
        let extents = r.u16()?;
        let mut list = Vec::new();
        for _ in 0..extents {
            r.uint(index_size)?;
            let offset = r.uint(offset_size)?;
            let length = r.uint(length_size)?;
            list.push((base.saturating_add(offset), length));
        }
        out.push((id, list));
    }
    Ok(out)
}

/// Finds the items of an AVIF file (see the module docs).
pub fn parse(file: &[u8]) -> Result<Items<'_>, DecodeError> {
    let top = children(file)?;
    if top.first().map(|(k, _)| k) != Some(b"ftyp") {
        return Err(bad("not an ISO-BMFF file (no ftyp box first)"));
    }
    let meta = top
        .iter()
        .find(|(k, _)| k == b"meta")
        .map(|(_, b)| *b)
        .ok_or_else(|| bad("no meta box"))?;
    let meta = children(meta.get(4..).ok_or_else(|| bad("meta"))?)?;
    let find = |kind: &[u8; 4]| meta.iter().find(|(k, _)| k == kind).map(|(_, b)| *b);
    let primary = {
        let mut r = Reader::new(find(b"pitm").ok_or_else(|| bad("no pitm box"))?);
        let version = r.u8()?;
        r.take(3)?;
        if version == 0 {
            u32::from(r.u16()?)
        } else {
            r.u32()?
        }
    };
    let locations = iloc(find(b"iloc").ok_or_else(|| bad("no iloc box"))?)?;
    let mut alpha_id = None;
    if let Some(iref) = find(b"iref") {
        let version = *iref.first().ok_or_else(|| bad("iref"))?;
        for (kind, body) in children(iref.get(4..).ok_or_else(|| bad("iref"))?)? {
            let mut r = Reader::new(body);
            let id = |r: &mut Reader<'_>| -> Result<u32, DecodeError> {
                if version == 0 {
                    Ok(u32::from(r.u16()?))
                } else {
                    r.u32()
                }
            };
            let from = id(&mut r)?;
            let count = r.u16()?;
            for _ in 0..count {
                if id(&mut r)? == primary && &kind == b"auxl" {
                    alpha_id = Some(from);
                }
            }
        }
    }
    let mut matrix = None;
    let mut full_range = true;
    if let Some(iprp) = find(b"iprp") {
        for (kind, body) in children(iprp)? {
            if &kind != b"ipco" {
                continue;
            }
            for (kind, body) in children(body)? {
                if &kind == b"colr" && body.get(..4) == Some(b"nclx") && matrix.is_none() {
                    let mut r = Reader::new(&body[4..]);
                    r.u16()?; // primaries
                    r.u16()?; // transfer
                    matrix = Some(r.u16()?);
                    full_range = r.u8()? & 0x80 != 0;
                }
            }
        }
    }
    let data_of = |id: u32| -> Result<Vec<&[u8]>, DecodeError> {
        let (_, extents) = locations
            .iter()
            .find(|(i, _)| *i == id)
            .ok_or_else(|| bad(format!("item {id} has no location")))?;
        extents
            .iter()
            .map(|&(offset, length)| {
                let start = usize::try_from(offset).map_err(|_| bad("offset"))?;
                let length = usize::try_from(length).map_err(|_| bad("length"))?;
                file.get(start..start.saturating_add(length))
                    .ok_or_else(|| bad(format!("item {id} lies outside the file")))
            })
            .collect()
    };
    Ok(Items {
        color: data_of(primary)?,
        alpha: alpha_id.map(data_of).transpose()?,
        matrix,
        full_range,
    })
}
