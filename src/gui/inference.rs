//! The model runs on its own thread so the window never freezes: the app sends an image,
//! the worker answers with the prediction when it is done. The model is loaded once, on the
//! first request, from the user's weights or the shipped ones.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::time::Instant;

use crate::model::{DeviceChoice, HybridGNet, Prediction, Sampling, predict_xray, select_device, shipped};
use crate::xray::XrayImage;

/// Latent samples per image, as in the paper.
pub const SAMPLES: usize = 50;
/// Fixed seed: the same image always gets the same uncertainty.
pub const SEED: u64 = 0;

/// Which model the predictions come from, for the annotation file.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    pub weights: PathBuf,
    pub weights_sha256: String,
    pub description: String,
}

pub struct Answer {
    pub image_id: u64,
    pub result: Result<(Prediction, ModelInfo), String>,
    pub seconds: f64,
}

struct Request {
    image_id: u64,
    image: Arc<XrayImage>,
}

/// Handle to the worker thread.
pub struct Inference {
    tx: Sender<Request>,
    rx: Receiver<Answer>,
    /// Image ids sent and not yet answered.
    pending: Vec<u64>,
}

impl Inference {
    /// Start the worker; `weights` None means the shipped model. `repaint` wakes the UI.
    pub fn start(weights: Option<PathBuf>, repaint: impl Fn() + Send + 'static) -> Self {
        let (tx, req_rx) = channel::<Request>();
        let (ans_tx, rx) = channel();
        std::thread::Builder::new()
            .name("inference".into())
            .spawn(move || worker(weights, req_rx, ans_tx, repaint))
            .expect("spawning the inference thread");
        Inference { tx, rx, pending: Vec::new() }
    }

    pub fn request(&mut self, image_id: u64, image: Arc<XrayImage>) {
        if self.tx.send(Request { image_id, image }).is_ok() {
            self.pending.push(image_id);
        }
    }

    pub fn is_running(&self, image_id: u64) -> bool {
        self.pending.contains(&image_id)
    }

    /// Answers that arrived since the last call.
    pub fn poll(&mut self) -> Vec<Answer> {
        let mut out = Vec::new();
        loop {
            match self.rx.try_recv() {
                Ok(a) => {
                    self.pending.retain(|&id| id != a.image_id);
                    out.push(a);
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        out
    }
}

fn worker(weights: Option<PathBuf>, rx: Receiver<Request>, tx: Sender<Answer>, repaint: impl Fn()) {
    let mut model: Option<Result<(HybridGNet, ModelInfo), String>> = None;
    while let Ok(mut req) = rx.recv() {
        // Only the newest request matters when the reader pages quickly through a folder.
        while let Ok(newer) = rx.try_recv() {
            let _ = tx.send(Answer { image_id: req.image_id, result: Err("skipped".into()), seconds: 0.0 });
            req = newer;
        }
        let start = Instant::now();
        let loaded = model.get_or_insert_with(|| load(weights.as_deref()));
        let result = match loaded {
            Ok((m, info)) => {
                let p = predict_xray(m, &req.image, Sampling::Random { samples: SAMPLES, seed: SEED });
                Ok((p, info.clone()))
            }
            Err(e) => Err(e.clone()),
        };
        let answer = Answer { image_id: req.image_id, result, seconds: start.elapsed().as_secs_f64() };
        if tx.send(answer).is_err() {
            return;
        }
        repaint();
    }
}

fn load(weights: Option<&std::path::Path>) -> Result<(HybridGNet, ModelInfo), String> {
    let path = shipped::resolve(weights)?;
    let device = select_device(DeviceChoice::Auto).map_err(|e| e.to_string())?;
    let model = HybridGNet::load(&path, &device.device).map_err(|e| e.to_string())?;
    let description = format!(
        "{} · {} · {}",
        path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        model.describe(),
        device.description
    );
    let weights_sha256 = crate::review::annotation::file_sha256(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((model, ModelInfo { weights: path, weights_sha256, description }))
}
