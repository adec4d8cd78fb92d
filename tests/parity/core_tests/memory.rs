//! `backend::device_memory`: what the GPU backends' memory pool reports, and nothing on ndarray;
//! that weights take no more of the pool than their own size, and work queued before them no
//! part of their persistent buffers.

use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use faceclip_core::backend::{device_memory, DeviceMemory, NdArray};
use faceclip_core::weights::Weights;

/// A live 4 MiB tensor is counted in use, and the pool reserves at least what is in use. (Other
/// tests share the device, so only lower bounds hold.)
fn check_pool_counts_a_live_tensor<B: Backend>(device: &B::Device) {
    let tensor = Tensor::<B, 2>::random([1024, 1024], Distribution::Default, device);
    B::sync(device).expect("device sync");
    let memory = device_memory::<B>(device).expect("a CubeCL backend reports its pool");
    println!("{}: {memory:?}", B::name(device));
    assert!(memory.in_use_bytes >= 4 << 20, "{memory:?}");
    assert!(memory.reserved_bytes >= memory.in_use_bytes, "{memory:?}");
    drop(tensor);
}

#[test]
fn ndarray_reports_no_device_memory() {
    assert_eq!(device_memory::<NdArray>(&Default::default()), None);
}

#[cfg(feature = "wgpu")]
#[test]
fn wgpu_pool_counts_a_live_tensor() {
    check_pool_counts_a_live_tensor::<faceclip_core::backend::Wgpu>(&Default::default());
}

#[cfg(feature = "cuda")]
#[test]
fn cuda_pool_counts_a_live_tensor() {
    check_pool_counts_a_live_tensor::<faceclip_core::backend::Cuda>(&Default::default());
}

/// Smaller than any page of the shared pools: a tensor that reserves at least this much beside
/// its own bytes sits in a shared page, not in a buffer of its own size.
const PAGE: u64 = 1 << 20;

/// The pool after returning unused pages, once queued work is done.
fn settled_pool<B: Backend>(device: &B::Device) -> DeviceMemory {
    B::memory_cleanup(device);
    B::sync(device).expect("device sync");
    device_memory::<B>(device).expect("a CubeCL backend reports its pool")
}

/// Weights (random and from host data) get buffers of their own size, so the pool grows by
/// about their bytes; a plain tensor of about their size takes a whole page of the shared pool.
/// Its size must differ from the weights' once aligned (CUDA aligns to 512 bytes): CubeCL puts
/// a tensor whose aligned size a persistent buffer already has in the persistent pool too.
/// Pool figures are exact only when no other test uses the device: see [`run_alone`].
fn check_weights_take_their_own_size<B: Backend>(device: &B::Device) {
    let before = settled_pool::<B>(device);
    // Odd sizes (84 028 and 83 972 bytes), which nothing else allocates.
    let random = Weights::<B>::random(device)
        .tensor::<2>("random", [3001, 7])
        .expect("random weight");
    let host = Weights::<B>::seeded(device, 7)
        .tensor::<2>("seeded", [2999, 7])
        .expect("weight from host data");
    let weights = settled_pool::<B>(device);
    let element = random.dtype().size() as u64;
    let bytes = 6000 * 7 * element;
    let grown = weights.reserved_bytes - before.reserved_bytes;
    println!(
        "{}: weights of {bytes} B reserved {grown} B",
        B::name(device)
    );
    assert!(
        weights.in_use_bytes - before.in_use_bytes >= bytes,
        "{weights:?}"
    );
    // Each weight is padded to the buffer alignment at most (512 B on CUDA), not row by row.
    assert!(
        grown <= bytes + 2 * 1024,
        "{grown} B reserved for {bytes} B of weights (padded rows?)"
    );

    // 3 % larger than the weights: a different size class at any alignment up to 1 KiB.
    let plain = Tensor::<B, 2>::random([3101, 7], Distribution::Default, device);
    let after = settled_pool::<B>(device);
    let page = after.reserved_bytes - weights.reserved_bytes;
    println!("a plain tensor of about their size reserved {page} B");
    assert!(
        page >= PAGE,
        "a plain tensor took only {page} B of the pool"
    );
    drop((random, host, plain));
}

