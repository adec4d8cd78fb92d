//! `backend::device_memory`: what the GPU backends' memory pool reports, and nothing on ndarray.

use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use faceclip_core::backend::{device_memory, NdArray};

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
