//! ONNX Runtime, embedded zstd-compressed in the binary and loaded from an in-memory file
//! (memfd): nothing is written to disk and nothing is downloaded.

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

/// `libonnxruntime.so` from the official `onnxruntime` wheel (installer/vendor-onnxruntime.sh).
static EMBEDDED_LIBRARY: &[u8] =
    include_bytes!("../../../vendor/onnxruntime/libonnxruntime.so.zst");

/// SHA-256 of the decompressed library, as pinned in vendor/onnxruntime/SHA256SUMS.
pub const LIBRARY_SHA256: &str = "fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3";

/// The ONNX Runtime version the embedded library is.
pub const LIBRARY_VERSION: &str = "1.31.1";

/// Where ONNX Runtime comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeSource {
    /// The library embedded in this binary, loaded from memory.
    Embedded,
    /// A library file on disk (`--onnxruntime-lib`), e.g. a build for other hardware.
    File(PathBuf),
}

impl RuntimeSource {
    /// The library file given, else the embedded one.
    pub fn from_library(file: Option<PathBuf>) -> Self {
        file.map_or(Self::Embedded, Self::File)
    }
}

/// A loaded ONNX Runtime: the process-wide environment sessions are created in.
pub struct Runtime {
    pub environment: ort::environment::Environment,
    /// Where it was loaded from, for logs and `/readyz`.
    pub origin: String,
    /// Keeps the in-memory file open for as long as the library is mapped.
    _memory_file: Option<std::fs::File>,
}

static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();

/// Loads ONNX Runtime once per process; later calls return the first outcome, whatever
/// source they name. An error says why, in words an operator can act on.
pub fn load(source: &RuntimeSource) -> Result<&'static Runtime, &'static str> {
    RUNTIME
        .get_or_init(|| load_uncached(source))
        .as_ref()
        .map_err(String::as_str)
}

/// The runtime if an earlier [`load`] succeeded.
pub fn loaded() -> Option<&'static Runtime> {
    RUNTIME.get().and_then(|outcome| outcome.as_ref().ok())
}

fn load_uncached(source: &RuntimeSource) -> Result<Runtime, String> {
    let (path, memory_file, origin) = match source {
        RuntimeSource::Embedded => {
            let file = embedded_in_memory_file()?;
            let path = PathBuf::from(format!("/proc/self/fd/{}", file_descriptor(&file)));
            let origin = format!("embedded ONNX Runtime {LIBRARY_VERSION} (in memory)");
            (path, Some(file), origin)
        }
        RuntimeSource::File(path) => (path.clone(), None, path.display().to_string()),
    };
    let builder = ort::init_from(&path).map_err(|e| format!("cannot load ONNX Runtime: {e}"))?;
    let environment = builder
        .with_name("airlock")
        .with_telemetry(false)
        .build()
        .map_err(|e| format!("cannot start ONNX Runtime: {e}"))?;
    Ok(Runtime {
        environment,
        origin,
        _memory_file: memory_file,
    })
}

fn file_descriptor(file: &std::fs::File) -> i32 {
    use std::os::fd::AsRawFd;
    file.as_raw_fd()
}

/// Decompresses the embedded library into a sealed-off anonymous memory file after
/// checking it is exactly the pinned build.
fn embedded_in_memory_file() -> Result<std::fs::File, String> {
    let library = decompress(EMBEDDED_LIBRARY)?;
    let digest = crate::store::instance_key::hex(
        ring::digest::digest(&ring::digest::SHA256, &library).as_ref(),
    );
    if digest != LIBRARY_SHA256 {
        return Err(format!(
            "the embedded ONNX Runtime does not match its pinned SHA-256 ({digest})"
        ));
    }
    let mut file = memory_file("libonnxruntime.so")
        .map_err(|e| format!("cannot create an in-memory file for ONNX Runtime: {e}"))?;
    file.write_all(&library)
        .map_err(|e| format!("cannot fill the in-memory file for ONNX Runtime: {e}"))?;
    Ok(file)
}

fn decompress(compressed: &[u8]) -> Result<Vec<u8>, String> {
    let mut decoder = ruzstd::decoding::StreamingDecoder::new(compressed)
        .map_err(|e| format!("the embedded ONNX Runtime is corrupt: {e}"))?;
    let mut out = Vec::with_capacity(32 << 20);
    std::io::Read::read_to_end(&mut decoder, &mut out)
        .map_err(|e| format!("the embedded ONNX Runtime is corrupt: {e}"))?;
    Ok(out)
}

/// An executable anonymous memory file. Kernels since 6.3 want executability asked for
/// (`MFD_EXEC`); older ones reject the flag, and all memfds are executable there.
fn memory_file(name: &str) -> std::io::Result<std::fs::File> {
    use rustix::fs::{MemfdFlags, memfd_create};
    let fd = match memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::EXEC) {
        Err(rustix::io::Errno::INVAL) => memfd_create(name, MemfdFlags::CLOEXEC)?,
        other => other?,
    };
    Ok(std::fs::File::from(fd))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_digest_matches_the_vendored_sums_file() {
        let sums = include_str!("../../../vendor/onnxruntime/SHA256SUMS");
        let line = format!("{LIBRARY_SHA256}  libonnxruntime.so.{LIBRARY_VERSION}");
        assert!(sums.lines().any(|l| l == line), "{sums}");
    }

    #[test]
    fn embedded_runtime_loads_from_memory_not_from_a_file() {
        let runtime = load(&RuntimeSource::Embedded).unwrap();
        assert!(runtime.origin.contains("in memory"), "{}", runtime.origin);
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        assert!(
            maps.lines().any(|l| l.contains("/memfd:libonnxruntime.so")),
            "ONNX Runtime is not mapped from a memfd"
        );
        assert!(loaded().is_some());
    }

    #[test]
    fn embedded_library_decompresses_to_the_pinned_build() {
        let library = decompress(EMBEDDED_LIBRARY).unwrap();
        let digest = crate::store::instance_key::hex(
            ring::digest::digest(&ring::digest::SHA256, &library).as_ref(),
        );
        assert_eq!(digest, LIBRARY_SHA256);
        assert!(decompress(&EMBEDDED_LIBRARY[..1000]).is_err());
    }
}
