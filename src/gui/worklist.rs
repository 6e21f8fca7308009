//! The list of images the reader is going through: a folder's contents or the
//! files named on the command line, with the current position and load failures.

use egui::{Color32, RichText};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::review::annotation::{Annotation, Status};

#[derive(Default)]
pub struct Worklist {
    pub files: Vec<PathBuf>,
    pub current: Option<usize>,
    /// Load failures by index, shown in red so the reader sees which files are broken.
    pub errors: HashMap<usize, String>,
    /// Review status and image score of the files that have an annotation, by path.
    pub reviews: HashMap<PathBuf, ReviewInfo>,
}

/// What the list shows about an image's review.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReviewInfo {
    pub status: Status,
    /// Mean node std, pixels at 1024 (so images of any size compare).
    pub score_1024: f32,
    /// Flagged as unusually uncertain: the score is above the threshold that the calibration of
    /// the model that made the prediction carries (1.2 × its highest score on validation
    /// images; none without a calibration). The drawn non-chest images of `validate` score
    /// about twice the highest val image; an occluding square doubles the std of the nodes it
    /// covers, but the image score only where much is covered, so the flag is a screen, not a
    /// proof (assets/README.md).
    pub ood: bool,
}

impl Worklist {
    pub fn new(files: Vec<PathBuf>) -> Self {
        let reviews = files.iter().filter_map(|f| Some((f.clone(), read_info(f)?))).collect();
        Worklist { current: if files.is_empty() { None } else { Some(0) }, files, errors: HashMap::new(), reviews }
    }

    /// Least certain first (highest score), images without a prediction last, then by name.
    /// The current image stays current.
    pub fn sort_by_uncertainty(&mut self) {
        let current = self.current_path().map(Path::to_path_buf);
        let score = |f: &PathBuf| self.reviews.get(f).map(|r| r.score_1024).unwrap_or(f32::NEG_INFINITY);
        let mut order: Vec<usize> = (0..self.files.len()).collect();
        order.sort_by(|&a, &b| {
            score(&self.files[b]).total_cmp(&score(&self.files[a])).then_with(|| self.files[a].cmp(&self.files[b]))
        });
        let errors = std::mem::take(&mut self.errors);
        self.files = order.iter().map(|&i| self.files[i].clone()).collect();
        self.errors = order.iter().enumerate().filter_map(|(new, old)| Some((new, errors.get(old)?.clone()))).collect();
        self.current = current.and_then(|c| self.files.iter().position(|f| *f == c));
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    pub fn current_path(&self) -> Option<&Path> {
        self.current.map(|i| self.files[i].as_path())
    }

    /// Index `delta` steps away from the current one, clamped to the list.
    pub fn step(&self, delta: isize) -> Option<usize> {
        let cur = self.current? as isize;
        let next = (cur + delta).clamp(0, self.files.len() as isize - 1) as usize;
        (next as isize != cur).then_some(next)
    }

    /// Draw the list; returns the index the reader clicked.
    pub fn ui(&mut self, ui: &mut egui::Ui) -> Option<usize> {
        let mut clicked = None;
        ui.heading(format!("Images ({})", self.files.len()));
        let done = self.reviews.values().filter(|r| r.status != Status::Unreviewed).count();
        ui.label(format!("{done} reviewed"));
        if ui.button("Least certain first").on_hover_text("Sort by image score (mean node std), highest first").clicked() {
            self.sort_by_uncertainty();
        }
        ui.separator();
        egui::ScrollArea::vertical().auto_shrink([false, false]).show(ui, |ui| {
            for (i, path) in self.files.iter().enumerate() {
                let mut name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                if let Some(r) = self.reviews.get(path) {
                    let mark = match r.status {
                        Status::Unreviewed => "[ ]",
                        Status::Accepted => "[A]",
                        Status::Corrected => "[C]",
                        Status::Rejected => "[R]",
                    };
                    name = format!("{mark} {name}  {:.1}{}", r.score_1024, if r.ood { " OOD" } else { "" });
                }
                let mut text = RichText::new(name);
                if self.errors.contains_key(&i) {
                    text = text.color(Color32::from_rgb(230, 90, 80));
                }
                let r = ui.selectable_label(self.current == Some(i), text);
                let r = match self.errors.get(&i) {
                    Some(e) => r.on_hover_text(e),
                    None => r.on_hover_text(path.display().to_string()),
                };
                if r.clicked() {
                    clicked = Some(i);
                }
                if self.current == Some(i) && r.gained_focus() {
                    r.scroll_to_me(None);
                }
            }
        });
        clicked
    }
}

/// The review info of `image` from its annotation file beside it, if there is a valid one.
pub fn read_info(image: &Path) -> Option<ReviewInfo> {
    let (_, a) = crate::review::store::find_readable(image)?;
    Some(info_of(&a))
}

pub fn info_of(a: &Annotation) -> ReviewInfo {
    let side = a.image.width.max(a.image.height).max(1) as f32;
    let score_1024 = a.score * 1024.0 / side;
    ReviewInfo { status: a.status, score_1024, ood: a.calibrated.as_ref().is_some_and(|c| c.flags(score_1024)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stepping_stops_at_the_ends() {
        let mut w = Worklist::new(vec!["a.png".into(), "b.png".into(), "c.png".into()]);
        assert_eq!(w.step(-1), None);
        assert_eq!(w.step(1), Some(1));
        w.current = Some(2);
        assert_eq!(w.step(1), None);
        assert_eq!(w.step(-5), Some(0));
        assert_eq!(Worklist::new(vec![]).step(1), None);
    }

    #[test]
    fn least_certain_first_keeps_the_current_image() {
        let mut w = Worklist::new(vec!["a.png".into(), "b.png".into(), "c.png".into(), "d.png".into()]);
        w.current = Some(0);
        w.errors.insert(3, "broken".into());
        let info = |s| ReviewInfo { status: Status::Unreviewed, score_1024: s, ood: s > 10.0 };
        w.reviews.insert("a.png".into(), info(2.0));
        w.reviews.insert("b.png".into(), info(11.0));
        w.reviews.insert("c.png".into(), info(5.0));
        w.sort_by_uncertainty();
        let names: Vec<_> = w.files.iter().map(|f| f.to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["b.png", "c.png", "a.png", "d.png"]);
        assert_eq!(w.current, Some(2));
        assert_eq!(w.errors.get(&3).map(String::as_str), Some("broken"));
        assert!(w.reviews[&PathBuf::from("b.png")].ood && !w.reviews[&PathBuf::from("a.png")].ood);
    }

    #[test]
    fn an_image_is_flagged_by_the_threshold_its_model_carried() {
        use crate::model::calibration::Calibrated;
        let mut a = crate::review::annotation::tests::example_annotation();
        let calibrated = |t| Calibrated { expected_error: vec![1.0; 120], scale_top_px: 40.0, reliability: Vec::new(), px_per_1024: 1.0, ood_score_1024: t };
        a.score = 8.0;
        // No calibration, or one written before thresholds existed: never flagged.
        assert!(!info_of(&a).ood);
        a.calibrated = Some(calibrated(None));
        assert!(!info_of(&a).ood);
        // The threshold is in px at 1024: this 1024-px image scores 8 there.
        a.calibrated = Some(calibrated(Some(6.7)));
        assert!(info_of(&a).ood);
        a.calibrated = Some(calibrated(Some(9.0)));
        assert!(!info_of(&a).ood);
    }
}
