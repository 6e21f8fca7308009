//! The 120-node landmark graph shared by the model, the formats and the GUI
//! (METHOD.md §1): right lung 0–43, left lung 44–93, heart 94–119, each a closed ring.

use serde::{Deserialize, Serialize};
use std::ops::Range;

pub const NUM_NODES: usize = 120;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Organ {
    RightLung,
    LeftLung,
    Heart,
}

impl Organ {
    pub const ALL: [Organ; 3] = [Organ::RightLung, Organ::LeftLung, Organ::Heart];

    /// Node indices of this organ in the 120-node order.
    pub fn nodes(self) -> Range<usize> {
        match self {
            Organ::RightLung => 0..44,
            Organ::LeftLung => 44..94,
            Organ::Heart => 94..120,
        }
    }

    /// Position in [`Organ::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn len(self) -> usize {
        self.nodes().len()
    }

    pub fn name(self) -> &'static str {
        match self {
            Organ::RightLung => "Right Lung",
            Organ::LeftLung => "Left Lung",
            Organ::Heart => "Heart",
        }
    }

    /// The organ a node belongs to and its index within the organ.
    pub fn of_node(node: usize) -> Option<(Organ, usize)> {
        Organ::ALL
            .into_iter()
            .find(|o| o.nodes().contains(&node))
            .map(|o| (o, node - o.nodes().start))
    }
}

/// A point in image pixels: x to the right, y down.
pub type Point = [f32; 2];

/// Mean landmark shape of the JSRT training split in 1024×1024 pixels
/// (`assets/template_landmarks.csv`, made by `tools/mean_shape.py`).
pub fn template() -> [Point; NUM_NODES] {
    static CSV: &str = include_str!("../assets/template_landmarks.csv");
    let mut out = [[0.0; 2]; NUM_NODES];
    for (i, line) in CSV.lines().skip(1).enumerate() {
        let mut f = line.split(',').skip(1).map(|t| t.parse::<f32>().expect("template is well formed"));
        out[i] = [f.next().expect("x"), f.next().expect("y")];
    }
    out
}

/// The closed contour of `organ` as a list of points taken from `nodes`.
pub fn contour(nodes: &[Point], organ: Organ) -> &[Point] {
    &nodes[organ.nodes()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_has_organs_where_expected() {
        let t = template();
        let cx = |o: Organ| contour(&t, o).iter().map(|p| p[0]).sum::<f32>() / o.len() as f32;
        // Patient's right lung is on the image's left.
        assert!(cx(Organ::RightLung) < 400.0 && cx(Organ::LeftLung) > 600.0);
        assert!(cx(Organ::Heart) > cx(Organ::RightLung) && cx(Organ::Heart) < cx(Organ::LeftLung));
        assert_eq!(Organ::of_node(94), Some((Organ::Heart, 0)));
        assert_eq!(Organ::of_node(43), Some((Organ::RightLung, 43)));
        assert_eq!(Organ::of_node(120), None);
    }
}
