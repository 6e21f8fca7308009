//! HybridGNet landmark segmentation with CheXmask-U uncertainty (METHOD.md §2–4).
//!
//! Stages, one file each: [`preprocess`] (pad and resize), [`encoder`] (image → μ, log σ²,
//! conv5, conv6), [`decoder`] with [`chebconv`], [`norm`], [`lookup`] and [`graph`], then
//! [`uncertainty`] (N latent samples decoded as one batch → per-node mean and spread).
//! [`weights`] reads and writes weight files, [`backend`] picks the device at run time.
//!
//! Tensors carry their backend in their `Device` (burn ≥ 0.22), so nothing here is generic
//! over a backend type: the same model runs on flex (CPU) or wgpu, chosen when it is loaded.
//!
//! Use [`HybridGNet::load`] then [`uncertainty::predict`] (or [`uncertainty::predict_xray`]).

pub mod backend;
pub mod augmented;
pub mod calibration;
pub mod chebconv;
pub mod config;
pub mod decoder;
pub mod encoder;
pub mod graph;
pub mod lookup;
pub mod norm;
pub mod contour_spacing;
pub mod patch_error;
pub mod patch_features;
pub mod patch_refinement;
pub mod preprocess;
pub mod refined_spread;
pub mod shape_correction;
pub mod shipped;
pub mod uncertainty;
pub mod weights;

#[cfg(test)]
mod testing;

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};

pub use backend::{DeviceChoice, SelectedDevice, select_device};
pub use calibration::Calibration;
pub use shape_correction::ShapeCorrection;
pub use patch_refinement::PatchRefinement;
pub use config::ModelConfig;
pub use decoder::Decoded;
pub use encoder::Encoding;
pub use uncertainty::{EncodedImage, Prediction, Sampling, encode, predict, predict_xray, sample};
pub use weights::{StateDict, WeightsError};

pub use decoder::Decoder;
pub use encoder::Encoder;
use graph::Graphs;
use lookup::FeatureMap;

/// A HybridGNet on one device.
#[derive(Debug)]
pub struct HybridGNet {
    config: ModelConfig,
    pub encoder: Encoder,
    pub decoder: Decoder,
    graphs: Graphs,
    device: Device,
    /// Node std → expected error, when the weights file carries one (see [`calibration`]).
    calibration: Option<Calibration>,
    /// Trained with `train --hold-out-test`: the `test` split's images were never trained
    /// or tuned on (metadata `held_out_test`).
    pub held_out_test: bool,
    /// Warps of every image averaged into the predicted landmarks ([`augmented`]); 0 predicts
    /// on the image alone, as METHOD.md §4 and the released weights. Metadata
    /// `test_time_warps`, written by `calibrate`, whose map is fitted on those landmarks.
    pub test_time_warps: usize,
    /// Other trained models whose landmarks (on the image and the same warps) are averaged
    /// with this one's, weighted alike; the std, σ² and calibration stay this model's. Kept in
    /// the same weights file under `companion0.`, `companion1.`… (see [`augmented`]).
    companions: Vec<HybridGNet>,
    /// The last step of every prediction: a linear correction of the placed landmarks fitted
    /// on the training images (see [`shape_correction`]); tensors under `shape_correction.`.
    shape_correction: Option<ShapeCorrection>,
    /// After the shape correction: every node moved by what its image patches say (see
    /// [`patch_refinement`]); tensor under `patch_refinement.`.
    patch_refinement: Option<PatchRefinement>,
    /// Last of all: the nodes re-spaced along their contours as the landmark protocol spaces
    /// them (see [`contour_spacing`]); metadata `contour_spacing`, written by `calibrate`.
    pub contour_spacing: bool,
}

/// Metadata key of [`HybridGNet::held_out_test`].
pub const HELD_OUT_TEST_KEY: &str = "held_out_test";
/// Metadata key of [`HybridGNet::test_time_warps`].
pub const TEST_TIME_WARPS_KEY: &str = "test_time_warps";
/// Most companions a weights file may hold: each costs as much time as the model itself.
pub const MAX_COMPANIONS: usize = 3;

/// Key prefix of companion `i`'s tensors and metadata in a weights file.
pub fn companion_prefix(i: usize) -> String {
    format!("companion{i}.")
}

