//! The NVIDIA-library paths' scratch memory (used by [`super::nvidia`]; plain bookkeeping,
//! compiled and tested in every CubeCL build, since CI has no CUDA).
#![cfg_attr(not(feature = "cuda"), allow(dead_code))]

use std::sync::Mutex;

use crate::lock;

/// Scratch memory for the libraries' calls: one buffer per device and CUDA stream, grown to the
/// largest request and then kept (PyTorch keeps one per library handle and stream), so that a
/// call neither takes its workspace from CubeCL's pool nor looks its address up. Work on one
/// stream runs in order, so every call queued on it may use the same buffer; a buffer given up
/// when it grows returns to the pool, and only work queued after the calls that used it can
/// reuse it. `H` is what keeps a buffer allocated.
pub(crate) struct Workspaces<H> {
    buffers: Mutex<Vec<Workspace<H>>>,
}

/// One stream's workspace.
struct Workspace<H> {
    device: usize,
    stream: usize,
    bytes: usize,
    address: u64,
    _keep: H,
}

impl<H> Workspaces<H> {
    /// No workspaces yet.
    pub(crate) const fn new() -> Self {
        Self {
            buffers: Mutex::new(Vec::new()),
        }
    }

    /// The address of at least `bytes` of scratch for work on `stream` of `device` (0 when
    /// `bytes` is 0 and none exists yet); `allocate(size)` makes a buffer and gives its address
    /// when there is none or it is smaller.
    pub(crate) fn address(
        &self,
        device: usize,
        stream: usize,
        bytes: usize,
        allocate: impl FnOnce(usize) -> Result<(H, u64), String>,
    ) -> Result<u64, String> {
        let mut buffers = lock(&self.buffers);
        let found = buffers
            .iter()
            .position(|w| w.device == device && w.stream == stream);
        if let Some(index) = found {
            if buffers[index].bytes >= bytes {
                return Ok(buffers[index].address);
            }
            // Given up before the larger one is made, so the pool may reuse its memory.
            buffers.swap_remove(index);
        } else if bytes == 0 {
            return Ok(0);
        }
        let (keep, address) = allocate(bytes)?;
        buffers.push(Workspace {
            device,
            stream,
            bytes,
            address,
            _keep: keep,
        });
        Ok(address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A workspace cache whose allocations are numbered: each gives address `1000 · n + size`.
    fn allocations() -> (Workspaces<usize>, std::cell::Cell<usize>) {
        (Workspaces::new(), std::cell::Cell::new(0))
    }

    fn take(
        (cache, made): &(Workspaces<usize>, std::cell::Cell<usize>),
        device: usize,
        stream: usize,
        bytes: usize,
    ) -> u64 {
        cache
            .address(device, stream, bytes, |size| {
                made.set(made.get() + 1);
                Ok((made.get(), (1000 * made.get() + size) as u64))
            })
            .expect("allocation")
    }

    #[test]
    fn a_workspace_is_kept_and_grows_on_demand() {
        let cache = allocations();
        // Nothing is allocated for calls that need no workspace.
        assert_eq!(take(&cache, 0, 7, 0), 0);
        assert_eq!(cache.1.get(), 0);
        let first = take(&cache, 0, 7, 64);
        assert_eq!(first, 1064);
        // Smaller or equal requests, and calls needing none, reuse it.
        assert_eq!(take(&cache, 0, 7, 16), first);
        assert_eq!(take(&cache, 0, 7, 64), first);
        assert_eq!(take(&cache, 0, 7, 0), first);
        // A larger one replaces it, once.
        assert_eq!(take(&cache, 0, 7, 100), 2100);
        assert_eq!(take(&cache, 0, 7, 80), 2100);
        assert_eq!(cache.1.get(), 2);
        assert_eq!(lock(&cache.0.buffers).len(), 1);
    }

    #[test]
    fn streams_and_devices_never_share_a_workspace() {
        let cache = allocations();
        let a = take(&cache, 0, 7, 64);
        let b = take(&cache, 0, 8, 64);
        let c = take(&cache, 1, 7, 64);
        assert_eq!([a, b, c], [1064, 2064, 3064]);
        assert_eq!(take(&cache, 0, 8, 32), b);
        assert_eq!(lock(&cache.0.buffers).len(), 3);
    }

    #[test]
    fn a_failed_allocation_is_reported_and_not_kept() {
        let cache = allocations();
        let error = cache
            .0
            .address(0, 7, 64, |_| Err("out of memory".to_owned()))
            .expect_err("the allocation fails");
        assert_eq!(error, "out of memory");
        assert!(lock(&cache.0.buffers).is_empty());
        assert_eq!(take(&cache, 0, 7, 64), 1064);
    }
}
