//! Structure-aware mutations of file bytes.
//!
//! A seed is cut into segments (DICOM elements, PNG chunks, JPEG segments, zip records,
//! lines and cells of text); each segment may carry the position of its length field.
//! Mutations then hit the places parsers trust: a length set huge or odd, a file cut
//! exactly at a segment boundary, a segment removed or repeated; plus plain byte flips
//! and, for text, numbers replaced by awkward ones.

use rand::Rng;
use rand::rngs::StdRng;

use crate::xray::dicom_lengths::{LONG_VRS, u16_at, u32_at};

/// One structural unit of a seed: `start..end`, and where its length field sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub start: usize,
    pub end: usize,
    pub length_field: Option<LengthField>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LengthField {
    pub at: usize,
    /// 2, 4 or 8 bytes.
    pub width: usize,
    pub big_endian: bool,
}

/// How a seed's bytes are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Dicom,
    Png,
    Jpeg,
    /// Zip archives (PyTorch `.pt` files).
    Zip,
    /// safetensors: an 8-byte header length, then JSON text.
    Safetensors,
    Text,
    Opaque,
}

/// Segments of `bytes` read as `layout`; best effort, never fails.
pub fn segments(bytes: &[u8], layout: Layout) -> Vec<Segment> {
    match layout {
        Layout::Dicom => dicom_segments(bytes),
        Layout::Png => png_segments(bytes),
        Layout::Jpeg => jpeg_segments(bytes),
        Layout::Zip => zip_segments(bytes),
        Layout::Safetensors => {
            let mut s = vec![Segment {
                start: 0,
                end: bytes.len().min(8),
                length_field: Some(LengthField { at: 0, width: 8, big_endian: false }),
            }];
            s.extend(text_segments(bytes, 8));
            s
        }
        Layout::Text => text_segments(bytes, 0),
        Layout::Opaque => Vec::new(),
    }
}

/// Element headers of a little-endian DICOM stream, explicit or implicit VR (guessed per
/// element from whether two upper-case letters follow the tag). Sequences and items of
/// undefined length are entered, so nested elements and pixel fragments are found too.
fn dicom_segments(b: &[u8]) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut pos = if b.get(128..132) == Some(b"DICM") {
        132
    } else if b.starts_with(b"DICM") {
        4
    } else {
        0
    };
    while pos + 8 <= b.len() && out.len() < 100_000 {
        let (Some(group), Some(_elem)) = (u16_at(b, pos), u16_at(b, pos + 2)) else { break };
        let vr = &b[pos + 4..pos + 6];
        let explicit = group != 0xFFFE && vr.iter().all(u8::is_ascii_uppercase);
        let (len_at, width, header) = if !explicit {
            (pos + 4, 4, 8)
        } else if LONG_VRS.iter().any(|v| &v[..] == vr) {
            (pos + 8, 4, 12)
        } else {
            (pos + 6, 2, 8)
        };
        let len = if width == 4 { u32_at(b, len_at) } else { u16_at(b, len_at).map(u32::from) };
        let Some(len) = len else { break };
        let field = Some(LengthField { at: len_at, width, big_endian: false });
        if len == u32::MAX {
            // Undefined length: the content follows as elements or items.
            out.push(Segment { start: pos, end: (pos + header).min(b.len()), length_field: field });
            pos += header;
            continue;
        }
        let end = (pos + header).saturating_add(len as usize).min(b.len());
        out.push(Segment { start: pos, end, length_field: field });
        pos = end;
    }
    out
}

fn png_segments(b: &[u8]) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut pos = 8;
    while pos + 12 <= b.len() {
        let len = u32::from_be_bytes([b[pos], b[pos + 1], b[pos + 2], b[pos + 3]]) as usize;
        let end = (pos + 12).saturating_add(len).min(b.len());
        out.push(Segment { start: pos, end, length_field: Some(LengthField { at: pos, width: 4, big_endian: true }) });
        pos = end;
    }
    out
}