/// `k` test-time warps if a model may use that many, else the most it may.
fn within_max_warps(k: usize) -> Result<usize, usize> {
    if k <= augmented::MAX_WARPS { Ok(k) } else { Err(augmented::MAX_WARPS) }
}

impl HybridGNet {
    /// Load weights (`.pt`/`.pth` PyTorch state dict or `.safetensors`); the architecture
    /// (input size, skip blocks) is read from the tensors' shapes.
    pub fn load(path: &Path, device: &Device) -> Result<Self, WeightsError> {
        Self::from_state_dict(&StateDict::read(path)?, device)
    }

    pub fn from_state_dict(sd: &StateDict, device: &Device) -> Result<Self, WeightsError> {
        // Companions' tensors are moved out before the first model is built; a file without
        // any is not copied.
        let mut sd = std::borrow::Cow::Borrowed(sd);
        let shape_correction = match sd.tensors.keys().any(|k| k.starts_with(shape_correction::PREFIX)) {
            true => Some(
                ShapeCorrection::from_state_dict(&sd.to_mut().take_prefixed(shape_correction::PREFIX))
                    .map_err(|reason| WeightsError::Architecture { file: sd.source.clone(), reason })?,
            ),
            false => None,
        };
        let patch_refinement = match sd.tensors.keys().any(|k| k.starts_with(patch_refinement::PREFIX)) {
            true => Some(
                PatchRefinement::from_state_dict(&sd.to_mut().take_prefixed(patch_refinement::PREFIX))
                    .map_err(|reason| WeightsError::Architecture { file: sd.source.clone(), reason })?,
            ),
            false => None,
        };
        let mut parts = Vec::new();
        while sd.tensors.keys().any(|k| k.starts_with(&companion_prefix(parts.len()))) {
            let i = parts.len();
            let mut part = sd.to_mut().take_prefixed(&companion_prefix(i));
            part.source = PathBuf::from(format!("{} (companion {i})", sd.source.display()));
            let own_correction = format!("{}fit", shape_correction::PREFIX);
            let own_refinement = format!("{}fit", patch_refinement::PREFIX);
            for key in [
                calibration::CALIBRATION_KEY,
                TEST_TIME_WARPS_KEY,
                contour_spacing::KEY,
                own_correction.as_str(),
                own_refinement.as_str(),
            ] {
                if part.metadata.contains_key(key) {
                    return Err(WeightsError::Architecture {
                        file: part.source,
                        reason: format!("metadata `{key}`: a companion follows its primary's"),
                    });
                }
            }
            parts.push(part);
        }
        let sd = sd.as_ref();
        let config = weights::infer_config(sd)?;
        let (encoder, decoder) = weights::build(sd, &config, device)?;
        let calibration = match sd.metadata.get(calibration::CALIBRATION_KEY) {
            Some(text) => Some(
                Calibration::from_json(text)
                    .map_err(|reason| WeightsError::Architecture { file: sd.source.clone(), reason })?,
            ),
            None => None,
        };
        let held_out_test = sd.metadata.get(HELD_OUT_TEST_KEY).is_some_and(|v| v == "true");
        let test_time_warps = match sd.metadata.get(TEST_TIME_WARPS_KEY) {
            None => 0,
            Some(v) => v.parse::<usize>().ok().and_then(|k| within_max_warps(k).ok()).ok_or_else(|| {
                WeightsError::Architecture {
                    file: sd.source.clone(),
                    reason: format!(
                        "metadata {TEST_TIME_WARPS_KEY} = {v:?}: expected a whole number of warps up to {}",
                        augmented::MAX_WARPS
                    ),
                }
            })?,
        };
        let contour_spacing = match sd.metadata.get(contour_spacing::KEY).map(String::as_str) {
            None | Some("false") => false,
            Some("true") => true,
            Some(v) => {
                return Err(WeightsError::Architecture {
                    file: sd.source.clone(),
                    reason: format!("metadata {} = {v:?}: expected true or false", contour_spacing::KEY),
                });
            }
        };
        let mut model = HybridGNet {
            config,
            encoder,
            decoder,
            graphs: Graphs::new(device),
            device: device.clone(),
            calibration,
            held_out_test,
            test_time_warps,
            companions: Vec::new(),
            shape_correction,
            patch_refinement,
            contour_spacing,
        };
        for part in parts {
            let companion = Self::from_state_dict(&part, device)?;
            model.add_companion(companion).map_err(|reason| WeightsError::Architecture { file: part.source, reason })?;
        }
        Ok(model)
    }

