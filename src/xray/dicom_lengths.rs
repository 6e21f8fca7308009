//! A pre-pass over a DICOM file's element headers, before the parser sees it: the parser
//! allocates a buffer of whatever length an element claims, so a forged length of
//! 0xFFFFFFFE makes it zero 4 GiB (seconds of work, or an abort on a small machine) before
//! finding the file too short. Here every defined length must fit in what is left of the
//! file; nested sequences and items are walked too.

/// How the data set after the file meta group is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    ExplicitLittle,
    ImplicitLittle,
    /// Big endian or deflated: not walked (the parser's own checks apply).
    Other,
}

const UNDEFINED: u32 = u32::MAX;
/// Value representations whose explicit-VR header has a 4-byte length.
pub const LONG_VRS: [&[u8; 2]; 13] = [b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"];

/// Little-endian u16 at byte `i`, if the bytes are there.
pub fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    b.get(i..i + 2).map(|s| u16::from_le_bytes([s[0], s[1]]))
}

/// Little-endian u32 at byte `i`, if the bytes are there.
pub fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    b.get(i..i + 4).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// The encoding a transfer syntax UID names.
pub fn encoding_of(ts_uid: &str) -> Encoding {
    match ts_uid.trim_end_matches(['\0', ' ']) {
        "1.2.840.10008.1.2" => Encoding::ImplicitLittle,
        // Explicit VR big endian (retired) and deflated explicit VR little endian.
        "1.2.840.10008.1.2.2" | "1.2.840.10008.1.2.1.99" => Encoding::Other,
        _ => Encoding::ExplicitLittle,
    }
}

/// Check the file meta group (explicit VR little endian, from `start`) and then the data set
/// in the encoding its transfer syntax names. `Err` says which element claims too much.
pub fn check_file(bytes: &[u8], start: usize) -> Result<(), String> {
    let mut pos = start;
    let mut ts = String::new();
    while u16_at(bytes, pos) == Some(0x0002) {
        let (len, header, _) = header(bytes, pos, true).ok_or_else(|| cut_header(pos))?;
        let end = fits(bytes, pos, header, len)?;
        if u16_at(bytes, pos + 2) == Some(0x0010) {
            ts = String::from_utf8_lossy(&bytes[pos + header..end]).into_owned();
        }
        pos = end;
    }
    let explicit = match encoding_of(&ts) {
        Encoding::Other => return Ok(()),
        e => e == Encoding::ExplicitLittle,
    };
    check_dataset(bytes, pos, explicit)?;
    // The parser ends the meta group where (0002,0000) says, which a damaged file may put
    // elsewhere than where the group's elements end: check the data set from there too.
    let by_length = (u16_at(bytes, start) == Some(0x0002) && u16_at(bytes, start + 2) == Some(0x0000))
        .then(|| u32_at(bytes, start + 8))
        .flatten()
        .map(|len| start + 12 + len as usize);
    match by_length {
        Some(p) if p != pos && p < bytes.len() => check_dataset(bytes, p, explicit),
        _ => Ok(()),
    }
}

/// Deepest nesting of sequences and items accepted (each level of a real sequence is two:
/// the sequence and its item; real files stay under ten). The parser recurses per level,
/// so a file nesting thousands deep would overflow its stack.
pub const MAX_DEPTH: usize = 64;

/// Check a data set from `pos` to the end of `bytes`.
pub fn check_dataset(bytes: &[u8], mut pos: usize, explicit: bool) -> Result<(), String> {
    // Inside encapsulated pixel data, items are compressed fragments, not elements.
    let mut in_fragments = false;
    // Open sequences and items: where each ends (None: at its delimiter).
    let mut open: Vec<Option<usize>> = Vec::new();
    while pos < bytes.len() {
        while let Some(Some(end)) = open.last() {
            if pos < *end {
                break;
            }
            open.pop();
        }
        if open.len() > MAX_DEPTH {
            return Err(format!("sequences nest more than {MAX_DEPTH} levels deep at byte {pos}: corrupt or hostile"));
        }
        let group = u16_at(bytes, pos).ok_or_else(|| cut_header(pos))?;
        let elem = u16_at(bytes, pos + 2).ok_or_else(|| cut_header(pos))?;
        if group == 0xFFFE {
            let len = u32_at(bytes, pos + 4).ok_or_else(|| cut_header(pos))?;
            match elem {
                // An item: step over it (a fragment), or into it (nested elements).
                0xE000 if in_fragments => pos = fits(bytes, pos, 8, len)?,
                0xE000 => {
                    open.push(if len == UNDEFINED { None } else { Some(fits(bytes, pos, 8, len)?) });
                    pos += 8;
                }
                // Item or sequence delimiter.
                _ => {
                    if elem == 0xE0DD && in_fragments {
                        in_fragments = false;
                    } else if matches!(elem, 0xE00D | 0xE0DD) && open.last() == Some(&None) {
                        open.pop();
                    }
                    pos += 8;
                }
            }
            continue;
        }
        let (len, header, vr) = header(bytes, pos, explicit).ok_or_else(|| cut_header(pos))?;
        let is_pixel_data = (group, elem) == (0x7FE0, 0x0010);
        if len == UNDEFINED {
            // A sequence, or encapsulated pixel data: what follows is items.
            if is_pixel_data {
                in_fragments = true;
            } else {
                open.push(None);
            }
            pos += header;
            continue;
        }
        let end = fits(bytes, pos, header, len)?;
        // A defined-length sequence: walk its items too (implicit VR says SQ only by content).
        let nested = vr == Some(*b"SQ") || (!explicit && len >= 8 && u32_at(bytes, pos + header) == Some(0xE000_FFFE));
        if nested {
            open.push(Some(end));
            pos += header;
        } else {
            pos = end;
        }
    }
    Ok(())
}