/// Recompute every intact chunk's CRC, so mutations inside chunks reach the decoders
/// instead of stopping at the checksum.
pub fn fix_png_crcs(b: &mut [u8]) {
    let mut pos = 8;
    while pos + 12 <= b.len() {
        let len = u32::from_be_bytes([b[pos], b[pos + 1], b[pos + 2], b[pos + 3]]) as usize;
        let Some(crc_at) = (pos + 8).checked_add(len).filter(|&c| c + 4 <= b.len()) else { break };
        let crc = crc32(&b[pos + 4..crc_at]);
        b[crc_at..crc_at + 4].copy_from_slice(&crc.to_be_bytes());
        pos = crc_at + 4;
    }
}

/// CRC-32 (IEEE), as PNG and zip use it.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= byte as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn jpeg_segments(b: &[u8]) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut pos = 2;
    while pos + 4 <= b.len() && b[pos] == 0xFF {
        let marker = b[pos + 1];
        if marker == 0xD9 {
            break;
        }
        let len = u16::from_be_bytes([b[pos + 2], b[pos + 3]]) as usize;
        let mut end = (pos + 2 + len).min(b.len());
        if marker == 0xDA {
            // Entropy-coded data runs to the next marker that is not a stuffed 0 or a restart.
            let mut e = end;
            while e + 1 < b.len() && !(b[e] == 0xFF && b[e + 1] != 0 && !(0xD0..=0xD7).contains(&b[e + 1])) {
                e += 1;
            }
            end = e;
        }
        out.push(Segment { start: pos, end, length_field: Some(LengthField { at: pos + 2, width: 2, big_endian: true }) });
        if end <= pos {
            break;
        }
        pos = end;
    }
    out
}

/// Local file headers and central directory entries, with their size and offset fields.
fn zip_segments(b: &[u8]) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 4 <= b.len() {
        let sig = &b[i..i + 4];
        let fields: &[usize] = if sig == b"PK\x03\x04" {
            &[18, 22, 26, 28]
        } else if sig == b"PK\x01\x02" {
            &[20, 24, 28, 30, 42]
        } else if sig == b"PK\x05\x06" {
            &[12, 16]
        } else {
            i += 1;
            continue;
        };
        for &f in fields {
            let width = if matches!(f, 26 | 28 | 30) && sig != b"PK\x05\x06" { 2 } else { 4 };
            if i + f + width <= b.len() {
                out.push(Segment {
                    start: i,
                    end: (i + 46).min(b.len()),
                    length_field: Some(LengthField { at: i + f, width, big_endian: false }),
                });
            }
        }
        i += 4;
    }
    out
}

/// Lines and comma/whitespace-separated cells.
fn text_segments(b: &[u8], from: usize) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut line_start = from;
    for (i, &c) in b.iter().enumerate().skip(from) {
        if c == b'\n' {
            out.push(Segment { start: line_start, end: i + 1, length_field: None });
            line_start = i + 1;
        }
    }
    if line_start < b.len() {
        out.push(Segment { start: line_start, end: b.len(), length_field: None });
    }
    out
}

/// Numbers that break parsers: limits, signs, non-finite spellings, huge sizes.
const AWKWARD_NUMBERS: &[&str] = &[
    "0", "-1", "1", "-0", "65535", "65536", "4294967295", "4294967296", "18446744073709551615",
    "99999999999999999999999", "1e308", "-1e308", "1e-320", "NaN", "inf", "-inf", "1024.5", "0.0", "", "1,2",
    "2147483648", "60000",
];

/// Mutates seeds with a fixed random stream, so an iteration can be replayed from its seed.
pub struct Mutator<'a> {
    pub rng: StdRng,
    pub seeds: &'a [(Vec<u8>, Vec<Segment>)],
    /// Text formats: numbers get replaced too.
    pub text: bool,
}

