//! `cxr-review info`: an image's metadata as JSON (filled in shortly).

use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Image file to describe.
    pub file: PathBuf,
    /// Also write the image as displayed at its default window to this PNG.
    #[arg(long)]
    pub png: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let img = crate::xray::load(&args.file)?;
    println!("{}x{}", img.width, img.height);
    Ok(())
}
