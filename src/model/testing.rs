//! Helpers for the model's unit tests.

use burn::tensor::{Device, Tensor, TensorData};

pub fn cpu() -> Device {
    Device::flex()
}

/// The released layout made small enough for unit tests: S = 64, 4–8 channels, 8 latents.
pub fn small_config() -> super::ModelConfig {
    super::ModelConfig { channels: [4, 4, 8, 8, 8, 8], latents: 8, ..super::ModelConfig::released(64) }
}

/// [`small_config`] with random weights from `seed`, on the CPU.
pub fn small_model(seed: u64) -> super::HybridGNet {
    super::HybridGNet::random(&small_config(), seed, &cpu())
}

pub fn tensor<const D: usize>(values: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

pub fn values<const D: usize>(t: &Tensor<D>) -> Vec<f32> {
    t.try_to_vec_as::<f32>().expect("f32 tensor")
}

/// Every element within `tol` of `expected` (absolute).
#[track_caller]
pub fn assert_close<const D: usize>(t: &Tensor<D>, expected: &[f32], tol: f32) {
    let got = values(t);
    assert_eq!(got.len(), expected.len(), "element count");
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        assert!((g - e).abs() <= tol, "element {i}: got {g}, expected {e} (got {got:?})");
    }
}