impl Mutator<'_> {
    /// One mutated input: a random seed, one to four mutations stacked.
    pub fn next(&mut self) -> Vec<u8> {
        let k = self.rng.random_range(0..self.seeds.len());
        let (seed, segs) = &self.seeds[k];
        let mut data = seed.clone();
        let mut segs = segs.clone();
        let count = self.rng.random_range(1..=4);
        for _ in 0..count {
            self.mutate_once(&mut data, &mut segs);
            if data.is_empty() {
                break;
            }
        }
        if data.starts_with(b"\x89PNG") && self.rng.random_bool(0.8) {
            fix_png_crcs(&mut data);
        }
        data
    }

    fn mutate_once(&mut self, data: &mut Vec<u8>, segs: &mut Vec<Segment>) {
        let structural = !segs.is_empty();
        let text = self.text;
        let op = self.rng.random_range(0..10);
        match op {
            // Truncate at a segment boundary (start, end, or just inside the header).
            0 if structural => {
                let s = segs[self.rng.random_range(0..segs.len())];
                let cut = match self.rng.random_range(0..4) {
                    0 => s.start,
                    1 => s.end,
                    2 => s.start + self.rng.random_range(0..=(s.end - s.start).min(12)),
                    _ => s.start + (s.end - s.start) / 2,
                };
                data.truncate(cut);
                segs.retain(|t| t.end <= cut);
            }
            // A length field set huge, zero, odd or off by a little.
            1 | 2 if segs.iter().any(|s| s.length_field.is_some()) => {
                let with: Vec<&Segment> = segs.iter().filter(|s| s.length_field.is_some()).collect();
                let f = with[self.rng.random_range(0..with.len())].length_field.expect("filtered");
                let max = if f.width >= 8 { u64::MAX } else { (1u64 << (8 * f.width)) - 1 };
                let old = read_uint(data, f).unwrap_or(0);
                let v = match self.rng.random_range(0..7) {
                    0 => max,
                    1 => max - 1,
                    2 => max / 2 + 1,
                    3 => 0,
                    4 => old.wrapping_add(1) & max,
                    5 => old.wrapping_sub(self.rng.random_range(1..16)) & max,
                    _ => self.rng.random::<u64>() & max,
                };
                write_uint(data, f, v);
            }
            // Remove a segment.
            3 if structural => {
                let i = self.rng.random_range(0..segs.len());
                let s = segs[i];
                if s.end <= data.len() && s.start < s.end {
                    data.drain(s.start..s.end);
                    *segs = shift_after(segs, s.start, -((s.end - s.start) as isize), Some(i));
                }
            }
            // Repeat a segment right after itself.
            4 if structural => {
                let i = self.rng.random_range(0..segs.len());
                let s = segs[i];
                if s.end <= data.len() && s.start < s.end && s.end - s.start < 1 << 20 {
                    let copy = data[s.start..s.end].to_vec();
                    data.splice(s.end..s.end, copy);
                    *segs = shift_after(segs, s.end, (s.end - s.start) as isize, None);
                }
            }
            // A number in text replaced by an awkward one.
            5 | 6 if text => replace_number(data, &mut self.rng),
            // Cut anywhere.
            7 => {
                if !data.is_empty() {
                    let cut = self.rng.random_range(0..data.len());
                    data.truncate(cut);
                    segs.retain(|t| t.end <= cut);
                }
            }
            // Insert random bytes.
            8 if !data.is_empty() => {
                let at = self.rng.random_range(0..=data.len());
                let n = self.rng.random_range(1..=16);
                let bytes: Vec<u8> = (0..n).map(|_| self.rng.random()).collect();
                data.splice(at..at, bytes);
                *segs = shift_after(segs, at, n as isize, None);
            }
            // Flip bits or set bytes to boundary values.
            _ => {
                if data.is_empty() {
                    return;
                }
                let n = self.rng.random_range(1..=8);
                for _ in 0..n {
                    let i = self.rng.random_range(0..data.len());
                    data[i] = match self.rng.random_range(0..4) {
                        0 => data[i] ^ (1 << self.rng.random_range(0..8)),
                        1 => [0x00, 0xFF, 0x7F, 0x80][self.rng.random_range(0..4)],
                        _ => self.rng.random(),
                    };
                }
            }
        }
    }
}

fn read_uint(data: &[u8], f: LengthField) -> Option<u64> {
    let b = data.get(f.at..f.at + f.width)?;
    let mut v = 0u64;
    for k in 0..f.width {
        let byte = if f.big_endian { b[k] } else { b[f.width - 1 - k] };
        v = (v << 8) | byte as u64;
    }
    Some(v)
}