/// (value length, header length, VR) of the element at `pos`.
fn header(b: &[u8], pos: usize, explicit: bool) -> Option<(u32, usize, Option<[u8; 2]>)> {
    if !explicit {
        return Some((u32_at(b, pos + 4)?, 8, None));
    }
    let vr: [u8; 2] = b.get(pos + 4..pos + 6)?.try_into().ok()?;
    if LONG_VRS.iter().any(|v| **v == vr) {
        Some((u32_at(b, pos + 8)?, 12, Some(vr)))
    } else {
        Some((u16_at(b, pos + 6)? as u32, 8, Some(vr)))
    }
}

/// End of the element at `pos` when its value fits in the file.
fn fits(b: &[u8], pos: usize, header: usize, len: u32) -> Result<usize, String> {
    let left = b.len().saturating_sub(pos + header);
    if len as usize > left {
        let (g, e) = (u16_at(b, pos).unwrap_or(0), u16_at(b, pos + 2).unwrap_or(0));
        return Err(format!(
            "element ({g:04X},{e:04X}) at byte {pos} claims {len} bytes but only {left} follow: the file is truncated or corrupt"
        ));
    }
    Ok(pos + header + len as usize)
}

fn cut_header(pos: usize) -> String {
    format!("the file ends inside an element header at byte {pos}: truncated")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn explicit_us(group: u16, elem: u16, v: u16) -> Vec<u8> {
        [&group.to_le_bytes()[..], &elem.to_le_bytes(), b"US", &2u16.to_le_bytes(), &v.to_le_bytes()].concat()
    }

    #[test]
    fn consistent_lengths_pass_and_a_forged_one_is_named() {
        let ok = [explicit_us(0x0028, 0x0010, 4), explicit_us(0x0028, 0x0011, 4)].concat();
        assert_eq!(check_dataset(&ok, 0, true), Ok(()));
        // (7FE0,0010) OW claiming 0xFFFFFFF0 bytes over 4.
        let forged = [&ok[..], &[0xE0, 0x7F, 0x10, 0x00], b"OW", &[0, 0], &0xFFFF_FFF0u32.to_le_bytes(), &[1, 2, 3, 4]].concat();
        let err = check_dataset(&forged, 0, true).unwrap_err();
        assert!(err.contains("(7FE0,0010)") && err.contains("4294967280") && err.contains("only 4"), "{err}");
    }

    #[test]
    fn nested_items_are_walked_and_fragments_skipped() {
        // Implicit VR: a defined-length sequence whose item holds an element claiming too much.
        let inner = [&[0x08, 0x00, 0x50, 0x00][..], &0x7FFF_FFFFu32.to_le_bytes()].concat();
        let item = [&[0xFE, 0xFF, 0x00, 0xE0][..], &(inner.len() as u32).to_le_bytes(), &inner].concat();
        let seq = [&[0x08, 0x00, 0x15, 0x11][..], &(item.len() as u32).to_le_bytes(), &item].concat();
        assert!(check_dataset(&seq, 0, false).unwrap_err().contains("(0008,0050)"));
        // Encapsulated pixel data: fragment bytes that look like a huge element are skipped.
        let frag = [0x08u8, 0x00, 0x50, 0x00, 0xFF, 0xFF, 0xFF, 0x7F];
        let pixels = [
            &[0xE0, 0x7F, 0x10, 0x00][..],
            b"OB",
            &[0, 0],
            &UNDEFINED.to_le_bytes(),
            &[0xFE, 0xFF, 0x00, 0xE0],
            &0u32.to_le_bytes(),
            &[0xFE, 0xFF, 0x00, 0xE0],
            &(frag.len() as u32).to_le_bytes(),
            &frag,
            &[0xFE, 0xFF, 0xDD, 0xE0],
            &0u32.to_le_bytes(),
        ]
        .concat();
        assert_eq!(check_dataset(&pixels, 0, true), Ok(()));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let level = [&[0x08, 0x00, 0x15, 0x11][..], b"SQ", &[0, 0], &UNDEFINED.to_le_bytes(), &[0xFE, 0xFF, 0x00, 0xE0], &UNDEFINED.to_le_bytes()].concat();
        let shallow = level.repeat(5);
        assert_eq!(check_dataset(&shallow, 0, true), Ok(()));
        let deep = level.repeat(1000);
        assert!(check_dataset(&deep, 0, true).unwrap_err().contains("nest more than"));
        // Closed again after each level: as deep as it is long, never deeper than 2.
        let close = [&[0xFE, 0xFF, 0x0D, 0xE0][..], &[0; 4], &[0xFE, 0xFF, 0xDD, 0xE0], &[0; 4]].concat();
        let flat = [&level[..], &close].concat().repeat(1000);
        assert_eq!(check_dataset(&flat, 0, true), Ok(()));
    }

    #[test]
    fn transfer_syntaxes_pick_the_walk() {
        assert_eq!(encoding_of("1.2.840.10008.1.2\0"), Encoding::ImplicitLittle);
        assert_eq!(encoding_of("1.2.840.10008.1.2.1"), Encoding::ExplicitLittle);
        assert_eq!(encoding_of("1.2.840.10008.1.2.4.50"), Encoding::ExplicitLittle);
        assert_eq!(encoding_of("1.2.840.10008.1.2.2"), Encoding::Other);
    }
}
