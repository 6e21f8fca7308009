//! Pairing things by image identifier: rows of two CheXmask files, or CheXmask rows and
//! the user's image files.
//!
//! Identifiers are matched exactly first; what is left is matched by [`name_key`], the
//! last path component without an image extension, so `JPCLN001` finds `JPCLN001.png`
//! and `files/p10/…/02aa804e.jpg` finds `/data/02aa804e.jpg`; then the same key ignoring
//! ASCII case. When a key fits several candidates, the one sharing most trailing folder
//! names wins; a tie leaves the item ambiguous rather than guessing.

use std::collections::HashMap;

/// Extensions stripped by [`name_key`]; others are kept so that dotted identifiers
/// ("1.2.840.113619.2.55") stay whole.
const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "dcm", "dicom", "dic", "tif", "tiff", "bmp", "gif"];

/// The last path component of `name` without an image extension.
pub fn name_key(name: &str) -> &str {
    let last = name.rsplit(['/', '\\']).next().unwrap_or(name);
    match last.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && IMAGE_EXTENSIONS.iter().any(|e| e.eq_ignore_ascii_case(ext)) => stem,
        _ => last,
    }
}

/// The result of [`match_names`]: indices into the left and right lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matching {
    /// (left, right) pairs, in left order.
    pub pairs: Vec<(usize, usize)>,
    /// Left items with no candidate.
    pub unmatched_left: Vec<usize>,
    /// Right items nobody took.
    pub unmatched_right: Vec<usize>,
    /// Left items with several equally good candidates, and those candidates.
    pub ambiguous: Vec<(usize, Vec<usize>)>,
}

fn components(name: &str) -> Vec<&str> {
    name.split(['/', '\\']).filter(|c| !c.is_empty()).collect()
}

/// Trailing path components that agree, the last one compared by key.
fn shared_suffix(a: &str, b: &str) -> usize {
    let (ca, cb) = (components(a), components(b));
    let mut n = 0;
    for (x, y) in ca.iter().rev().zip(cb.iter().rev()) {
        let same = if n == 0 { name_key(x).eq_ignore_ascii_case(name_key(y)) } else { x == y };
        if !same {
            break;
        }
        n += 1;
    }
    n
}

/// Pairs `left` with `right` names (see the module docs); every item is used at most once.
pub fn match_names<L: AsRef<str>, R: AsRef<str>>(left: &[L], right: &[R]) -> Matching {
    let mut taken = vec![false; right.len()];
    let mut pair_of: Vec<Option<usize>> = vec![None; left.len()];
    let mut ambiguous: HashMap<usize, Vec<usize>> = HashMap::new();

    type KeyFn = fn(&str) -> String;
    let stages: [KeyFn; 3] = [|s| s.to_string(), |s| name_key(s).to_string(), |s| name_key(s).to_ascii_lowercase()];
    for key in stages {
        let mut index: HashMap<String, Vec<usize>> = HashMap::new();
        for (j, r) in right.iter().enumerate().filter(|(j, _)| !taken[*j]) {
            index.entry(key(r.as_ref())).or_default().push(j);
        }
        for (i, l) in left.iter().enumerate() {
            if pair_of[i].is_some() {
                continue;
            }
            let candidates: Vec<usize> = index
                .get(&key(l.as_ref()))
                .map(|c| c.iter().copied().filter(|&j| !taken[j]).collect())
                .unwrap_or_default();
            let chosen = match candidates.len() {
                0 => continue,
                1 => Some(candidates[0]),
                _ => {
                    let scores: Vec<usize> =
                        candidates.iter().map(|&j| shared_suffix(l.as_ref(), right[j].as_ref())).collect();
                    let best = *scores.iter().max().expect("several candidates");
                    let winners: Vec<usize> =
                        candidates.iter().zip(&scores).filter(|(_, s)| **s == best).map(|(&j, _)| j).collect();
                    if winners.len() == 1 {
                        Some(winners[0])
                    } else {
                        ambiguous.insert(i, winners);
                        None
                    }
                }
            };
            if let Some(j) = chosen {
                taken[j] = true;
                pair_of[i] = Some(j);
                ambiguous.remove(&i);
            }
        }
    }

    let mut m = Matching::default();
    for (i, p) in pair_of.iter().enumerate() {
        match (p, ambiguous.remove(&i)) {
            (Some(j), _) => m.pairs.push((i, *j)),
            (None, Some(c)) => m.ambiguous.push((i, c)),
            (None, None) => m.unmatched_left.push(i),
        }
    }
    m.unmatched_right = (0..right.len()).filter(|&j| !taken[j]).collect();
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(name_key("JPCLN001.png"), "JPCLN001");
        assert_eq!(name_key("files/p10/s5/02aa.JPG"), "02aa");
        assert_eq!(name_key("C:\\x\\y.dcm"), "y");
        assert_eq!(name_key("1.2.840.113619"), "1.2.840.113619");
        assert_eq!(name_key("1.2.840.113619.dcm"), "1.2.840.113619");
        assert_eq!(name_key(".png"), ".png");
    }

    #[test]
    fn exact_then_stem_then_case() {
        let rows = ["JPCLN001", "b.png", "c", "files/p1/d.jpg", "missing", "E"];
        let images = ["/x/JPCLN001.png", "/y/c.dcm", "/z/b.png", "/d.jpg", "/w/e.PNG", "/extra.png"];
        let m = match_names(&rows, &images);
        assert_eq!(m.pairs, vec![(0, 0), (1, 2), (2, 1), (3, 3), (5, 4)]);
        assert_eq!(m.unmatched_left, vec![4]);
        assert_eq!(m.unmatched_right, vec![5]);
        assert!(m.ambiguous.is_empty());
    }

    #[test]
    fn same_stem_in_two_folders() {
        let images = ["/data/a/p1/img.png", "/data/b/p2/img.png"];
        let m = match_names(&["p2/img.jpg", "img"], &images);
        // The folder decides the first; the second is left with a single candidate.
        assert_eq!(m.pairs, vec![(0, 1), (1, 0)]);
        let m = match_names(&["img"], &images);
        assert_eq!(m.ambiguous, vec![(0, vec![0, 1])]);
        assert!(m.pairs.is_empty() && m.unmatched_left.is_empty());
        assert_eq!(m.unmatched_right, vec![0, 1]);
    }
}
