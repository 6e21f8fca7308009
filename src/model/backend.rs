//! Choosing where the model runs, at run time: wgpu (GPU) or flex (CPU).
//!
//! `auto` takes wgpu only when wgpu finds a real GPU adapter. A software rasteriser (Mesa's
//! lavapipe/llvmpipe) runs the model about 20× slower than flex on the same cores, so `auto`
//! uses flex there; `gpu` still accepts it, so the wgpu path can be tested on machines
//! without a GPU.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};

use burn::tensor::wgpu::wgpu;
use burn::tensor::{Device, DeviceKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// A real GPU when there is one, else the CPU.
    #[default]
    Auto,
    /// wgpu on the best adapter, software ones included; an error when there is none.
    Gpu,
    /// flex on the CPU.
    Cpu,
}

impl FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(DeviceChoice::Auto),
            "gpu" | "wgpu" => Ok(DeviceChoice::Gpu),
            "cpu" | "flex" => Ok(DeviceChoice::Cpu),
            _ => Err(format!("unknown device `{s}`: use auto, gpu or cpu")),
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceChoice::Auto => "auto",
            DeviceChoice::Gpu => "gpu",
            DeviceChoice::Cpu => "cpu",
        })
    }
}

/// A device and a line saying what it is.
#[derive(Debug, Clone)]
pub struct SelectedDevice {
    pub device: Device,
    pub description: String,
    pub is_gpu: bool,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "no GPU adapter found by wgpu (on Linux without a GPU, install Mesa's software Vulkan driver: apt-get install mesa-vulkan-drivers); use --device cpu"
)]
pub struct NoAdapter;

#[derive(Debug, Clone)]
struct Adapter {
    name: String,
    backend: String,
    software: bool,
}

/// The adapters wgpu sees, probed once per process.
fn adapters() -> &'static [Adapter] {
    static ADAPTERS: OnceLock<Vec<Adapter>> = OnceLock::new();
    ADAPTERS.get_or_init(|| {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends: wgpu::Backends::PRIMARY,
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        });
        block_on(instance.enumerate_adapters(wgpu::Backends::PRIMARY))
            .iter()
            .map(|a| {
                let info = a.get_info();
                Adapter {
                    name: info.name.clone(),
                    backend: format!("{:?}", info.backend),
                    software: info.device_type == wgpu::DeviceType::Cpu,
                }
            })
            .collect()
    })
}

/// Native wgpu answers adapter enumeration without waiting; poll until it does.
fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

fn flex() -> SelectedDevice {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    SelectedDevice { device: Device::flex(), description: format!("cpu (flex, {threads} threads)"), is_gpu: false }
}

pub fn select_device(choice: DeviceChoice) -> Result<SelectedDevice, NoAdapter> {
    if choice == DeviceChoice::Cpu {
        return Ok(flex());
    }
    let found = adapters();
    let hardware = found.iter().find(|a| !a.software);
    match (choice, hardware) {
        (_, Some(a)) => Ok(SelectedDevice {
            device: Device::wgpu(DeviceKind::DefaultDevice),
            description: format!("gpu (wgpu, {} via {})", a.name, a.backend),
            is_gpu: true,
        }),
        (DeviceChoice::Gpu, None) => match found.first() {
            Some(a) => Ok(SelectedDevice {
                device: Device::wgpu(DeviceKind::Cpu),
                description: format!("gpu (wgpu, software adapter {} via {})", a.name, a.backend),
                is_gpu: true,
            }),
            None => Err(NoAdapter),
        },
        _ => Ok(flex()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_parse_from_the_command_line_words() {
        assert_eq!("auto".parse::<DeviceChoice>(), Ok(DeviceChoice::Auto));
        assert_eq!("GPU".parse::<DeviceChoice>(), Ok(DeviceChoice::Gpu));
        assert_eq!("cpu".parse::<DeviceChoice>(), Ok(DeviceChoice::Cpu));
        assert!("tpu".parse::<DeviceChoice>().is_err());
        assert_eq!(DeviceChoice::Gpu.to_string(), "gpu");
    }

    #[test]
    fn cpu_is_always_available() {
        let d = select_device(DeviceChoice::Cpu).unwrap();
        assert!(!d.is_gpu && d.description.starts_with("cpu"));
    }
}