    /// Random weights, initialised as PyTorch initialises a fresh model (for benchmarks and
    /// tests; its landmarks mean nothing).
    pub fn random(config: &ModelConfig, seed: u64, device: &Device) -> Self {
        let sd = weights::random_state_dict(config, seed);
        Self::from_state_dict(&sd, device).expect("random weights follow the layout they were made from")
    }

    /// Assemble a model from trained parts (the trainer owns encoder and decoder separately).
    pub fn from_parts(config: ModelConfig, encoder: Encoder, decoder: Decoder, device: &Device) -> Self {
        HybridGNet {
            config,
            encoder,
            decoder,
            graphs: Graphs::new(device),
            device: device.clone(),
            calibration: None,
            held_out_test: false,
            test_time_warps: 0,
            companions: Vec::new(),
            shape_correction: None,
            patch_refinement: None,
            contour_spacing: false,
        }
    }

    /// The trainable parts of this model (its companions, if any, are left behind).
    pub fn into_parts(self) -> (ModelConfig, Encoder, Decoder) {
        (self.config, self.encoder, self.decoder)
    }

    /// The weights in the released key layout, with the skip maps (and the calibration, if
    /// any) in the metadata.
    pub fn state_dict(&self) -> StateDict {
        let mut sd = weights::state_dict(&self.encoder, &self.decoder);
        sd.metadata.insert(weights::SKIP_MAPS_KEY.into(), self.config.skip_maps_tag());
        if self.held_out_test {
            sd.metadata.insert(HELD_OUT_TEST_KEY.into(), "true".into());
        }
        if self.test_time_warps > 0 {
            sd.metadata.insert(TEST_TIME_WARPS_KEY.into(), self.test_time_warps.to_string());
        }
        if let Some(c) = &self.calibration {
            sd.metadata.insert(calibration::CALIBRATION_KEY.into(), c.to_json());
        }
        for (i, c) in self.companions.iter().enumerate() {
            sd.insert_prefixed(&companion_prefix(i), c.state_dict());
        }
        if let Some(c) = &self.shape_correction {
            sd.insert_prefixed(shape_correction::PREFIX, c.to_state_dict());
        }
        if let Some(r) = &self.patch_refinement {
            sd.insert_prefixed(patch_refinement::PREFIX, r.to_state_dict());
        }
        if self.contour_spacing {
            sd.metadata.insert(contour_spacing::KEY.into(), "true".into());
        }
        sd
    }

    /// The models whose landmarks are averaged with this one's.
    pub fn companions(&self) -> &[HybridGNet] {
        &self.companions
    }

    /// Average `companion`'s landmarks with this model's from now on. It keeps its weights and
    /// skip maps; its calibration and warps give way to this model's, and the pair counts as
    /// held out of the test split only if no member ever saw it. Loading a file checks its
    /// companions by the same rules.
    pub fn add_companion(&mut self, mut companion: HybridGNet) -> Result<(), String> {
        if self.companions.len() == MAX_COMPANIONS {
            return Err(format!("more than {MAX_COMPANIONS} companion models"));
        }
        if !companion.companions.is_empty() {
            return Err("a companion may not have companions of its own".into());
        }
        companion.calibration = None;
        companion.test_time_warps = 0;
        companion.shape_correction = None;
        companion.patch_refinement = None;
        companion.contour_spacing = false;
        self.held_out_test &= companion.held_out_test;
        self.companions.push(companion);
        Ok(())
    }

    /// Predict with this model alone from now on.
    pub fn drop_companions(&mut self) {
        self.companions.clear();
    }

    pub fn shape_correction(&self) -> Option<&ShapeCorrection> {
        self.shape_correction.as_ref()
    }

    /// Attach (or remove) the correction applied to every prediction's landmarks.
    pub fn set_shape_correction(&mut self, correction: Option<ShapeCorrection>) {
        self.shape_correction = correction;
    }

    pub fn patch_refinement(&self) -> Option<&PatchRefinement> {
        self.patch_refinement.as_ref()
    }

    /// Attach (or remove) the refinement that moves every prediction's nodes after the shape
    /// correction.
    pub fn set_patch_refinement(&mut self, refinement: Option<PatchRefinement>) {
        self.patch_refinement = refinement;
    }

