//! The training loss of METHOD.md §5:
//! MSE(output, target) + MSE(pos2, target) + MSE(pos1, D·target) + β·KL,
//! KL = −½·mean(1 + log σ² − μ² − σ²), coordinates in [0, 1] of the model input.

use burn::tensor::Tensor;

use crate::landmarks::NUM_NODES;
use crate::model::decoder::Decoded;

/// The loss parts of one batch, as tensors (so the total can be differentiated).
pub struct LossTerms {
    pub output: Tensor<1>,
    /// Skip block 2 against the target; absent without skip blocks.
    pub pos2: Option<Tensor<1>>,
    /// Skip block 1 against the downsampled target; absent without skip blocks.
    pub pos1: Option<Tensor<1>>,
    pub kl: Tensor<1>,
}

/// The same parts read back to the host (also batch means summed over an epoch).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LossValues {
    pub total: f64,
    pub output: f64,
    pub pos2: f64,
    pub pos1: f64,
    pub kl: f64,
}

impl LossTerms {
    /// Sum of the landmark MSE terms.
    pub fn mse(&self) -> Tensor<1> {
        let mut sum = self.output.clone();
        for t in [&self.pos2, &self.pos1].into_iter().flatten() {
            sum = sum + t.clone();
        }
        sum
    }

    pub fn total(&self, beta: f64) -> Tensor<1> {
        self.mse() + self.kl.clone().mul_scalar(beta)
    }

    /// Every part in one device→host read (one sync per step instead of five).
    pub fn values(&self, total: &Tensor<1>) -> LossValues {
        let zero = || self.output.zeros_like();
        let all = Tensor::cat(
            vec![
                total.clone(),
                self.output.clone(),
                self.pos2.clone().unwrap_or_else(zero),
                self.pos1.clone().unwrap_or_else(zero),
                self.kl.clone(),
            ],
            0,
        );
        let v = all.try_to_vec_as::<f32>().expect("f32 loss");
        LossValues { total: v[0] as f64, output: v[1] as f64, pos2: v[2] as f64, pos1: v[3] as f64, kl: v[4] as f64 }
    }
}

impl LossValues {
    pub fn add(&mut self, o: &LossValues) {
        self.total += o.total;
        self.output += o.output;
        self.pos2 += o.pos2;
        self.pos1 += o.pos1;
        self.kl += o.kl;
    }

    pub fn scaled(&self, f: f64) -> LossValues {
        LossValues {
            total: self.total * f,
            output: self.output * f,
            pos2: self.pos2 * f,
            pos1: self.pos1 * f,
            kl: self.kl * f,
        }
    }
}

/// Mean squared error over every element, as `torch.nn.functional.mse_loss`.
pub fn mse(a: Tensor<3>, b: Tensor<3>) -> Tensor<1> {
    (a - b).powi_scalar(2).mean()
}

/// −½·mean(1 + log σ² − μ² − σ²) over batch and latents.
pub fn kl_divergence(mu: Tensor<2>, logvar: Tensor<2>) -> Tensor<1> {
    (logvar.clone().add_scalar(1.0) - mu.powi_scalar(2) - logvar.exp()).mean().mul_scalar(-0.5)
}

/// The loss parts for decoder outputs against `target` (batch, 120, 2) and its downsampled
/// copy `coarse` (batch, 60, 2).
pub fn loss_terms(d: &Decoded, mu: Tensor<2>, logvar: Tensor<2>, target: Tensor<3>, coarse: Tensor<3>) -> LossTerms {
    LossTerms {
        output: mse(d.output.clone(), target.clone()),
        pos2: d.pos2.clone().map(|p| mse(p, target)),
        pos1: d.pos1.clone().map(|p| mse(p, coarse)),
        kl: kl_divergence(mu, logvar),
    }
}

