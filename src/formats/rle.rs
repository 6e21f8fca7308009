//! The CheXmask run-length encoding: the mask flattened row by row, then
//! "start length start length …" with 1-based starts, separated by single spaces.
//!
//! [`Rle`] keeps the runs exactly as written (validated against the mask size), so a
//! row read and written again reproduces its text; [`Rle::from_mask`] makes the
//! canonical encoding (ascending, maximal runs), which is what the released files hold.

use crate::masks::Mask;
use std::fmt;

/// One run: `len` foreground pixels from flat index `start` (0-based here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub start: u64,
    pub len: u64,
}

/// Why an RLE string was refused. Tokens and runs are numbered from 1, as a person counts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RleError {
    #[error("odd number of values ({0}); runs come as start/length pairs")]
    OddCount(usize),
    #[error("value {index} ({token:?}) is not a whole non-negative number")]
    NotANumber { index: usize, token: String },
    #[error("run {run} starts at 0, but starts are 1-based")]
    ZeroStart { run: usize },
    #[error("run {run} has length 0")]
    ZeroLength { run: usize },
    #[error("run {run} (start {start}) overlaps or precedes the previous run, which ends at {previous_end}")]
    Overlap { run: usize, start: u64, previous_end: u64 },
    #[error("run {run} (start {start}, length {len}) goes past the end of the {width}×{height} mask ({pixels} pixels)")]
    OutOfRange { run: usize, start: u64, len: u64, width: u32, height: u32, pixels: u64 },
}

/// A validated RLE mask of a known size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rle {
    width: u32,
    height: u32,
    runs: Vec<Run>,
}

impl Rle {
    /// Parses "start length …" for a `width × height` mask. Any whitespace separates values;
    /// runs must be in ascending order and must not overlap.
    pub fn parse(text: &str, width: u32, height: u32) -> Result<Rle, RleError> {
        let mut values = Vec::new();
        for (i, token) in text.split_whitespace().enumerate() {
            let v: u64 = token.parse().map_err(|_| RleError::NotANumber { index: i + 1, token: token.to_string() })?;
            values.push(v);
        }
        if values.len() % 2 != 0 {
            return Err(RleError::OddCount(values.len()));
        }
        let pixels = width as u64 * height as u64;
        let mut runs = Vec::with_capacity(values.len() / 2);
        let mut previous_end = 0u64; // 1-based index of the last pixel of the previous run
        for (k, pair) in values.chunks_exact(2).enumerate() {
            let (run, start, len) = (k + 1, pair[0], pair[1]);
            if start == 0 {
                return Err(RleError::ZeroStart { run });
            }
            if len == 0 {
                return Err(RleError::ZeroLength { run });
            }
            if k > 0 && start <= previous_end {
                return Err(RleError::Overlap { run, start, previous_end });
            }
            let end = start.checked_add(len - 1).filter(|&e| e <= pixels);
            let Some(end) = end else {
                return Err(RleError::OutOfRange { run, start, len, width, height, pixels });
            };
            runs.push(Run { start: start - 1, len });
            previous_end = end;
        }
        Ok(Rle { width, height, runs })
    }

    /// The canonical encoding of a mask: maximal runs in ascending order.
    pub fn from_mask(mask: &Mask) -> Rle {
        let mut runs = Vec::new();
        let mut current: Option<Run> = None;
        for (i, &v) in mask.as_slice().iter().enumerate() {
            match (v, current.as_mut()) {
                (true, Some(run)) => run.len += 1,
                (true, None) => current = Some(Run { start: i as u64, len: 1 }),
                (false, Some(_)) => runs.extend(current.take()),
                (false, None) => {}
            }
        }
        runs.extend(current);
        Rle { width: mask.width(), height: mask.height(), runs }
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    pub fn runs(&self) -> &[Run] {
        &self.runs
    }

    /// Number of foreground pixels.
    pub fn count(&self) -> u64 {
        self.runs.iter().map(|r| r.len).sum()
    }

    pub fn to_mask(&self) -> Mask {
        let mut mask = Mask::new(self.width, self.height);
        let data = mask.as_mut_slice();
        for r in &self.runs {
            data[r.start as usize..(r.start + r.len) as usize].fill(true);
        }
        mask
    }
}

/// The text form, starts 1-based: exactly what [`Rle::parse`] read when the input used single spaces.
impl fmt::Display for Rle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.runs.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{} {}", r.start + 1, r.len)?;
        }
        Ok(())
    }
}

/// Decodes an RLE string into a mask.
pub fn decode(text: &str, width: u32, height: u32) -> Result<Mask, RleError> {
    Rle::parse(text, width, height).map(|r| r.to_mask())
}

/// Encodes a mask as canonical RLE text.
pub fn encode(mask: &Mask) -> String {
    Rle::from_mask(mask).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_of_a_small_mask() {
        // 4×3: row 0 ".##.", row 1 "#..#", row 2 "####" → runs at flat 1(2), 4(1), 7(5).
        let m = Mask::from_fn(4, 3, |x, y| matches!((x, y), (1 | 2, 0) | (0 | 3, 1) | (_, 2)));
        assert_eq!(encode(&m), "2 2 5 1 8 5");
        assert_eq!(decode("2 2 5 1 8 5", 4, 3).unwrap(), m);
        assert_eq!(encode(&Mask::new(3, 3)), "");
        assert_eq!(decode("", 3, 3).unwrap(), Mask::new(3, 3));
        assert_eq!(decode("1 9", 3, 3).unwrap().count(), 9);
    }

    #[test]
    fn non_canonical_runs_are_kept_as_written() {
        let r = Rle::parse("1  2\t3 1", 2, 2).unwrap();
        assert_eq!(r.to_string(), "1 2 3 1");
        assert_eq!(encode(&r.to_mask()), "1 3");
    }

    #[test]
    fn malformed_strings_are_refused_with_the_reason() {
        let err = |s: &str| Rle::parse(s, 4, 4).unwrap_err();
        assert_eq!(err("1 2 3"), RleError::OddCount(3));
        assert_eq!(err("1 2 x 1"), RleError::NotANumber { index: 3, token: "x".into() });
        assert_eq!(err("1 -2"), RleError::NotANumber { index: 2, token: "-2".into() });
        assert_eq!(err("1.5 2"), RleError::NotANumber { index: 1, token: "1.5".into() });
        assert_eq!(err("0 2"), RleError::ZeroStart { run: 1 });
        assert_eq!(err("1 0"), RleError::ZeroLength { run: 1 });
        assert_eq!(err("1 4 4 2"), RleError::Overlap { run: 2, start: 4, previous_end: 4 });
        assert_eq!(err("8 2 3 1"), RleError::Overlap { run: 2, start: 3, previous_end: 9 });
        assert!(matches!(err("15 3"), RleError::OutOfRange { run: 1, start: 15, len: 3, .. }));
        assert!(matches!(err("1 18446744073709551615"), RleError::OutOfRange { .. }));
        assert!(err("1 4 4 2").to_string().contains("overlaps"));
        assert!(Rle::parse("15 2", 4, 4).is_ok());
    }
}
