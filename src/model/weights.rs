//! Weights on disk: PyTorch state dicts in the released key layout (METHOD.md §3), and our own
//! files.
//!
//! Our own format is a safetensors file with exactly the released keys and shapes (ChebConv in
//! the torch_geometric ≥ 2 `lins.k.weight` layout), f32, plus `__metadata__` naming the format.
//! So one reader serves both, and `safetensors.torch.load_file` + `load_state_dict` reads our
//! files back into the PyTorch model.
//!
//! The architecture is read from the shapes (widths from the convolutions, S from fc_mu, skip
//! blocks from the presence of `SC_1`), then every tensor is checked against it: a missing key,
//! a wrong shape or a key the model does not have is an error naming the file and the key.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use burn::store::pytorch_reader::{self, PytorchReader};
use burn::tensor::{Device, Tensor, TensorData, bf16, f16};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::chebconv::ChebConv;
use super::config::{CHEB_K, DECODER_FEATURES, DECODER_HIDDEN, ModelConfig, RELEASED_SKIP_MAPS};
use super::decoder::{Decoder, SkipBlock};
use super::encoder::{Conv, Encoder, Linear, ResidualBlock, Shortcut};
use super::graph::NUM_COARSE_NODES;
use super::norm::BatchNorm;

/// Value of `__metadata__["format"]` in files we write.
pub const FORMAT_TAG: &str = "cxr-review/hybridgnet-v1";
/// Metadata key naming the encoder blocks the skip blocks look up ("6,5" as released). Files
/// without it (PyTorch checkpoints, our older files) have the released maps.
pub const SKIP_MAPS_KEY: &str = "skip_maps";

#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("{}: cannot read weights: {reason}", file.display())]
    Read { file: PathBuf, reason: String },
    #[error("{}: cannot write weights: {reason}", file.display())]
    Write { file: PathBuf, reason: String },
    #[error("{}: missing key `{key}`", file.display())]
    Missing { file: PathBuf, key: String },
    #[error("{}: `{key}` has shape {found:?}, the model expects {expected:?}", file.display())]
    Shape { file: PathBuf, key: String, expected: Vec<usize>, found: Vec<usize> },
    #[error("{}: `{key}` holds {dtype} values, not floating point", file.display())]
    Dtype { file: PathBuf, key: String, dtype: String },
    #[error("{}: key(s) the model does not have: {keys}", file.display())]
    Unexpected { file: PathBuf, keys: String },
    #[error("{}: {reason}", file.display())]
    Architecture { file: PathBuf, reason: String },
}

/// One tensor of a state dict, as f32 on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct StateTensor {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// Named tensors and the file they came from (for error messages).
#[derive(Debug, Clone, Default)]
pub struct StateDict {
    pub source: PathBuf,
    pub tensors: BTreeMap<String, StateTensor>,
    /// A safetensors file's `__metadata__` (empty for PyTorch files).
    pub metadata: BTreeMap<String, String>,
}

impl StateDict {
    /// Read a `.pt`/`.pth` PyTorch checkpoint or a `.safetensors` file (recognised by content).
    /// A state dict nested under `state_dict`, `model` or a DataParallel `module.` prefix is
    /// unwrapped.
    pub fn read(path: &Path) -> Result<Self, WeightsError> {
        let read_err = |reason: String| WeightsError::Read { file: path.to_path_buf(), reason };
        let mut head = [0u8; 16];
        let n = std::fs::File::open(path)
            .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
            .map_err(|e| read_err(e.to_string()))?;
        let is_safetensors = n >= 9 && head[8] == b'{';
        let mut sd = if is_safetensors { read_safetensors(path)? } else { read_pytorch(path)? };
        sd.strip_wrapper_prefix();
        if sd.tensors.is_empty() {
            return Err(read_err("no tensors in file".into()));
        }
        Ok(sd)
    }

    fn strip_wrapper_prefix(&mut self) {
        for prefix in ["state_dict.", "model_state_dict.", "model.", "module."] {
            if !self.tensors.keys().all(|k| k.starts_with(prefix)) {
                continue;
            }
            let tensors = std::mem::take(&mut self.tensors);
            self.tensors = tensors.into_iter().map(|(k, v)| (k[prefix.len()..].to_string(), v)).collect();
        }
    }

