//! GPU side of the viewer: the X-ray lives in an `R32Float` texture of raw values,
//! uploaded once per image; `shaders/xray_image.wgsl` applies window/level,
//! inversion and the zoom/pan quad every frame from a small uniform block.

use eframe::egui_wgpu::{self, wgpu};
use std::sync::Arc;

use crate::xray::{Window, XrayImage};

const SHADER: &str = include_str!("../../shaders/xray_image.wgsl");

/// Mirrors `Params` in the shader.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    quad: [f32; 4],
    tex_size: [f32; 2],
    window: [f32; 2],
    invert: f32,
    srgb_target: f32,
    texels_per_pixel: f32,
    _pad: f32,
}

/// The texture of the image currently shown, keyed by the image's identity.
struct GpuImage {
    key: u64,
    bind_group: wgpu::BindGroup,
    /// Texture size, smaller than the image when it had to be decimated.
    size: [u32; 2],
}

/// Pipeline and the current image, stored in egui-wgpu's callback resources.
pub struct XrayRenderer {
    pipeline: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
    params: wgpu::Buffer,
    srgb_target: bool,
    max_side: u32,
    image: Option<GpuImage>,
}

impl XrayRenderer {
    /// Create the pipeline once and register it with the egui renderer.
    pub fn install(rs: &egui_wgpu::RenderState) {
        let device = &rs.device;
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("xray_image"),
            source: wgpu::ShaderSource::Wgsl(SHADER.into()),
        });
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("xray_image"),
            entries: &[
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::VERTEX_FRAGMENT,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                },
                wgpu::BindGroupLayoutEntry {
                    binding: 1,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Texture {
                        sample_type: wgpu::TextureSampleType::Float { filterable: false },
                        view_dimension: wgpu::TextureViewDimension::D2,
                        multisampled: false,
                    },
                    count: None,
                },
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("xray_image"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some("xray_image"),
            layout: Some(&pipeline_layout),
            vertex: wgpu::VertexState {
                module: &module,
                entry_point: Some("vs_main"),
                buffers: &[],
                compilation_options: Default::default(),
            },
            primitive: wgpu::PrimitiveState {
                topology: wgpu::PrimitiveTopology::TriangleStrip,
                ..Default::default()
            },
            depth_stencil: None,
            multisample: wgpu::MultisampleState::default(),
            fragment: Some(wgpu::FragmentState {
                module: &module,
                entry_point: Some("fs_main"),
                targets: &[Some(wgpu::ColorTargetState {
                    format: rs.target_format,
                    blend: None,
                    write_mask: wgpu::ColorWrites::ALL,
                })],
                compilation_options: Default::default(),
            }),
            multiview_mask: None,
            cache: None,
        });
        let params = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("xray_params"),
            size: std::mem::size_of::<Params>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let renderer = XrayRenderer {
            pipeline,
            layout,
            params,
            srgb_target: rs.target_format.is_srgb(),
            max_side: device.limits().max_texture_dimension_2d,
            image: None,
        };
        rs.renderer.write().callback_resources.insert(renderer);
    }

    fn upload(&mut self, device: &wgpu::Device, queue: &wgpu::Queue, image: &XrayImage, key: u64) {
        // Images larger than the GPU allows are shown decimated; values stay exact on the CPU.
        let step = image.width.max(image.height).div_ceil(self.max_side).max(1);
        let (w, h) = (image.width.div_ceil(step), image.height.div_ceil(step));
        let decimated: Vec<f32>;
        let texels: &[f32] = if step == 1 {
            &image.pixels
        } else {
            decimated = (0..h)
                .flat_map(|y| (0..w).map(move |x| (x * step, y * step)))
                .map(|(x, y)| image.pixels[(y * image.width + x) as usize])
                .collect();
            &decimated
        };
        let size = wgpu::Extent3d { width: w, height: h, depth_or_array_layers: 1 };
        let texture = device.create_texture(&wgpu::TextureDescriptor {
            label: Some("xray_raw"),
            size,
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: wgpu::TextureFormat::R32Float,
            usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
            view_formats: &[],
        });
        queue.write_texture(
            wgpu::TexelCopyTextureInfo {
                texture: &texture,
                mip_level: 0,
                origin: wgpu::Origin3d::ZERO,
                aspect: wgpu::TextureAspect::All,
            },
            bytemuck::cast_slice(texels),
            wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(4 * w), rows_per_image: Some(h) },
            size,
        );
        let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("xray_image"),
            layout: &self.layout,
            entries: &[
                wgpu::BindGroupEntry { binding: 0, resource: self.params.as_entire_binding() },
                wgpu::BindGroupEntry { binding: 1, resource: wgpu::BindingResource::TextureView(&view) },
            ],
        });
        self.image = Some(GpuImage { key, bind_group, size: [w, h] });
    }
}

/// One frame's draw of the image: what to show and how.
pub struct XrayPaint {
    pub image: Arc<XrayImage>,
    /// Changes whenever a different image is shown; triggers the one upload.
    pub image_id: u64,
    /// Image rectangle in the viewport's normalised device coordinates (x0, y0, x1, y1).
    pub quad_ndc: [f32; 4],
    pub window: Window,
    pub invert: bool,
    /// Image pixels per physical screen pixel.
    pub texels_per_pixel: f32,
}

impl egui_wgpu::CallbackTrait for XrayPaint {
    fn prepare(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        _screen: &egui_wgpu::ScreenDescriptor,
        _encoder: &mut wgpu::CommandEncoder,
        resources: &mut egui_wgpu::CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        let Some(r) = resources.get_mut::<XrayRenderer>() else { return Vec::new() };
        if r.image.as_ref().map(|g| g.key) != Some(self.image_id) {
            r.upload(device, queue, &self.image, self.image_id);
        }
        let Some(size) = r.image.as_ref().map(|g| g.size) else { return Vec::new() };
        let decimation = self.image.width as f32 / size[0] as f32;
        let params = Params {
            quad: self.quad_ndc,
            tex_size: [size[0] as f32, size[1] as f32],
            window: [self.window.center as f32, self.window.width as f32],
            invert: if self.invert { 1.0 } else { 0.0 },
            srgb_target: if r.srgb_target { 1.0 } else { 0.0 },
            texels_per_pixel: self.texels_per_pixel / decimation,
            _pad: 0.0,
        };
        queue.write_buffer(&r.params, 0, bytemuck::bytes_of(&params));
        Vec::new()
    }

    fn paint(
        &self,
        _info: egui::PaintCallbackInfo,
        pass: &mut wgpu::RenderPass<'static>,
        resources: &egui_wgpu::CallbackResources,
    ) {
        let Some(r) = resources.get::<XrayRenderer>() else { return };
        let Some(gpu) = &r.image else { return };
        pass.set_pipeline(&r.pipeline);
        pass.set_bind_group(0, &gpu.bind_group, &[]);
        pass.draw(0..4, 0..1);
    }
}
