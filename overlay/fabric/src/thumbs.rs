//! Image thumbnails, made on first request and cached under
//! `<data dir>/thumbs/`, keyed by the file's identity and modification, so
//! an edited image gets a new one and stale ones are simply never read.
//!
//! Decoding is bounded: an image's header says how much memory its pixels
//! need, and every decode first takes that much from one budget for the
//! whole process ([`DECODE_BUDGET`]); an image that needs more than the
//! budget is refused before any pixel is decoded. A 470 KB PNG that claims
//! 11000×11000 pixels (484 MB) is refused at its header, and ten at once
//! cannot add up.

use crate::access::{Op, Principal};
use crate::error::{FabricError, Result};
use crate::fabric::{Address, Fabric, blocking};
use crate::store::local;
use std::io::Cursor;
use std::path::Path;

/// Longest side of a thumbnail, in pixels.
pub const THUMB_SIZE: u32 = 256;

/// Bytes of decoded pixels all thumbnail decodes together may hold (a
/// 48-megapixel photo needs 144 MiB as RGB).
pub const DECODE_BUDGET: u64 = 192 << 20;

/// The budget, in KiB (a semaphore counts permits in `u32`).
static DECODE_PERMITS: tokio::sync::Semaphore =
    tokio::sync::Semaphore::const_new((DECODE_BUDGET >> 10) as usize);

/// Whether Glow can make a thumbnail of a file with this name.
pub fn can_thumbnail(name: &str) -> bool {
    let ext = name.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    matches!(ext.as_str(), "jpg" | "jpeg" | "png" | "gif" | "webp")
}

impl Fabric {
    /// A JPEG thumbnail of an image (at most [`THUMB_SIZE`] pixels a side).
    pub async fn thumbnail(&self, who: &Principal, addr: &Address) -> Result<Vec<u8>> {
        self.thumbnail_sized(who, addr, THUMB_SIZE).await
    }

    /// A JPEG thumbnail of an image, at most `side` pixels a side (the LAN
    /// media front asks for 160, DLNA's `JPEG_TN`).
    pub async fn thumbnail_sized(
        &self,
        who: &Principal,
        addr: &Address,
        side: u32,
    ) -> Result<Vec<u8>> {
        let side = side.clamp(16, 1024);
        if !can_thumbnail(addr.path.name()) {
            return Err(FabricError::Invalid("not an image Glow can preview".into()));
        }
        let r = self.resolve(who, addr, Op::Content).await?;
        let cache_dir = self.data_dir().join("thumbs");
        let looked_up = blocking(move || {
            let file = r.root()?.open_file(&r.rel)?;
            let meta = file.metadata()?;
            let key = blake3::hash(
                format!(
                    "{}\0{}\0{}\0{}\0{side}",
                    r.folder.id,
                    r.rel,
                    meta.len(),
                    local::mtime_ns(&meta)
                )
                .as_bytes(),
            )
            .to_hex()
            .to_string();
            let cached = cache_dir.join(&key[..2]).join(format!("{key}.jpg"));
            match std::fs::read(&cached) {
                Ok(bytes) => Ok(Ok(bytes)),
                // The header first: how much the pixels need.
                Err(_) => Ok(Err((decoded_size(&file)?, file, cached))),
            }
        })
        .await?;
        let (need, file, cached) = match looked_up {
            Ok(bytes) => return Ok(bytes),
            Err(miss) => miss,
        };
        let kib = u32::try_from(need.div_ceil(1024))
            .ok()
            .filter(|k| u64::from(*k) << 10 <= DECODE_BUDGET)
            .ok_or_else(too_big)?;
        let _held = DECODE_PERMITS
            .acquire_many(kib)
            .await
            .map_err(|_| too_big())?;
        blocking(move || {
            let bytes = render(&file, side)?;
            store(&cached, &bytes);
            Ok(bytes)
        })
        .await
    }
}

fn too_big() -> FabricError {
    FabricError::Invalid("this image is too large to preview".into())
}

/// An image reader over `file` from its start.
fn reader(file: &std::fs::File) -> Result<image::ImageReader<std::io::BufReader<std::fs::File>>> {
    use std::io::{Seek, SeekFrom};
    let mut f = file.try_clone()?;
    f.seek(SeekFrom::Start(0))?;
    Ok(image::ImageReader::new(std::io::BufReader::new(f)).with_guessed_format()?)
}

fn unreadable(e: image::ImageError) -> FabricError {
    FabricError::Invalid(format!("cannot read this image: {e}"))
}

/// How many bytes an image's pixels take decoded, from its header alone.
fn decoded_size(file: &std::fs::File) -> Result<u64> {
    use image::ImageDecoder;
    let decoder = reader(file)?.into_decoder().map_err(unreadable)?;
    Ok(decoder.total_bytes())
}

fn render(file: &std::fs::File, side: u32) -> Result<Vec<u8>> {
    use image::ImageDecoder;
    let mut decoder = reader(file)?.into_decoder().map_err(unreadable)?;
    // The caller reserved what the header claimed; the decoder may not
    // allocate beyond it (a file whose header lies is refused).
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(
        decoder
            .total_bytes()
            .saturating_add(1 << 20)
            .min(DECODE_BUDGET),
    );
    decoder.set_limits(limits).map_err(unreadable)?;
    let img = image::DynamicImage::from_decoder(decoder).map_err(unreadable)?;
    let thumb = img.thumbnail(side, side).to_rgb8();
    let mut out = Cursor::new(Vec::new());
    thumb
        .write_to(&mut out, image::ImageFormat::Jpeg)
        .map_err(unreadable)?;
    Ok(out.into_inner())
}

/// Writes a cache entry atomically; a failure only costs a re-render later.
fn store(path: &Path, bytes: &[u8]) {
    let Some(dir) = path.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let tmp = dir.join(format!(
        ".tmp-{}",
        crate::catalog::hex(&crate::catalog::random_bytes::<8>())
    ));
    if std::fs::write(&tmp, bytes).is_ok() && std::fs::rename(&tmp, path).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_small_jpeg_of_a_png() {
        let dir = tempfile::tempdir().unwrap();
        let png = dir.path().join("big.png");
        image::RgbImage::from_pixel(1000, 500, image::Rgb([200, 30, 30]))
            .save(&png)
            .unwrap();
        let open = |p: &Path| std::fs::File::open(p).unwrap();
        let jpeg = render(&open(&png), THUMB_SIZE).unwrap();
        let back = image::load_from_memory(&jpeg).unwrap();
        assert_eq!((back.width(), back.height()), (256, 128));
        std::fs::write(dir.path().join("junk.png"), b"not a png").unwrap();
        assert!(render(&open(&dir.path().join("junk.png")), THUMB_SIZE).is_err());
        assert_eq!(decoded_size(&open(&png)).unwrap(), 1000 * 500 * 3);
        assert!(can_thumbnail("A.JPG") && !can_thumbnail("a.txt"));
    }
}