    /// Move the tensors and metadata whose keys start with `prefix` into a state dict of
    /// their own, the prefix removed (a companion model kept in the same file).
    pub fn take_prefixed(&mut self, prefix: &str) -> StateDict {
        fn split<V>(map: &mut BTreeMap<String, V>, prefix: &str) -> BTreeMap<String, V> {
            let keys: Vec<String> = map.keys().filter(|k| k.starts_with(prefix)).cloned().collect();
            keys.into_iter().filter_map(|k| map.remove(&k).map(|v| (k[prefix.len()..].to_string(), v))).collect()
        }
        let tensors = split(&mut self.tensors, prefix);
        let metadata = split(&mut self.metadata, prefix);
        StateDict { source: self.source.clone(), tensors, metadata }
    }

    /// Add `other`'s tensors and metadata under `prefix`: the inverse of [`Self::take_prefixed`].
    pub fn insert_prefixed(&mut self, prefix: &str, other: StateDict) {
        self.tensors.extend(other.tensors.into_iter().map(|(k, v)| (format!("{prefix}{k}"), v)));
        self.metadata.extend(other.metadata.into_iter().map(|(k, v)| (format!("{prefix}{k}"), v)));
    }

    fn shape_of(&self, key: &str) -> Option<&[usize]> {
        self.tensors.get(key).map(|t| t.shape.as_slice())
    }

