//! Editing landmarks, independent of the GUI: selection, drags (one undo step each),
//! resets to the prediction, undo and redo.

use crate::landmarks::{NUM_NODES, Organ, Point};

#[derive(Debug, Clone)]
pub struct EditState {
    pub predicted: [Point; NUM_NODES],
    pub positions: [Point; NUM_NODES],
    pub selected: [bool; NUM_NODES],
    undo: Vec<[Point; NUM_NODES]>,
    redo: Vec<[Point; NUM_NODES]>,
    /// Positions when the current drag began (None when not dragging).
    drag_start: Option<[Point; NUM_NODES]>,
    /// Changed since the last save.
    pub dirty: bool,
}

impl EditState {
    pub fn new(predicted: [Point; NUM_NODES], positions: [Point; NUM_NODES]) -> Self {
        EditState {
            predicted,
            positions,
            selected: [false; NUM_NODES],
            undo: Vec::new(),
            redo: Vec::new(),
            drag_start: None,
            dirty: false,
        }
    }

    pub fn is_edited(&self, node: usize) -> bool {
        self.positions[node] != self.predicted[node]
    }

    pub fn edited(&self) -> [bool; NUM_NODES] {
        std::array::from_fn(|i| self.is_edited(i))
    }

    pub fn any_edited(&self) -> bool {
        (0..NUM_NODES).any(|i| self.is_edited(i))
    }

    /// Click selection: `add` toggles `node`, otherwise it becomes the only one.
    pub fn select(&mut self, node: usize, add: bool) {
        if add {
            self.selected[node] = !self.selected[node];
        } else {
            self.selected = [false; NUM_NODES];
            self.selected[node] = true;
        }
    }

    pub fn clear_selection(&mut self) {
        self.selected = [false; NUM_NODES];
    }

    /// Start dragging from `node`: it joins the selection (replacing it unless it was
    /// already selected or `add` is held), and the whole selection moves.
    pub fn begin_drag(&mut self, node: usize, add: bool) {
        if !self.selected[node] {
            self.select(node, add);
        }
        self.drag_start = Some(self.positions);
    }

    pub fn drag_by(&mut self, delta: [f32; 2]) {
        if self.drag_start.is_none() {
            return;
        }
        for i in 0..NUM_NODES {
            if self.selected[i] {
                self.positions[i][0] += delta[0];
                self.positions[i][1] += delta[1];
            }
        }
    }

    /// Keep every node within `limit` px of the image origin on both axes (a node dragged
    /// far past the edge would otherwise be saved where no measurement can follow it).
    pub fn clamp_to(&mut self, limit: f32) {
        for p in self.positions.iter_mut() {
            p[0] = p[0].clamp(-limit, limit);
            p[1] = p[1].clamp(-limit, limit);
        }
    }

    pub fn end_drag(&mut self) {
        if let Some(start) = self.drag_start.take() {
            if start != self.positions {
                self.push_undo(start);
            }
        }
    }

    pub fn is_dragging(&self) -> bool {
        self.drag_start.is_some()
    }

    fn push_undo(&mut self, before: [Point; NUM_NODES]) {
        self.undo.push(before);
        self.redo.clear();
        self.dirty = true;
    }

    /// Move `nodes` by `delta` as one undo step (keyboard nudges, scripted edits).
    pub fn move_nodes(&mut self, nodes: &[usize], delta: [f32; 2]) {
        let before = self.positions;
        for &i in nodes {
            self.positions[i] = [self.positions[i][0] + delta[0], self.positions[i][1] + delta[1]];
        }
        if before != self.positions {
            self.push_undo(before);
        }
    }

    pub fn reset_nodes(&mut self, nodes: &[usize]) {
        let before = self.positions;
        for &i in nodes {
            self.positions[i] = self.predicted[i];
        }
        if before != self.positions {
            self.push_undo(before);
        }
    }

    pub fn reset_organ(&mut self, organ: Organ) {
        self.reset_nodes(&organ.nodes().collect::<Vec<_>>());
    }

    pub fn selected_nodes(&self) -> Vec<usize> {
        (0..NUM_NODES).filter(|&i| self.selected[i]).collect()
    }

    pub fn undo(&mut self) -> bool {
        self.end_drag();
        match self.undo.pop() {
            Some(prev) => {
                self.redo.push(self.positions);
                self.positions = prev;
                self.dirty = true;
                true
            }
            None => false,
        }
    }

    pub fn redo(&mut self) -> bool {
        match self.redo.pop() {
            Some(next) => {
                self.undo.push(self.positions);
                self.positions = next;
                self.dirty = true;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::landmarks::template;

    #[test]
    fn a_drag_moves_the_selection_and_is_one_undo_step() {
        let mut e = EditState::new(template(), template());
        e.select(3, false);
        e.begin_drag(5, true);
        e.drag_by([2.0, 0.0]);
        e.drag_by([1.0, -1.0]);
        e.end_drag();
        assert_eq!(e.positions[3], [template()[3][0] + 3.0, template()[3][1] - 1.0]);
        assert_eq!(e.positions[5], [template()[5][0] + 3.0, template()[5][1] - 1.0]);
        assert_eq!(e.edited().iter().filter(|&&x| x).count(), 2);
        assert!(e.dirty);
        assert!(e.undo());
        assert_eq!(e.positions, template());
        assert!(!e.undo());
        assert!(e.redo());
        assert!(e.is_edited(3) && e.is_edited(5));
    }

    #[test]
    fn dragging_an_unselected_node_replaces_the_selection() {
        let mut e = EditState::new(template(), template());
        e.select(1, false);
        e.begin_drag(7, false);
        e.drag_by([1.0, 1.0]);
        e.end_drag();
        assert!(!e.is_edited(1) && e.is_edited(7));
    }

    #[test]
    fn resets_and_redo_invalidation() {
        let mut e = EditState::new(template(), template());
        e.move_nodes(&[0, 50, 100], [4.0, 4.0]);
        e.reset_organ(Organ::LeftLung);
        assert!(e.is_edited(0) && !e.is_edited(50) && e.is_edited(100));
        e.reset_nodes(&[100]);
        assert!(!e.is_edited(100));
        e.undo();
        assert!(e.is_edited(100));
        e.move_nodes(&[1], [1.0, 0.0]);
        assert!(!e.redo(), "a new edit clears the redo stack");
    }

    #[test]
    fn a_drag_that_returns_home_leaves_no_undo_step() {
        let mut e = EditState::new(template(), template());
        e.begin_drag(2, false);
        e.drag_by([3.0, 0.0]);
        e.drag_by([-3.0, 0.0]);
        e.end_drag();
        assert!(!e.undo());
        assert!(!e.dirty);
    }
}
