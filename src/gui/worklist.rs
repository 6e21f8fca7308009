//! The list of images the reader is going through: a folder's contents or the
//! files named on the command line, with the current position and load failures.

use egui::{Color32, RichText};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Default)]
pub struct Worklist {
    pub files: Vec<PathBuf>,
    pub current: Option<usize>,
    /// Load failures by index, shown in red so the reader sees which files are broken.
    pub errors: HashMap<usize, String>,
}

impl Worklist {
    pub fn new(files: Vec<PathBuf>) -> Self {
        Worklist { current: if files.is_empty() { None } else { Some(0) }, files, errors: HashMap::new() }
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
    pub fn ui(&self, ui: &mut egui::Ui) -> Option<usize> {
        let mut clicked = None;
        ui.heading(format!("Images ({})", self.files.len()));
        ui.separator();
        egui::ScrollArea::vertical().auto_shrink([false, false]).show(ui, |ui| {
            for (i, path) in self.files.iter().enumerate() {
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
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
}