    /// Write as safetensors (f32) with its metadata, our format tag and `extra_metadata`,
    /// atomically: a temporary file beside
    /// `path`, synced, then renamed over it.
    pub fn write_safetensors(&self, path: &Path, extra_metadata: &[(&str, String)]) -> Result<(), WeightsError> {
        let write_err = |reason: String| WeightsError::Write { file: path.to_path_buf(), reason };
        let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = self
            .tensors
            .iter()
            .map(|(k, t)| (k.clone(), t.values.iter().flat_map(|v| v.to_le_bytes()).collect(), t.shape.clone()))
            .collect();
        let views = bytes
            .iter()
            .map(|(k, b, s)| {
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .map(|v| (k.as_str(), v))
                    .map_err(|e| write_err(format!("`{k}`: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut metadata: HashMap<String, String> = self.metadata.clone().into_iter().collect();
        metadata.insert("format".to_string(), FORMAT_TAG.to_string());
        for (k, v) in extra_metadata {
            metadata.insert(k.to_string(), v.clone());
        }
        let data = safetensors::serialize(views, Some(metadata)).map_err(|e| write_err(e.to_string()))?;
        write_atomically(path, &data).map_err(|e| write_err(e.to_string()))
    }
}

/// Write `data` to `path` through a synced temporary file in the same folder and a rename,
/// so a reader never sees a half-written file.
pub fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Largest tensor a weights file may hold: the released HybridGNet's biggest (its fc layers at
/// S = 1024) is under 10 M values; a header claiming more is forged or another model.
pub const MAX_TENSOR_VALUES: usize = 64 * 1024 * 1024;
/// Largest total: several times the released model.
pub const MAX_TOTAL_VALUES: usize = 256 * 1024 * 1024;

/// Values a shape holds, refused before anything is allocated for it when it overflows or
/// exceeds the limits above (`total` is the count so far in the file).
fn checked_count(path: &Path, key: &str, shape: &[usize], total: &mut usize) -> Result<usize, WeightsError> {
    let count = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).filter(|&n| n <= MAX_TENSOR_VALUES);
    let Some(count) = count else {
        return Err(WeightsError::Read {
            file: path.to_path_buf(),
            reason: format!("tensor `{key}` claims shape {shape:?}: more than {MAX_TENSOR_VALUES} values, not a HybridGNet"),
        });
    };
    *total += count;
    if *total > MAX_TOTAL_VALUES {
        return Err(WeightsError::Read {
            file: path.to_path_buf(),
            reason: format!("tensors claim more than {MAX_TOTAL_VALUES} values in all: not a HybridGNet"),
        });
    }
    Ok(count)
}

/// The values of a tensor, which must be exactly as many as its shape says.
fn checked_values(path: &Path, key: &str, shape: &[usize], count: usize, values: Vec<f32>) -> Result<StateTensor, WeightsError> {
    if values.len() != count {
        return Err(WeightsError::Read {
            file: path.to_path_buf(),
            reason: format!("tensor `{key}` has shape {shape:?} ({count} values) but its data holds {}", values.len()),
        });
    }
    Ok(StateTensor { shape: shape.to_vec(), values })
}

fn read_pytorch(path: &Path) -> Result<StateDict, WeightsError> {
    // The pickle and zip readers are third-party code fed user data: a panic becomes an error.
    match std::panic::catch_unwind(|| read_pytorch_inner(path)) {
        Ok(r) => r,
        Err(_) => Err(WeightsError::Read {
            file: path.to_path_buf(),
            reason: "the PyTorch reader crashed on this file (corrupt or not a state dict)".into(),
        }),
    }
}

fn read_pytorch_inner(path: &Path) -> Result<StateDict, WeightsError> {
    let reader =
        PytorchReader::new(path).map_err(|e| WeightsError::Read { file: path.to_path_buf(), reason: e.to_string() })?;
    let mut tensors = BTreeMap::new();
    let mut total = 0;
    for (key, t) in reader.into_tensors() {
        let count = checked_count(path, &key, t.shape(), &mut total)?;
        let bytes = t.read().map_err(|e| WeightsError::Read { file: path.to_path_buf(), reason: e.to_string() })?;
        use pytorch_reader::DType as P;
        let values = match t.dtype() {
            P::F32 => decode(&bytes, 4, |b| f32::from_ne_bytes(b.try_into().unwrap())),
            P::F64 => decode(&bytes, 8, |b| f64::from_ne_bytes(b.try_into().unwrap()) as f32),
            P::F16 => decode(&bytes, 2, |b| f16::from_ne_bytes(b.try_into().unwrap()).to_f32()),
            P::BF16 => decode(&bytes, 2, |b| bf16::from_ne_bytes(b.try_into().unwrap()).to_f32()),
            other => {
                return Err(WeightsError::Dtype { file: path.to_path_buf(), key, dtype: format!("{other:?}") });
            }
        };
        let tensor = checked_values(path, &key, t.shape(), count, values)?;
        tensors.insert(key, tensor);
    }
    Ok(StateDict { source: path.to_path_buf(), tensors, metadata: BTreeMap::new() })
}

fn read_safetensors(path: &Path) -> Result<StateDict, WeightsError> {
    let read_err = |reason: String| WeightsError::Read { file: path.to_path_buf(), reason };
    let bytes = std::fs::read(path).map_err(|e| read_err(e.to_string()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| read_err(e.to_string()))?;
    let mut tensors = BTreeMap::new();
    let mut total = 0;
    for (key, view) in st.tensors() {
        let count = checked_count(path, &key, view.shape(), &mut total)?;
        use safetensors::Dtype as S;
        let data = view.data();
        let values = match view.dtype() {
            S::F32 => decode(data, 4, |b| f32::from_le_bytes(b.try_into().unwrap())),
            S::F64 => decode(data, 8, |b| f64::from_le_bytes(b.try_into().unwrap()) as f32),
            S::F16 => decode(data, 2, |b| f16::from_le_bytes(b.try_into().unwrap()).to_f32()),
            S::BF16 => decode(data, 2, |b| bf16::from_le_bytes(b.try_into().unwrap()).to_f32()),
            other => return Err(WeightsError::Dtype { file: path.to_path_buf(), key, dtype: format!("{other:?}") }),
        };
        let tensor = checked_values(path, &key, view.shape(), count, values)?;
        tensors.insert(key, tensor);
    }
    let metadata = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| read_err(e.to_string()))?
        .1
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    Ok(StateDict { source: path.to_path_buf(), tensors, metadata })
}

fn decode(bytes: &[u8], width: usize, f: impl Fn(&[u8]) -> f32) -> Vec<f32> {
    bytes.chunks_exact(width).map(f).collect()
}

/// The architecture a state dict describes, from the shapes of a few tensors.
pub fn infer_config(sd: &StateDict) -> Result<ModelConfig, WeightsError> {
    let file = || sd.source.clone();
    let mut channels = [0; 6];
    for (i, c) in channels.iter_mut().enumerate() {
        let key = format!("encoder.dconv_down{}.block.2.weight", i + 1);
        let shape = sd.shape_of(&key).ok_or_else(|| WeightsError::Missing { file: file(), key: key.clone() })?;
        if shape.len() != 4 {
            return Err(WeightsError::Architecture {
                file: file(),
                reason: format!("`{key}` has shape {shape:?}, not a 2-D convolution"),
            });
        }
        *c = shape[0];
    }
    let key = "encoder.fc_mu.weight";
    let shape = sd.shape_of(key).ok_or_else(|| WeightsError::Missing { file: file(), key: key.into() })?;
    let [latents, flat] = shape else {
        return Err(WeightsError::Architecture {
            file: file(),
            reason: format!("`{key}` has shape {shape:?}, not a linear layer"),
        });
    };
    if channels.contains(&0) {
        return Err(WeightsError::Architecture { file: file(), reason: format!("an encoder block has no channels ({channels:?})") });
    }
    let cells = flat / channels[5];
    let side = (cells as f64).sqrt().round() as usize;
    if side == 0 || side * side * channels[5] != *flat {
        return Err(WeightsError::Architecture {
            file: file(),
            reason: format!("`{key}` takes {flat} inputs, which is not {}·(S/32)² for any input size S", channels[5]),
        });
    }
    let skip_blocks =
        sd.shape_of("SC_1.graphConv_pre.lins.0.weight").is_some() || sd.shape_of("SC_1.graphConv_pre.weight").is_some();
    let skip_maps = match sd.metadata.get(SKIP_MAPS_KEY) {
        Some(tag) => ModelConfig::parse_skip_maps(tag).map_err(|reason| WeightsError::Architecture { file: file(), reason })?,
        None => RELEASED_SKIP_MAPS,
    };
    let config = ModelConfig { input_size: side * 32, channels, latents: *latents, skip_blocks, skip_maps };
    config.validate().map_err(|reason| WeightsError::Architecture { file: file(), reason })?;
    Ok(config)
}

/// Takes tensors out of a state dict with shape checks, remembering which keys were used.
struct Loader<'a> {
    sd: &'a StateDict,
    device: &'a Device,
    used: BTreeSet<String>,
}

impl<'a> Loader<'a> {
    fn raw(&mut self, key: &str, expected: &[usize]) -> Result<&'a StateTensor, WeightsError> {
        let t = self
            .sd
            .tensors
            .get(key)
            .ok_or_else(|| WeightsError::Missing { file: self.sd.source.clone(), key: key.into() })?;
        if t.shape != expected {
            return Err(WeightsError::Shape {
                file: self.sd.source.clone(),
                key: key.into(),
                expected: expected.to_vec(),
                found: t.shape.clone(),
            });
        }
        self.used.insert(key.to_string());
        Ok(t)
    }

    fn take<const D: usize>(&mut self, key: &str, expected: [usize; D]) -> Result<Tensor<D>, WeightsError> {
        let t = self.raw(key, &expected)?;
        Ok(Tensor::from_data(TensorData::new(t.values.clone(), expected), self.device))
    }

    fn has(&self, key: &str) -> bool {
        self.sd.tensors.contains_key(key)
    }

    fn batch_norm(&mut self, prefix: &str, c: usize) -> Result<BatchNorm, WeightsError> {
        Ok(BatchNorm::new(self.take(&format!("{prefix}.weight"), [c])?, self.take(&format!("{prefix}.bias"), [c])?))
    }

    fn conv(&mut self, prefix: &str, cout: usize, cin: usize, k: usize, bias: bool) -> Result<Conv, WeightsError> {
        let w = self.take(&format!("{prefix}.weight"), [cout, cin, k, k])?;
        let b = if bias { Some(self.take(&format!("{prefix}.bias"), [cout])?) } else { None };
        Ok(Conv::new(w, b))
    }

    fn linear(&mut self, prefix: &str, out: usize, inp: usize) -> Result<Linear, WeightsError> {
        Ok(Linear::new(
            self.take(&format!("{prefix}.weight"), [out, inp])?,
            self.take(&format!("{prefix}.bias"), [out])?,
        ))
    }

    /// A ChebConv in either torch_geometric layout: ≥ 2 (`lins.k.weight`, (out, in) each) or
    /// older (`weight`, (K, in, out)).
    fn cheb(&mut self, prefix: &str, k: usize, fin: usize, fout: usize, bias: bool) -> Result<ChebConv, WeightsError> {
        let old_key = format!("{prefix}.weight");
        let weight = if self.has(&old_key) && !self.has(&format!("{prefix}.lins.0.weight")) {
            self.take(&old_key, [k, fin, fout])?
        } else {
            let mut stacked = Vec::with_capacity(k * fin * fout);
            for i in 0..k {
                let w = self.raw(&format!("{prefix}.lins.{i}.weight"), &[fout, fin])?;
                // (out, in) → (in, out)
                for r in 0..fin {
                    stacked.extend((0..fout).map(|c| w.values[c * fin + r]));
                }
            }
            Tensor::from_data(TensorData::new(stacked, [k, fin, fout]), self.device)
        };
        let b = if bias { Some(self.take(&format!("{prefix}.bias"), [fout])?) } else { None };
        Ok(ChebConv::new(weight, b))
    }

    fn finish(self) -> Result<(), WeightsError> {
        let extra: Vec<&String> = self.sd.tensors.keys().filter(|k| !self.used.contains(*k)).collect();
        if extra.is_empty() {
            return Ok(());
        }
        let mut keys = extra.iter().take(5).map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ");
        if extra.len() > 5 {
            keys += &format!(" and {} more", extra.len() - 5);
        }
        Err(WeightsError::Unexpected { file: self.sd.source.clone(), keys })
    }
}

/// Build the encoder and decoder of `config` from `sd`, checking every tensor.
pub fn build(sd: &StateDict, config: &ModelConfig, device: &Device) -> Result<(Encoder, Decoder), WeightsError> {
    let mut l = Loader { sd, device, used: BTreeSet::new() };
    let mut blocks = Vec::new();
    let mut cin = 1;
    for (i, &c) in config.channels.iter().enumerate() {
        let p = format!("encoder.dconv_down{}", i + 1);
        let shortcut = if cin != c {
            Some(Shortcut {
                conv: l.conv(&format!("{p}.skip.0"), c, cin, 1, false)?,
                norm: l.batch_norm(&format!("{p}.skip.1"), c)?,
            })
        } else {
            None
        };
        blocks.push(ResidualBlock {
            norm1: l.batch_norm(&format!("{p}.block.0"), cin)?,
            conv1: l.conv(&format!("{p}.block.2"), c, cin, 3, true)?,
            norm2: l.batch_norm(&format!("{p}.block.3"), c)?,
            conv2: l.conv(&format!("{p}.block.5"), c, c, 3, true)?,
            shortcut,
        });
        cin = c;
    }
    let flat = config.flat_features();
    let encoder = Encoder {
        blocks,
        fc_mu: l.linear("encoder.fc_mu", config.latents, flat)?,
        fc_logvar: l.linear("encoder.fc_logvar", config.latents, flat)?,
    };

    let (nf, hid) = (DECODER_FEATURES, DECODER_HIDDEN);
    let [look1, look2] = config.skip_widths();
    let skip = |l: &mut Loader, name: &str, fin: usize| -> Result<Option<SkipBlock>, WeightsError> {
        if !config.skip_blocks {
            return Ok(None);
        }
        Ok(Some(SkipBlock { graph_conv_pre: l.cheb(&format!("{name}.graphConv_pre"), 1, fin, 2, false)? }))
    };
    let decoder = Decoder {
        dec_lin: l.linear("dec_lin", nf * NUM_COARSE_NODES, config.latents)?,
        up6: l.cheb("graphConv_up6", CHEB_K, nf, nf, true)?,
        up5: l.cheb("graphConv_up5", CHEB_K, nf, nf, true)?,
        sc1: skip(&mut l, "SC_1", nf)?,
        up4: l.cheb("graphConv_up4", CHEB_K, nf + look1, hid, true)?,
        up3: l.cheb("graphConv_up3", CHEB_K, hid, hid, true)?,
        sc2: skip(&mut l, "SC_2", hid)?,
        up2: l.cheb("graphConv_up2", CHEB_K, hid + look2, hid, true)?,
        up1: l.cheb("graphConv_up1", 1, hid, 2, false)?,
    };
    l.finish()?;
    Ok((encoder, decoder))
}

fn host<const D: usize>(t: &Tensor<D>) -> StateTensor {
    StateTensor { shape: t.dims().to_vec(), values: t.try_to_vec_as::<f32>().expect("f32 data") }
}

/// The released-layout state dict of a model (ChebConv as `lins.k.weight`).
pub fn state_dict(encoder: &Encoder, decoder: &Decoder) -> StateDict {
    let mut out = BTreeMap::new();
    let mut put = |key: String, t: StateTensor| {
        out.insert(key, t);
    };
    for (i, b) in encoder.blocks.iter().enumerate() {
        let p = format!("encoder.dconv_down{}", i + 1);
        for (name, bn) in [("block.0", &b.norm1), ("block.3", &b.norm2)] {
            put(format!("{p}.{name}.weight"), host(&bn.weight.val()));
            put(format!("{p}.{name}.bias"), host(&bn.bias.val()));
        }
        for (name, conv) in [("block.2", &b.conv1), ("block.5", &b.conv2)] {
            put(format!("{p}.{name}.weight"), host(&conv.weight.val()));
            if let Some(bias) = &conv.bias {
                put(format!("{p}.{name}.bias"), host(&bias.val()));
            }
        }
        if let Some(s) = &b.shortcut {
            put(format!("{p}.skip.0.weight"), host(&s.conv.weight.val()));
            put(format!("{p}.skip.1.weight"), host(&s.norm.weight.val()));
            put(format!("{p}.skip.1.bias"), host(&s.norm.bias.val()));
        }
    }
    for (name, lin) in
        [("encoder.fc_mu", &encoder.fc_mu), ("encoder.fc_logvar", &encoder.fc_logvar), ("dec_lin", &decoder.dec_lin)]
    {
        put(format!("{name}.weight"), host(&lin.weight.val()));
        put(format!("{name}.bias"), host(&lin.bias.val()));
    }
    let mut chebs = vec![
        ("graphConv_up6", &decoder.up6),
        ("graphConv_up5", &decoder.up5),
        ("graphConv_up4", &decoder.up4),
        ("graphConv_up3", &decoder.up3),
        ("graphConv_up2", &decoder.up2),
        ("graphConv_up1", &decoder.up1),
    ];
    if let Some(sc) = &decoder.sc1 {
        chebs.push(("SC_1.graphConv_pre", &sc.graph_conv_pre));
    }
    if let Some(sc) = &decoder.sc2 {
        chebs.push(("SC_2.graphConv_pre", &sc.graph_conv_pre));
    }
    for (name, conv) in chebs {
        let w = host(&conv.weight.val());
        let [k, fin, fout] = conv.dims();
        for i in 0..k {
            // (in, out) → (out, in)
            let values = (0..fout)
                .flat_map(|c| (0..fin).map(move |r| (c, r)))
                .map(|(c, r)| w.values[(i * fin + r) * fout + c])
                .collect();
            put(format!("{name}.lins.{i}.weight"), StateTensor { shape: vec![fout, fin], values });
        }
        if let Some(b) = &conv.bias {
            put(format!("{name}.bias"), host(&b.val()));
        }
    }
    StateDict { source: PathBuf::from("<model>"), tensors: out, metadata: BTreeMap::new() }
}

/// Every key of the released layout for `config`, with its shape and PyTorch's default
/// initialisation bound (uniform ±bound; `None`: BatchNorm, weight 1 and bias 0).
pub fn layout(config: &ModelConfig) -> Vec<(String, Vec<usize>, Option<f32>)> {
    let mut out = Vec::new();
    let fan = |n: usize| Some(1.0 / (n as f32).sqrt());
    let mut cin = 1;
    for (i, &c) in config.channels.iter().enumerate() {
        let p = format!("encoder.dconv_down{}", i + 1);
        for (name, ch) in [("block.0", cin), ("block.3", c)] {
            out.push((format!("{p}.{name}.weight"), vec![ch], None));
            out.push((format!("{p}.{name}.bias"), vec![ch], None));
        }
        for (name, ci) in [("block.2", cin), ("block.5", c)] {
            out.push((format!("{p}.{name}.weight"), vec![c, ci, 3, 3], fan(ci * 9)));
            out.push((format!("{p}.{name}.bias"), vec![c], fan(ci * 9)));
        }
        if cin != c {
            out.push((format!("{p}.skip.0.weight"), vec![c, cin, 1, 1], fan(cin)));
            out.push((format!("{p}.skip.1.weight"), vec![c], None));
            out.push((format!("{p}.skip.1.bias"), vec![c], None));
        }
        cin = c;
    }
    let flat = config.flat_features();
    for name in ["encoder.fc_mu", "encoder.fc_logvar"] {
        out.push((format!("{name}.weight"), vec![config.latents, flat], fan(flat)));
        out.push((format!("{name}.bias"), vec![config.latents], fan(flat)));
    }
    let (nf, hid) = (DECODER_FEATURES, DECODER_HIDDEN);
    out.push(("dec_lin.weight".into(), vec![nf * NUM_COARSE_NODES, config.latents], fan(config.latents)));
    out.push(("dec_lin.bias".into(), vec![nf * NUM_COARSE_NODES], fan(config.latents)));
    let [look1, look2] = config.skip_widths();
    let mut chebs = vec![
        ("graphConv_up6", CHEB_K, nf, nf, true),
        ("graphConv_up5", CHEB_K, nf, nf, true),
        ("graphConv_up4", CHEB_K, nf + look1, hid, true),
        ("graphConv_up3", CHEB_K, hid, hid, true),
        ("graphConv_up2", CHEB_K, hid + look2, hid, true),
        ("graphConv_up1", 1, hid, 2, false),
    ];
    if config.skip_blocks {
        chebs.push(("SC_1.graphConv_pre", 1, nf, 2, false));
        chebs.push(("SC_2.graphConv_pre", 1, hid, 2, false));
    }
    for (name, k, fin, fout, bias) in chebs {
        // torch_geometric initialises ChebConv's linear maps with Glorot and the bias with 0.
        let glorot = Some((6.0 / (fin + fout) as f32).sqrt());
        for i in 0..k {
            out.push((format!("{name}.lins.{i}.weight"), vec![fout, fin], glorot));
        }
        if bias {
            out.push((format!("{name}.bias"), vec![fout], Some(0.0)));
        }
    }
    out
}

/// `sd` (a model of `from`) moved to skip maps `to`: the graph convolutions after a skip block
/// whose map changed keep their weights for the node features and the position, and their
/// weights for the looked-up features start at zero, since features of another block mean
/// something else. Fine-tuning then learns to read the new map from a model that first ignores
/// it.
pub fn with_skip_maps(sd: &StateDict, from: &ModelConfig, to: [usize; 2]) -> Result<StateDict, WeightsError> {
    let target = ModelConfig { skip_maps: to, ..*from };
    target.validate().map_err(|reason| WeightsError::Architecture { file: sd.source.clone(), reason })?;
    let mut out = sd.clone();
    out.metadata.insert(SKIP_MAPS_KEY.to_string(), target.skip_maps_tag());
    if !from.skip_blocks {
        return Ok(out);
    }
    let (old, new) = (from.skip_widths(), target.skip_widths());
    for (i, (conv, kept)) in [("graphConv_up4", DECODER_FEATURES), ("graphConv_up2", DECODER_HIDDEN)].into_iter().enumerate() {
        if from.skip_maps[i] == to[i] {
            continue;
        }
        for k in 0..CHEB_K {
            let key = format!("{conv}.lins.{k}.weight");
            let t = sd.tensors.get(&key).ok_or_else(|| WeightsError::Missing { file: sd.source.clone(), key: key.clone() })?;
            let (fout, fin_old, fin_new) = (t.shape[0], kept + old[i], kept + new[i]);
            if t.shape != [fout, fin_old] {
                return Err(WeightsError::Architecture {
                    file: sd.source.clone(),
                    reason: format!("`{key}` has shape {:?}, not [{fout}, {fin_old}]", t.shape),
                });
            }
            let mut values = vec![0.0; fout * fin_new];
            for (row_new, row_old) in values.chunks_exact_mut(fin_new).zip(t.values.chunks_exact(fin_old)) {
                // Columns: node features, looked-up features, then (x, y).
                row_new[..kept].copy_from_slice(&row_old[..kept]);
                row_new[fin_new - 2..].copy_from_slice(&row_old[fin_old - 2..]);
            }
            out.tensors.insert(key, StateTensor { shape: vec![fout, fin_new], values });
        }
    }
    Ok(out)
}

/// `sd` (a model of `from`) for input side `size` (progressive resizing: train small, then
/// fine-tune larger). Convolutions and decoder do not depend on the input size; fc_mu and
/// fc_logvar read the flattened conv6 grid, which goes from (S/32)² to (size/32)² cells. Each
/// new cell's weight is the old weights integrated over the part of the old grid it covers
/// (in old-cell units), so every old weight is spread over the new grid with its sum intact and
/// a conv6 map that is constant per channel gives the same μ and log σ² at either size.
pub fn with_input_size(sd: &StateDict, from: &ModelConfig, size: usize) -> Result<StateDict, WeightsError> {
    let target = ModelConfig { input_size: size, ..*from };
    target.validate().map_err(|reason| WeightsError::Architecture { file: sd.source.clone(), reason })?;
    let (old, new) = (from.conv6_side(), target.conv6_side());
    let spread = overlap_matrix(old, new);
    let mut out = sd.clone();
    for name in ["encoder.fc_mu.weight", "encoder.fc_logvar.weight"] {
        let t = sd.tensors.get(name).ok_or_else(|| WeightsError::Missing { file: sd.source.clone(), key: name.into() })?;
        if t.shape != [from.latents, from.flat_features()] {
            return Err(WeightsError::Architecture {
                file: sd.source.clone(),
                reason: format!("`{name}` has shape {:?}, not [{}, {}]", t.shape, from.latents, from.flat_features()),
            });
        }
        let mut values = Vec::with_capacity(from.latents * target.flat_features());
        // Rows are outputs; columns are (channel, y, x) cells of conv6.
        for grid in t.values.chunks_exact(old * old) {
            for ny in 0..new {
                for nx in 0..new {
                    let mut w = 0.0;
                    for oy in 0..old {
                        for ox in 0..old {
                            w += spread[ny * old + oy] * spread[nx * old + ox] * grid[oy * old + ox];
                        }
                    }
                    values.push(w);
                }
            }
        }
        out.tensors.insert(name.into(), StateTensor { shape: vec![from.latents, target.flat_features()], values });
    }
    Ok(out)
}

/// (new, old): how much of old cell `o` new cell `n` covers when `old` cells and `new` cells
/// span the same length; each column sums to 1.
fn overlap_matrix(old: usize, new: usize) -> Vec<f32> {
    let r = old as f64 / new as f64;
    let mut m = vec![0.0; new * old];
    for n in 0..new {
        let (a, b) = (n as f64 * r, (n + 1) as f64 * r);
        for o in 0..old {
            let covered = (b.min((o + 1) as f64) - a.max(o as f64)).max(0.0);
            m[n * old + o] = covered as f32;
        }
    }
    m
}

/// Random weights for `config` drawn as PyTorch would initialise a fresh model, from `seed`.
pub fn random_state_dict(config: &ModelConfig, seed: u64) -> StateDict {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut tensors = BTreeMap::new();
    for (key, shape, bound) in layout(config) {
        let n: usize = shape.iter().product();
        let values = match bound {
            Some(b) if b > 0.0 => (0..n).map(|_| rng.random_range(-b..b)).collect(),
            Some(_) => vec![0.0; n],
            None if key.ends_with("weight") => vec![1.0; n],
            None => vec![0.0; n],
        };
        tensors.insert(key, StateTensor { shape, values });
    }
    let metadata = BTreeMap::from([(SKIP_MAPS_KEY.to_string(), config.skip_maps_tag())]);
    StateDict { source: PathBuf::from(format!("<random seed {seed}>")), tensors, metadata }
}
