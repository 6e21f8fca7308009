//! The image size an encapsulated JPEG or JPEG 2000 codestream declares, checked against the
//! DICOM header before decoding. The decoders size their output from the codestream, and the
//! JPEG adapter then copies it into a buffer sized from Rows × Columns: a codestream larger
//! than the header says makes it panic, and a huge one makes the decoder allocate gigabytes.

/// The codestream families whose headers we read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Jpeg,
    Jpeg2000,
}

fn family(ts_uid: &str) -> Option<Family> {
    match ts_uid.trim_end_matches(['\0', ' ']) {
        // Baseline, extended, lossless (two), JPEG-LS lossless and near-lossless.
        "1.2.840.10008.1.2.4.50" | "1.2.840.10008.1.2.4.51" | "1.2.840.10008.1.2.4.57" | "1.2.840.10008.1.2.4.70"
        | "1.2.840.10008.1.2.4.80" | "1.2.840.10008.1.2.4.81" => Some(Family::Jpeg),
        // JPEG 2000 (lossless, lossy) and High-Throughput JPEG 2000.
        "1.2.840.10008.1.2.4.90" | "1.2.840.10008.1.2.4.91" | "1.2.840.10008.1.2.4.201" | "1.2.840.10008.1.2.4.202"
        | "1.2.840.10008.1.2.4.203" => Some(Family::Jpeg2000),
        _ => None,
    }
}

/// `Err` when the first fragment's codestream declares another size than `cols × rows` (or
/// declares none). Other transfer syntaxes pass unchecked.
pub fn check(ts_uid: &str, first_fragment: &[u8], cols: u32, rows: u32) -> Result<(), String> {
    let Some(f) = family(ts_uid) else { return Ok(()) };
    let (what, size) = match f {
        Family::Jpeg => ("JPEG", jpeg_size(first_fragment)),
        Family::Jpeg2000 => ("JPEG 2000", j2k_size(first_fragment)),
    };
    match size {
        None => Err(format!("the embedded {what} codestream has no readable frame header")),
        Some((w, h)) if (w, h) != (cols, rows) => {
            Err(format!("the embedded {what} image is {w}×{h} but the DICOM header says {cols}×{rows}"))
        }
        Some(_) => Ok(()),
    }
}

/// Width and height from a JPEG (or JPEG-LS) frame header.
fn jpeg_size(b: &[u8]) -> Option<(u32, u32)> {
    let be16 = |i: usize| b.get(i..i + 2).map(|s| u16::from_be_bytes([s[0], s[1]]) as usize);
    if b.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut pos = 2;
    loop {
        // Fill bytes (0xFF) may precede a marker.
        while b.get(pos)? == &0xFF && b.get(pos + 1)? == &0xFF {
            pos += 1;
        }
        if b.get(pos)? != &0xFF {
            return None;
        }
        let marker = *b.get(pos + 1)?;
        match marker {
            // Frame headers: SOF0–SOF15 except DHT (C4), JPG (C8), DAC (CC); SOF55 (JPEG-LS).
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                let h = be16(pos + 5)? as u32;
                let w = be16(pos + 7)? as u32;
                return Some((w, h));
            }
            0xF7 => return Some((be16(pos + 7)? as u32, be16(pos + 5)? as u32)),
            // Start of scan before any frame header, or end of image: none.
            0xDA | 0xD9 => return None,
            // Markers without a length.
            0x01 | 0xD0..=0xD7 => pos += 2,
            _ => pos += 2 + be16(pos + 2)?,
        }
    }
}

/// Width and height from a JPEG 2000 SIZ marker segment (raw codestream or JP2 file).
fn j2k_size(b: &[u8]) -> Option<(u32, u32)> {
    let be32 = |i: usize| b.get(i..i + 4).map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]));
    // SOC then SIZ open every codestream; in a JP2 file it sits inside the jp2c box.
    let start = b.windows(4).take(4096).position(|w| w == [0xFF, 0x4F, 0xFF, 0x51])?;
    let siz = start + 2;
    // Lsiz(2) Rsiz(2) Xsiz Ysiz XOsiz YOsiz (4 each).
    let (x, y, xo, yo) = (be32(siz + 6)?, be32(siz + 10)?, be32(siz + 14)?, be32(siz + 18)?);
    Some((x.checked_sub(xo)?, y.checked_sub(yo)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpeg_frame_headers_are_found_past_other_segments() {
        // SOI, APP0 (4 bytes of payload), SOF0 with height 300 and width 200.
        let jpeg = [
            &[0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x06, 1, 2, 3, 4][..],
            &[0xFF, 0xC0, 0x00, 0x0B, 8, 0x01, 0x2C, 0x00, 0xC8, 1, 1, 0x11, 0],
        ]
        .concat();
        assert_eq!(jpeg_size(&jpeg), Some((200, 300)));
        assert_eq!(check("1.2.840.10008.1.2.4.50", &jpeg, 200, 300), Ok(()));
        let err = check("1.2.840.10008.1.2.4.50", &jpeg, 1024, 1024).unwrap_err();
        assert!(err.contains("200×300") && err.contains("1024×1024"), "{err}");
        assert!(check("1.2.840.10008.1.2.4.50", b"not a jpeg", 1, 1).is_err());
        assert_eq!(check("1.2.840.10008.1.2.1", b"", 1, 1), Ok(()));
    }

    #[test]
    fn j2k_size_subtracts_the_image_offset() {
        let mut cs = vec![0xFF, 0x4F, 0xFF, 0x51, 0x00, 0x29, 0x00, 0x00];
        for v in [1955u32 + 5, 1841 + 7, 5, 7] {
            cs.extend(v.to_be_bytes());
        }
        assert_eq!(j2k_size(&cs), Some((1955, 1841)));
    }
}
