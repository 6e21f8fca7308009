// Draws the X-ray from its raw-value float texture with window/level and inversion,
// so changing the window only rewrites a uniform: the pixels stay on the GPU.
//
// The window is the DICOM "LINEAR" VOI function, the same as src/xray/window.rs.

struct Params {
    // Image quad in the viewport's normalised device coordinates: x0, y0, x1, y1.
    quad: vec4<f32>,
    // Texture size in texels.
    tex_size: vec2<f32>,
    // Window centre and width in raw units.
    window: vec2<f32>,
    // 1.0 to invert (MONOCHROME1 or the user's toggle).
    invert: f32,
    // 1.0 when the render target is sRGB and expects linear colour.
    srgb_target: f32,
    // Texels covered by one screen pixel along each axis; > 1 when zoomed out.
    texels_per_pixel: f32,
    _pad: f32,
};

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var raw: texture_2d<f32>;

struct VsOut {
    @builtin(position) position: vec4<f32>,
    // Texture coordinate in texels (0..size).
    @location(0) texel: vec2<f32>,
};

@vertex
fn vs_main(@builtin(vertex_index) index: u32) -> VsOut {
    // Triangle strip over the quad: (0,0) (1,0) (0,1) (1,1).
    let corner = vec2<f32>(f32(index & 1u), f32(index >> 1u));
    var out: VsOut;
    let x = mix(params.quad.x, params.quad.z, corner.x);
    let y = mix(params.quad.y, params.quad.w, corner.y);
    out.position = vec4<f32>(x, y, 0.0, 1.0);
    out.texel = corner * params.tex_size;
    return out;
}

// Raw value at integer texel p, clamped to the image.
fn load_raw(p: vec2<i32>) -> f32 {
    let size = vec2<i32>(params.tex_size);
    return textureLoad(raw, clamp(p, vec2<i32>(0), size - vec2<i32>(1)), 0).r;
}

// Bilinear interpolation of raw values (float textures are not filterable everywhere).
fn bilinear(t: vec2<f32>) -> f32 {
    let c = t - vec2<f32>(0.5);
    let base = floor(c);
    let f = c - base;
    let p = vec2<i32>(base);
    let a = mix(load_raw(p), load_raw(p + vec2<i32>(1, 0)), f.x);
    let b = mix(load_raw(p + vec2<i32>(0, 1)), load_raw(p + vec2<i32>(1, 1)), f.x);
    return mix(a, b, f.y);
}

fn voi_linear(x: f32) -> f32 {
    let c = params.window.x;
    let w = max(params.window.y, 1.0);
    return clamp((x - (c - 0.5)) / max(w - 1.0, 1e-6) + 0.5, 0.0, 1.0);
}

fn srgb_to_linear(c: f32) -> f32 {
    if c <= 0.04045 {
        return c / 12.92;
    }
    return pow((c + 0.055) / 1.055, 2.4);
}

@fragment
fn fs_main(in: VsOut) -> @location(0) vec4<f32> {
    // Zoomed out, one screen pixel covers several texels: average an n×n grid of
    // bilinear samples over its footprint so fine structure does not alias.
    let n = i32(clamp(ceil(params.texels_per_pixel), 1.0, 4.0));
    let step = params.texels_per_pixel / f32(n);
    let origin = in.texel - vec2<f32>(0.5 * params.texels_per_pixel - 0.5 * step);
    var sum = 0.0;
    for (var j = 0; j < n; j++) {
        for (var i = 0; i < n; i++) {
            sum += bilinear(origin + vec2<f32>(f32(i), f32(j)) * step);
        }
    }
    var g = voi_linear(sum / f32(n * n));
    if params.invert > 0.5 {
        g = 1.0 - g;
    }
    if params.srgb_target > 0.5 {
        g = srgb_to_linear(g);
    }
    return vec4<f32>(g, g, g, 1.0);
}
