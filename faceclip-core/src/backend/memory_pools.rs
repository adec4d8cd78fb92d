//! The layout of CubeCL's memory pools on Burn's CUDA backend: CubeCL's preset, or pools fitted
//! so that a large tensor never reserves much more than itself.

#[cfg(feature = "cube-kernels")]
use cubecl_runtime::memory_management::{MemoryPoolOptions, PoolType};

/// How the CUDA backend's memory pool is laid out (choose before the first CUDA tensor, with
/// [`set_cuda_memory_pools`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CudaMemoryPools {
    /// CubeCL's preset: every tensor is a slice of a shared page, with pages of a quarter of
    /// the card's memory divided by powers of 4 (on an 80 GB H100: 20 MiB to 5 GiB), so one
    /// live tensor of 40 to 320 MiB holds a whole 1.25 GiB page.
    #[default]
    CubeclPreset,
    /// Tensors up to 32 MiB share pages of at most 128 MiB; each larger tensor gets a page of
    /// its own, sized by buckets 1.25× apart, so it reserves at most a quarter more than itself.
    Fitted,
}

/// The largest tensor that shares pages in [`CudaMemoryPools::Fitted`].
// The layout is built on CUDA only, but tested in every CubeCL build (CI has no CUDA tests).
#[cfg(feature = "cube-kernels")]
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
const FITTED_SHARED_MAX: u64 = 32 << 20;

/// Growth between two size buckets of the fitted layout's own-page pools.
#[cfg(feature = "cube-kernels")]
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
const FITTED_BUCKET_GROWTH: f64 = 1.25;

/// Lays out the memory pools of every CUDA device started from now on. Fails without the
/// `cuda` feature, and once a CUDA device has started (its pools exist already).
pub fn set_cuda_memory_pools(pools: CudaMemoryPools) -> Result<(), crate::error::BackendError> {
    #[cfg(feature = "cuda")]
    {
        let build: fn(&cubecl::ir::MemoryDeviceProperties) -> cubecl::MemoryConfiguration =
            match pools {
                CudaMemoryPools::CubeclPreset => |_| cubecl::MemoryConfiguration::default(),
                CudaMemoryPools::Fitted => |properties| cubecl::MemoryConfiguration::Custom {
                    pool_options: fitted_pools(properties.max_page_size, properties.alignment),
                },
            };
        cubecl::cuda::set_memory_configuration(build).map_err(|()| {
            crate::error::BackendError::DeviceStarted {
                what: "memory pools",
            }
        })
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = pools;
        Err(crate::error::BackendError::NotBuilt { feature: "cuda" })
    }
}

/// The pools of [`CudaMemoryPools::Fitted`] for a device whose largest allocation is
/// `max_page` bytes, aligned to `alignment`; CubeCL takes the first pool that accepts a size.
#[cfg(feature = "cube-kernels")]
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
fn fitted_pools(max_page: u64, alignment: u64) -> Vec<MemoryPoolOptions> {
    const MIB: u64 = 1 << 20;
    let alignment = alignment.max(1);
    let cap = (max_page / alignment * alignment).max(alignment);
    let aligned = |size: u64| size.next_multiple_of(alignment).min(cap);
    // Zero-sized buffers, as in CubeCL's preset.
    let mut pools = vec![MemoryPoolOptions {
        pool_type: PoolType::ExclusivePages { max_alloc_size: 0 },
        dealloc_period: None,
    }];
    let mut largest = 0;
    for (page_size, max_slice_size) in [
        (4 * MIB, MIB / 4),
        (32 * MIB, 4 * MIB),
        (128 * MIB, FITTED_SHARED_MAX),
    ] {
        if max_slice_size < cap {
            pools.push(MemoryPoolOptions {
                pool_type: PoolType::SlicedPages {
                    page_size: aligned(page_size),
                    max_slice_size,
                },
                dealloc_period: None,
            });
            largest = max_slice_size;
        }
    }
    // Larger tensors: a page each, from buckets up to the device's limit.
    while largest < cap {
        largest = aligned((largest as f64 * FITTED_BUCKET_GROWTH) as u64 + 1);
        pools.push(MemoryPoolOptions {
            pool_type: PoolType::ExclusivePages {
                max_alloc_size: largest,
            },
            dealloc_period: None,
        });
    }
    pools
}

#[cfg(all(test, feature = "cube-kernels"))]
mod tests {
    use super::*;

    /// The largest allocation each pool accepts, in order.
    fn limits(pools: &[MemoryPoolOptions]) -> Vec<u64> {
        pools
            .iter()
            .map(|pool| match pool.pool_type {
                PoolType::ExclusivePages { max_alloc_size } => max_alloc_size,
                PoolType::SlicedPages { max_slice_size, .. } => max_slice_size,
            })
            .collect()
    }

    #[test]
    fn fitted_pools_cover_every_size_with_little_slack() {
        // An 80 GB H100 (CubeCL's page limit is a quarter of the memory) and an H200.
        for max_page in [79_645 << 18, 35_949 << 20] {
            let pools = fitted_pools(max_page, 512);
            let limits = limits(&pools);
            assert!(limits.windows(2).all(|w| w[0] < w[1]), "{limits:?}");
            assert_eq!(*limits.last().unwrap(), max_page / 512 * 512);
            assert!(pools.len() < 64, "{} pools", pools.len());
            for pool in &pools {
                match pool.pool_type {
                    PoolType::SlicedPages {
                        page_size,
                        max_slice_size,
                    } => {
                        assert!(page_size <= 128 << 20 && page_size >= 4 * max_slice_size);
                        assert_eq!(page_size % 512, 0);
                    }
                    PoolType::ExclusivePages { max_alloc_size } => {
                        assert_eq!(max_alloc_size % 512, 0)
                    }
                }
            }
            // A tensor just above a bucket's lower bound reserves at most ~25 % more.
            for w in limits.windows(2).filter(|w| w[0] >= FITTED_SHARED_MAX) {
                assert!(w[1] as f64 <= w[0] as f64 * 1.26, "{w:?}");
            }
        }
    }

    #[test]
    fn fitted_pools_on_a_small_device_stop_at_its_limit() {
        let limits = limits(&fitted_pools(16 << 20, 256));
        assert_eq!(limits[..3], [0, 1 << 18, 4 << 20]);
        assert_eq!(*limits.last().unwrap(), 16 << 20);
        assert!(limits.windows(2).all(|w| w[0] < w[1]), "{limits:?}");
    }
}

#[cfg(all(test, not(feature = "cuda")))]
#[test]
fn cuda_memory_pools_need_the_cuda_feature() {
    let error = set_cuda_memory_pools(CudaMemoryPools::Fitted).unwrap_err();
    assert!(error.to_string().contains("`cuda` feature"), "{error}");
}