    /// Do predictions carry the samples through the patch refinement ([`refined_spread`])?
    /// When the model has one and its calibration reads their spread, or it has none (so
    /// the spread reported is the one a calibration would be fitted on); a calibration fitted
    /// on the samples' own spread keeps reading that.
    pub fn refines_samples(&self) -> bool {
        self.patch_refinement.is_some() && self.calibration.as_ref().is_none_or(|c| c.std_of == calibration::StdOf::RefinedSamples)
    }

    pub fn calibration(&self) -> Option<&Calibration> {
        self.calibration.as_ref()
    }

    /// Attach (or remove) the std → expected error map saved with the weights.
    pub fn set_calibration(&mut self, calibration: Option<Calibration>) {
        self.calibration = calibration;
    }

    /// Save in our format: safetensors in the released key layout (see [`weights`]).
    pub fn save(&self, path: &Path) -> Result<(), WeightsError> {
        let c = &self.config;
        self.state_dict().write_safetensors(
            path,
            &[
                ("input_size", c.input_size.to_string()),
                ("skip_blocks", c.skip_blocks.to_string()),
            ],
        )
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The architecture and, when landmarks are averaged over warps, how many.
    pub fn describe(&self) -> String {
        let mut d = self.config.describe();
        if self.test_time_warps > 0 {
            d += &format!(" · {} test-time warps", self.test_time_warps);
        }
        match self.companions.len() {
            0 => {}
            1 => d += " · 1 companion model",
            n => d += &format!(" · {n} companion models"),
        }
        if self.shape_correction.is_some() {
            d += " · shape correction";
        }
        if let Some(r) = &self.patch_refinement {
            let passes = (r.fit.passes > 1).then(|| format!("{} passes", r.fit.passes));
            let features = (r.fit.features > 0).then(|| format!("{} random features", r.fit.features));
            let smoothing = (r.fit.along_smoothing > 0).then(|| format!("moves along the contour averaged over ±{} nodes", r.fit.along_smoothing));
            match [passes, features, smoothing].into_iter().flatten().collect::<Vec<_>>().join(", ") {
                how if how.is_empty() => d += " · patch refinement",
                how => d += &format!(" · patch refinement ({how})"),
            }
        }
        if self.patch_refinement.as_ref().is_some_and(|r| r.error.is_some()) {
            d += " · expected error from the patches";
        }
        if self.contour_spacing {
            d += " · contour spacing";
        }
        d
    }

    /// `Some(k)`: predict with `k` test-time warps whatever the weights record (a command's
    /// `--test-time-warps`); `None` keeps the weights' own setting.
    pub fn override_test_time_warps(&mut self, warps: Option<usize>) -> Result<(), String> {
        if let Some(k) = warps {
            self.test_time_warps = within_max_warps(k).map_err(|max| format!("--test-time-warps {k}: at most {max}"))?;
        }
        Ok(())
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The decoder's graphs on this model's device, for running decoder stages one by one.
    pub fn graphs(&self) -> &Graphs {
        &self.graphs
    }

    /// Encode one model input image of S×S values in [0, 1] (row-major).
    pub fn encode_pixels(&self, pixels: &[f32]) -> Encoding {
        let s = self.config.input_size;
        assert_eq!(pixels.len(), s * s, "model input must be {s}×{s}");
        let image = Tensor::from_data(TensorData::new(pixels.to_vec(), [1, 1, s, s]), &self.device);
        self.encoder.forward(image, self.config.skip_maps)
    }

    /// Decode a batch of latents `z` (batch, latents) against one encoded image: its skip maps
    /// are shared by every row, nothing is encoded again.
    pub fn decode(&self, z: Tensor<2>, encoding: &Encoding) -> Decoded {
        let [m1, m2] = encoding.skip_maps.clone().map(FeatureMap::new);
        self.decoder.forward(z, [&m1, &m2], &self.graphs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::CHEB_K;
    use crate::model::testing::{cpu, values};

    fn small(skip_blocks: bool) -> ModelConfig {
        ModelConfig { channels: [4, 4, 8, 8, 8, 8], latents: 8, skip_blocks, ..ModelConfig::released(64) }
    }

    #[test]
    fn a_model_can_move_to_a_worker_thread() {
        fn sendable<T: Send + Sync>() {}
        sendable::<HybridGNet>();
        sendable::<Prediction>();
    }

    #[test]
    fn shapes_through_the_network() {
        let d = cpu();
        for skip in [true, false] {
            let model = HybridGNet::random(&small(skip), 1, &d);
            let enc = model.encode_pixels(&vec![0.5; 64 * 64]);
            assert_eq!(enc.mu.dims(), [1, 8]);
            assert_eq!(enc.skip_maps[0].dims(), [1, 8, 2, 2]);
            assert_eq!(enc.skip_maps[1].dims(), [1, 8, 4, 4]);
            let out = model.decode(Tensor::zeros([3, 8], &d), &enc);
            assert_eq!(out.output.dims(), [3, 120, 2]);
            assert_eq!(out.pos1.map(|p| p.dims()), skip.then_some([3, 60, 2]));
            assert_eq!(out.pos2.map(|p| p.dims()), skip.then_some([3, 120, 2]));
        }
    }

    #[test]
    fn decoding_a_batch_equals_decoding_each_row() {
        // Rows of a batch are independent. Compared on what precedes any lookup (the lookups
        // are discontinuous: 1e-7 differences from another summation order may change them).
        let d = cpu();
        let img: Vec<f32> = (0..64 * 64).map(|i| ((i * 7919) % 256) as f32 / 255.0).collect();
        let z: Vec<f32> = (0..3 * 8).map(|i| (i as f32 * 0.37).sin()).collect();
        for skip in [false, true] {
            let model = HybridGNet::random(&small(skip), 2, &d);
            let enc = model.encode_pixels(&img);
            let decode = |z: Vec<f32>, n: usize| {
                let out = model.decode(Tensor::from_data(TensorData::new(z, [n, 8]), &d), &enc);
                if skip { values(&out.pos1.expect("pos1")) } else { values(&out.output) }
            };
            let batch = decode(z.clone(), 3);
            let per = batch.len() / 3;
            for r in 0..3 {
                let one = decode(z[r * 8..(r + 1) * 8].to_vec(), 1);
                for (a, b) in one.iter().zip(&batch[r * per..(r + 1) * per]) {
                    assert!((a - b).abs() < 1e-5, "skip {skip} row {r}: {a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn test_time_warps_travel_in_the_metadata_and_bad_values_name_the_file() {
        let d = cpu();
        let mut model = HybridGNet::random(&small(true), 3, &d);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        model.save(&path).unwrap();
        assert_eq!(HybridGNet::load(&path, &d).unwrap().test_time_warps, 0);
        model.test_time_warps = 7;
        model.save(&path).unwrap();
        assert_eq!(HybridGNet::load(&path, &d).unwrap().test_time_warps, 7);
        assert!(model.override_test_time_warps(Some(augmented::MAX_WARPS + 1)).is_err());
        model.override_test_time_warps(None).unwrap();
        assert_eq!(model.test_time_warps, 7);
        model.override_test_time_warps(Some(0)).unwrap();
        assert_eq!(model.test_time_warps, 0);
        for bad in ["-1", "seven", "1000"] {
            let mut sd = model.state_dict();
            sd.metadata.insert(TEST_TIME_WARPS_KEY.into(), bad.into());
            let bad_path = dir.path().join("bad.safetensors");
            sd.write_safetensors(&bad_path, &[]).unwrap();
            let e = HybridGNet::load(&bad_path, &d).unwrap_err().to_string();
            assert!(e.contains("bad.safetensors") && e.contains(TEST_TIME_WARPS_KEY), "{e}");
        }
    }

    #[test]
    fn contour_spacing_travels_in_the_metadata_and_bad_values_name_the_file() {
        let d = cpu();
        let mut model = HybridGNet::random(&small(true), 3, &d);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        model.save(&path).unwrap();
        assert!(!HybridGNet::load(&path, &d).unwrap().contour_spacing);
        model.contour_spacing = true;
        model.save(&path).unwrap();
        let loaded = HybridGNet::load(&path, &d).unwrap();
        assert!(loaded.contour_spacing && loaded.describe().ends_with(" · contour spacing"));
        let mut sd = model.state_dict();
        sd.metadata.insert(contour_spacing::KEY.into(), "yes".into());
        let bad_path = dir.path().join("bad.safetensors");
        sd.write_safetensors(&bad_path, &[]).unwrap();
        let e = HybridGNet::load(&bad_path, &d).unwrap_err().to_string();
        assert!(e.contains("bad.safetensors") && e.contains(contour_spacing::KEY), "{e}");
    }

    #[test]
    fn companions_travel_in_the_same_file_and_bad_ones_name_the_file() {
        let d = cpu();
        let mut model = HybridGNet::random(&small(true), 3, &d);
        model.held_out_test = true;
        model.test_time_warps = 2;
        let mut companion = HybridGNet::random(&graded([5, 4]), 4, &d);
        companion.test_time_warps = 9;
        companion.held_out_test = true;
        model.add_companion(companion).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pair.safetensors");
        model.save(&path).unwrap();
        let back = HybridGNet::load(&path, &d).unwrap();
        assert_eq!(back.companions().len(), 1);
        assert_eq!(back.companions()[0].config().skip_maps, [5, 4]);
        assert_eq!(back.companions()[0].test_time_warps, 0, "the primary's warps rule");
        assert_eq!(back.state_dict().tensors, model.state_dict().tensors);
        assert!(back.held_out_test && back.test_time_warps == 2);
        assert!(back.state_dict().tensors.contains_key("companion0.encoder.fc_mu.weight"));
        // The pair is held out only if both members are.
        let mut seen = HybridGNet::random(&small(true), 5, &d);
        seen.held_out_test = true;
        seen.add_companion(HybridGNet::random(&small(true), 6, &d)).unwrap();
        assert!(!seen.held_out_test);
        // Training takes the primary alone.
        assert_eq!(back.into_parts().0, *model.config());

        let write = |sd: &StateDict| {
            let p = dir.path().join("bad.safetensors");
            sd.write_safetensors(&p, &[]).unwrap();
            HybridGNet::load(&p, &d).unwrap_err().to_string()
        };
        let mut sd = model.state_dict();
        sd.tensors.insert("companion0.graphConv_up2.bias".into(), weights::StateTensor { shape: vec![3], values: vec![0.0; 3] });
        let e = write(&sd);
        assert!(e.contains("bad.safetensors (companion 0)") && e.contains("graphConv_up2.bias"), "{e}");
        let mut sd = model.state_dict();
        sd.metadata.insert(format!("companion0.{}", calibration::CALIBRATION_KEY), "{}".into());
        let e = write(&sd);
        assert!(e.contains("(companion 0)") && e.contains("follows its primary"), "{e}");
        // A gap in the numbering leaves keys nobody reads.
        let mut sd = model.state_dict();
        let part = sd.take_prefixed("companion0.");
        sd.insert_prefixed("companion1.", part);
        let e = write(&sd);
        assert!(e.contains("companion1.encoder"), "{e}");
        let mut many = HybridGNet::random(&small(true), 3, &d);
        for i in 0..MAX_COMPANIONS {
            many.add_companion(HybridGNet::random(&small(true), 10 + i as u64, &d)).unwrap();
        }
        assert!(many.add_companion(HybridGNet::random(&small(true), 20, &d)).is_err());
        let mut sd = many.state_dict();
        sd.insert_prefixed(&companion_prefix(MAX_COMPANIONS), HybridGNet::random(&small(true), 21, &d).state_dict());
        let e = write(&sd);
        assert!(e.contains(&format!("more than {MAX_COMPANIONS} companion")), "{e}");
    }

    #[test]
    fn saved_weights_load_back_identically() {
        let d = cpu();
        let model = HybridGNet::random(&small(true), 3, &d);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        model.save(&path).unwrap();
        let back = HybridGNet::load(&path, &d).unwrap();
        assert_eq!(back.config(), model.config());
        assert_eq!(back.state_dict().tensors, model.state_dict().tensors);
        // The saved keys are exactly the released layout.
        let keys: Vec<String> = weights::layout(model.config()).into_iter().map(|(k, ..)| k).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(back.state_dict().tensors.keys().cloned().collect::<Vec<_>>(), sorted);
    }

    /// Distinct widths per block, so a map of the wrong block cannot fit by accident.
    fn graded(skip_maps: [usize; 2]) -> ModelConfig {
        ModelConfig { channels: [4, 6, 8, 10, 12, 14], latents: 8, skip_maps, ..ModelConfig::released(64) }
    }

    #[test]
    fn finer_skip_maps_look_up_their_blocks_and_survive_a_save() {
        let d = cpu();
        let model = HybridGNet::random(&graded([5, 4]), 6, &d);
        let img: Vec<f32> = (0..64 * 64).map(|i| ((i * 7919) % 256) as f32 / 255.0).collect();
        let enc = model.encode_pixels(&img);
        assert_eq!(enc.skip_maps[0].dims(), [1, 12, 4, 4], "block 5");
        assert_eq!(enc.skip_maps[1].dims(), [1, 10, 8, 8], "block 4");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        model.save(&path).unwrap();
        let back = HybridGNet::load(&path, &d).unwrap();
        assert_eq!(back.config().skip_maps, [5, 4]);
        assert_eq!(back.state_dict().tensors, model.state_dict().tensors);
        let z = Tensor::from_data(TensorData::new(vec![0.3; 8], [1, 8]), &d);
        assert_eq!(values(&back.decode(z.clone(), &back.encode_pixels(&img)).output), values(&model.decode(z, &enc).output));
    }

    #[test]
    fn moving_skip_maps_zeroes_only_the_changed_lookup_weights() {
        let d = cpu();
        let released = HybridGNet::random(&graded(config::RELEASED_SKIP_MAPS), 7, &d);
        let sd = released.state_dict();
        let moved = weights::with_skip_maps(&sd, released.config(), [6, 4]).unwrap();
        let model = HybridGNet::from_state_dict(&moved, &d).unwrap();
        assert_eq!(model.config().skip_maps, [6, 4]);
        // Skip block 1 kept its map: up4 is untouched.
        for k in 0..CHEB_K {
            let key = format!("graphConv_up4.lins.{k}.weight");
            assert_eq!(moved.tensors[&key], sd.tensors[&key]);
        }
        // Skip block 2 moved from block 5 (12 channels) to block 4 (10): up2 takes 32 + 10 + 2.
        let hid = config::DECODER_HIDDEN;
        for k in 0..CHEB_K {
            let key = format!("graphConv_up2.lins.{k}.weight");
            let (old, new) = (&sd.tensors[&key], &moved.tensors[&key]);
            assert_eq!(new.shape, [hid, hid + 12]);
            for (o, n) in old.values.chunks_exact(hid + 14).zip(new.values.chunks_exact(hid + 12)) {
                assert_eq!(n[..hid], o[..hid], "node-feature columns kept");
                assert!(n[hid..hid + 10].iter().all(|&w| w == 0.0), "looked-up columns start at zero");
                assert_eq!(n[hid + 10..], o[hid + 12..], "position columns kept");
            }
        }
        // Everything before skip block 2 is the same network.
        let img: Vec<f32> = (0..64 * 64).map(|i| ((i * 31) % 97) as f32 / 96.0).collect();
        let z = Tensor::from_data(TensorData::new(vec![-0.2; 8], [1, 8]), &d);
        let pos1 = |m: &HybridGNet| values(&m.decode(z.clone(), &m.encode_pixels(&img)).pos1.expect("skip blocks"));
        assert_eq!(pos1(&model), pos1(&released));
    }

    #[test]
    fn resizing_the_input_keeps_what_a_flat_conv6_encodes() {
        let d = cpu();
        let small = HybridGNet::random(&graded([5, 4]), 9, &d);
        let sd = weights::with_input_size(&small.state_dict(), small.config(), 96).unwrap();
        let big = HybridGNet::from_state_dict(&sd, &d).unwrap();
        assert_eq!(big.config(), &ModelConfig { input_size: 96, ..*small.config() });
        // conv6 grows from 2×2 to 3×3; a map constant per channel gives the same μ and log σ².
        let flat = |cells: usize| -> Tensor<2> {
            let v: Vec<f32> = (0..14).flat_map(|c| std::iter::repeat_n(c as f32 * 0.1 - 0.6, cells)).collect();
            Tensor::from_data(TensorData::new(v, [1, 14 * cells]), &d)
        };
        for (a, b) in [(&small.encoder.fc_mu, &big.encoder.fc_mu), (&small.encoder.fc_logvar, &big.encoder.fc_logvar)] {
            let (x, y) = (values(&a.forward(flat(4))), values(&b.forward(flat(9))));
            for (p, q) in x.iter().zip(&y) {
                assert!((p - q).abs() < 1e-5, "{x:?} vs {y:?}");
            }
        }
        // Everything but the two fc weights is carried over unchanged.
        for (k, t) in &small.state_dict().tensors {
            if !k.starts_with("encoder.fc_") || k.ends_with("bias") {
                assert_eq!(&sd.tensors[k], t, "{k}");
            }
        }
        assert!(weights::with_input_size(&small.state_dict(), small.config(), 100).is_err(), "not a multiple of 32");
    }

    #[test]
    fn skip_maps_metadata_that_does_not_fit_is_refused() {
        let d = cpu();
        let mut sd = HybridGNet::random(&graded(config::RELEASED_SKIP_MAPS), 8, &d).state_dict();
        sd.metadata.insert(weights::SKIP_MAPS_KEY.into(), "7,5".into());
        let e = HybridGNet::from_state_dict(&sd, &d).unwrap_err().to_string();
        assert!(e.contains("skip maps \"7,5\""), "{e}");
        // Tensors of the released maps labelled as 5,4: up4 takes 16 + 14 + 2 features, not 16 + 12 + 2.
        sd.metadata.insert(weights::SKIP_MAPS_KEY.into(), "5,4".into());
        let e = HybridGNet::from_state_dict(&sd, &d).unwrap_err().to_string();
        assert!(e.contains("`graphConv_up4.lins.0.weight` has shape [32, 32], the model expects [32, 30]"), "{e}");
    }

    #[test]
    fn older_chebconv_layout_loads_to_the_same_model() {
        let d = cpu();
        let model = HybridGNet::random(&small(true), 4, &d);
        let mut sd = model.state_dict();
        // Rewrite every ChebConv as one `weight` (K, in, out), torch_geometric < 2.
        let prefixes: Vec<String> =
            sd.tensors.keys().filter_map(|k| k.strip_suffix(".lins.0.weight").map(String::from)).collect();
        for p in prefixes {
            let mut k = 0;
            let mut stacked = Vec::new();
            let (mut fin, mut fout) = (0, 0);
            while let Some(t) = sd.tensors.remove(&format!("{p}.lins.{k}.weight")) {
                (fout, fin) = (t.shape[0], t.shape[1]);
                for r in 0..fin {
                    stacked.extend((0..fout).map(|c| t.values[c * fin + r]));
                }
                k += 1;
            }
            sd.tensors
                .insert(format!("{p}.weight"), weights::StateTensor { shape: vec![k, fin, fout], values: stacked });
        }
        let old = HybridGNet::from_state_dict(&sd, &d).unwrap();
        assert_eq!(old.state_dict().tensors, model.state_dict().tensors);
    }

    #[test]
    fn bad_weights_are_reported_with_key_and_shapes() {
        let d = cpu();
        let model = HybridGNet::random(&small(true), 5, &d);
        let good = model.state_dict();

        let mut sd = good.clone();
        sd.tensors.remove("graphConv_up3.bias");
        let e = HybridGNet::from_state_dict(&sd, &d).unwrap_err().to_string();
        assert!(e.contains("missing key `graphConv_up3.bias`"), "{e}");

        let mut sd = good.clone();
        sd.tensors.get_mut("encoder.dconv_down2.block.5.weight").unwrap().shape = vec![4, 4, 3, 2];
        let e = HybridGNet::from_state_dict(&sd, &d).unwrap_err().to_string();
        assert!(
            e.contains("`encoder.dconv_down2.block.5.weight` has shape [4, 4, 3, 2], the model expects [4, 4, 3, 3]"),
            "{e}"
        );

        let mut sd = good.clone();
        let t = sd.tensors.remove("SC_2.graphConv_pre.lins.0.weight").unwrap();
        sd.tensors.insert(
            "SC_2.graphConv_pre.lins.0.weight".into(),
            weights::StateTensor { shape: vec![3, 32], values: vec![0.0; 96] },
        );
        drop(t);
        let e = HybridGNet::from_state_dict(&sd, &d).unwrap_err().to_string();
        assert!(e.contains("[3, 32]") && e.contains("[2, 32]"), "{e}");

        let mut sd = good.clone();
        sd.tensors.insert("encoder.extra.weight".into(), weights::StateTensor { shape: vec![1], values: vec![0.0] });
        let e = HybridGNet::from_state_dict(&sd, &d).unwrap_err().to_string();
        assert!(e.contains("`encoder.extra.weight`"), "{e}");

        let mut sd = good;
        sd.tensors.get_mut("encoder.fc_mu.weight").unwrap().shape = vec![8, 33];
        let e = HybridGNet::from_state_dict(&sd, &d).unwrap_err().to_string();
        assert!(e.contains("encoder.fc_mu.weight") && e.contains("33"), "{e}");
    }
}