/// Work queued before a random weight is made (a tensor of the caller's that a lazy backend has
/// not computed yet) runs outside the weights' persistent allocation mode: its output takes a
/// slice of the shared pages, not a buffer of its own size. Exact only alone: see [`run_alone`].
fn check_queued_work_stays_in_the_shared_pages<B: Backend>(device: &B::Device) {
    let before = settled_pool::<B>(device);
    // Odd sizes again (84 196 and 84 028 bytes in f32).
    let queued = Tensor::<B, 2>::random([3007, 7], Distribution::Default, device);
    let weight = Weights::<B>::random(device)
        .tensor::<2>("random", [3001, 7])
        .expect("random weight");
    let after = settled_pool::<B>(device);
    let bytes = 3001 * 7 * weight.dtype().size() as u64;
    let grown = after.reserved_bytes - before.reserved_bytes;
    println!(
        "{}: a {bytes} B weight and a queued tensor reserved {grown} B",
        B::name(device)
    );
    assert!(
        grown >= bytes + PAGE,
        "the queued tensor took only {} B: a buffer of its own size",
        grown - bytes
    );
    drop((queued, weight));
}

test_alone!(
    #[cfg(feature = "wgpu")]
    wgpu_weights_take_their_own_size,
    {
        check_weights_take_their_own_size::<faceclip_core::backend::Wgpu>(&Default::default());
    }
);

test_alone!(
    #[cfg(feature = "wgpu")]
    wgpu_queued_work_stays_in_the_shared_pages,
    {
        check_queued_work_stays_in_the_shared_pages::<faceclip_core::backend::Wgpu>(
            &Default::default(),
        );
    }
);

test_alone!(
    #[cfg(feature = "cuda")]
    cuda_weights_take_their_own_size,
    {
        check_weights_take_their_own_size::<faceclip_core::backend::CudaBf16>(&Default::default());
    }
);

test_alone!(
    #[cfg(feature = "cuda")]
    cuda_queued_work_stays_in_the_shared_pages,
    {
        check_queued_work_stays_in_the_shared_pages::<faceclip_core::backend::CudaBf16>(
            &Default::default(),
        );
    }
);

test_alone!(
    /// With [`CudaMemoryPools::Fitted`](faceclip_core::backend::CudaMemoryPools), a tensor the
    /// size of the SDXL UNet's largest activation (the GEGLU projection at 1152×864, CFG batch
    /// 2, bf16: 79.6 MB) reserves its own size and a quarter at most, where CubeCL's preset
    /// takes a page of 1.25 GiB or more; once the device has started, the layout can no longer
    /// change.
    #[cfg(feature = "cuda")]
    cuda_fitted_pools_reserve_about_a_tensors_size,
    {
        use faceclip_core::backend::{set_cuda_memory_pools, CudaBf16, CudaMemoryPools};
        set_cuda_memory_pools(CudaMemoryPools::Fitted).expect("before the first CUDA tensor");
        let device = Default::default();
        let before = settled_pool::<CudaBf16>(&device);
        let tensor = Tensor::<CudaBf16, 3>::random([2, 3888, 5120], Distribution::Default, &device);
        let after = settled_pool::<CudaBf16>(&device);
        let bytes = 2 * 3888 * 5120 * 2;
        let grown = after.reserved_bytes - before.reserved_bytes;
        println!("a tensor of {bytes} B reserved {grown} B");
        assert!(
            after.in_use_bytes - before.in_use_bytes >= bytes,
            "{after:?}"
        );
        assert!(
            grown as f64 <= bytes as f64 * 1.25 + f64::from(1 << 20),
            "{grown} B for {bytes} B"
        );
        let error = set_cuda_memory_pools(CudaMemoryPools::CubeclPreset).unwrap_err();
        assert!(error.to_string().contains("already started"), "{error}");
        drop(tensor);
    }
);