/// D·target for one sample (D row-major, coarse × fine): the skip block 1 target.
pub fn downsample(d: &[f32], target: &[[f32; 2]; NUM_NODES]) -> Vec<[f32; 2]> {
    d.chunks_exact(NUM_NODES)
        .map(|row| {
            let mut acc = [0.0f32; 2];
            for (w, q) in row.iter().zip(target) {
                acc[0] += w * q[0];
                acc[1] += w * q[1];
            }
            acc
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn t<const D: usize>(v: Vec<f32>, shape: [usize; D]) -> Tensor<D> {
        Tensor::from_data(TensorData::new(v, shape), &Device::flex())
    }

    fn scalar(x: Tensor<1>) -> f64 {
        x.try_to_vec_as::<f32>().unwrap()[0] as f64
    }

    #[test]
    fn kl_matches_the_closed_form() {
        // μ = 0, log σ² = 0 is the prior itself: KL 0.
        assert!(scalar(kl_divergence(t(vec![0.0; 4], [2, 2]), t(vec![0.0; 4], [2, 2]))).abs() < 1e-7);
        // Terms 1 + lv − μ² − e^lv: (μ=1, lv=0) → −1; (μ=0, lv=ln 2) → ln2 − 1;
        // (μ=−2, lv=−1) → −4 − e⁻¹; (μ=0.5, lv=1) → 1.75 − e. KL = −½·mean.
        let mu = t(vec![1.0, 0.0, -2.0, 0.5], [2, 2]);
        let lv = t(vec![0.0, 2f32.ln(), -1.0, 1.0], [2, 2]);
        let e = std::f64::consts::E;
        let expect = -0.5 * (-1.0 + (2f64.ln() - 1.0) + (-4.0 - 1.0 / e) + (1.75 - e)) / 4.0;
        assert!((scalar(kl_divergence(mu, lv)) - expect).abs() < 1e-6, "{expect}");
    }

    #[test]
    fn terms_compare_each_head_with_its_target() {
        // One sample: output off by 0.1 everywhere, pos2 exact, pos1 off by 0.2 on x only.
        let target: Vec<f32> = (0..NUM_NODES * 2).map(|i| (i % 7) as f32 / 10.0).collect();
        let coarse: Vec<f32> = (0..60 * 2).map(|i| (i % 5) as f32 / 10.0).collect();
        let d = Decoded {
            output: t(target.iter().map(|v| v + 0.1).collect(), [1, NUM_NODES, 2]),
            pos2: Some(t(target.clone(), [1, NUM_NODES, 2])),
            pos1: Some(t(coarse.iter().enumerate().map(|(i, v)| if i % 2 == 0 { v + 0.2 } else { *v }).collect(), [1, 60, 2])),
        };
        let mu = t(vec![1.0, 0.0], [1, 2]);
        let lv = t(vec![0.0, 0.0], [1, 2]);
        let terms = loss_terms(&d, mu, lv, t(target, [1, NUM_NODES, 2]), t(coarse, [1, 60, 2]));
        let total = terms.total(0.5);
        let v = terms.values(&total);
        assert!((v.output - 0.01).abs() < 1e-6, "{v:?}");
        assert!(v.pos2.abs() < 1e-9, "{v:?}");
        assert!((v.pos1 - 0.02).abs() < 1e-6, "{v:?}"); // half the entries off by 0.2
        assert!((v.kl - 0.25).abs() < 1e-6, "{v:?}"); // −½·mean(−1, 0)
        assert!((v.total - (0.01 + 0.02 + 0.5 * 0.25)).abs() < 1e-6, "{v:?}");

        // Without skip blocks only the output term and KL remain.
        let plain = Decoded { output: d.output.clone(), pos1: None, pos2: None };
        let terms = loss_terms(&plain, t(vec![0.0; 2], [1, 2]), t(vec![0.0; 2], [1, 2]), d.pos2.clone().unwrap(), d.pos1.clone().unwrap());
        let v = terms.values(&terms.total(1.0));
        assert!((v.total - 0.01).abs() < 1e-6 && v.pos1 == 0.0 && v.pos2 == 0.0, "{v:?}");
    }

    #[test]
    fn downsampling_averages_neighbouring_pairs() {
        let d = crate::model::graph::downsample_matrix();
        let target: [[f32; 2]; NUM_NODES] = std::array::from_fn(|i| [i as f32, 2.0 * i as f32]);
        let c = downsample(&d, &target);
        assert_eq!(c.len(), 60);
        assert_eq!(c[0], [0.5, 1.0]); // fine 0, 1
        assert_eq!(c[21], [42.5, 85.0]); // right lung: fine 42, 43
        assert_eq!(c[22], [44.5, 89.0]); // left lung starts at fine 44
        assert_eq!(c[59], [118.5, 237.0]); // heart: the last coarse node is fine 118, 119
    }
}