fn write_uint(data: &mut [u8], f: LengthField, v: u64) {
    let Some(b) = data.get_mut(f.at..f.at + f.width) else { return };
    for k in 0..f.width {
        let byte = (v >> (8 * k)) as u8;
        if f.big_endian {
            b[f.width - 1 - k] = byte;
        } else {
            b[k] = byte;
        }
    }
}

/// Segments after an edit at `at` that moved the bytes behind it by `delta` (`removed`:
/// the index of a segment that was deleted).
fn shift_after(segs: &[Segment], at: usize, delta: isize, removed: Option<usize>) -> Vec<Segment> {
    let mv = |p: usize| if p >= at { (p as isize + delta).max(0) as usize } else { p };
    segs.iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != removed)
        .map(|(_, s)| Segment {
            start: mv(s.start),
            end: mv(s.end).max(mv(s.start)),
            length_field: s.length_field.map(|f| LengthField { at: mv(f.at), ..f }),
        })
        .collect()
}

/// Replace one run of digits (with sign, point and exponent) by an awkward number.
fn replace_number(data: &mut Vec<u8>, rng: &mut StdRng) {
    if data.is_empty() {
        return;
    }
    let start = rng.random_range(0..data.len());
    let Some(first) = (start..data.len()).find(|&i| data[i].is_ascii_digit()) else { return };
    let mut s = first;
    while s > 0 && matches!(data[s - 1], b'-' | b'+' | b'.') {
        s -= 1;
    }
    let mut e = first;
    while e < data.len() && (data[e].is_ascii_digit() || matches!(data[e], b'.' | b'e' | b'E' | b'-' | b'+')) {
        e += 1;
    }
    let with = AWKWARD_NUMBERS[rng.random_range(0..AWKWARD_NUMBERS.len())].as_bytes().to_vec();
    data.splice(s..e, with);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn crc_of_a_known_string() {
        // The standard check value of CRC-32/IEEE.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn dicom_elements_are_found_in_explicit_and_implicit_streams() {
        // (0008,0016) UI "1.2" then (0028,0010) US 4, explicit VR; then the same implicit.
        let explicit = [&[0x08, 0, 0x16, 0][..], b"UI", &[4, 0], b"1.2\0", &[0x28, 0, 0x10, 0], b"US", &[2, 0, 4, 0]].concat();
        let s = segments(&explicit, Layout::Dicom);
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].start, s[0].end, s[1].start, s[1].end), (0, 12, 12, 22));
        assert_eq!(s[1].length_field, Some(LengthField { at: 18, width: 2, big_endian: false }));
        let implicit = [&[0x08, 0, 0x16, 0, 4, 0, 0, 0][..], b"1.2\0", &[0x28, 0, 0x10, 0, 2, 0, 0, 0, 4, 0]].concat();
        let s = segments(&implicit, Layout::Dicom);
        assert_eq!(s.iter().map(|s| (s.start, s.end)).collect::<Vec<_>>(), vec![(0, 12), (12, 22)]);
    }

    #[test]
    fn length_fields_round_trip_in_both_byte_orders() {
        let mut d = vec![0u8; 8];
        for big_endian in [false, true] {
            let f = LengthField { at: 2, width: 4, big_endian };
            write_uint(&mut d, f, 0x0102_0304);
            assert_eq!(read_uint(&d, f), Some(0x0102_0304));
        }
        assert_eq!(&d[2..6], &[1, 2, 3, 4]);
    }

    #[test]
    fn the_same_seed_gives_the_same_mutants() {
        let text = b"a,b\n1,2\n3,4\n".to_vec();
        let seeds = vec![(text.clone(), segments(&text, Layout::Text))];
        let run = |seed| {
            let mut m = Mutator { rng: StdRng::seed_from_u64(seed), seeds: &seeds, text: true };
            (0..20).map(|_| m.next()).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        assert!(run(7).iter().any(|m| m != &text));
    }
}
