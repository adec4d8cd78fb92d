//! Work handed to CubeCL's device thread without waiting for it (used by [`super::nvidia`]'s
//! queued library calls; compiled and tested in every CubeCL build, since CI has no CUDA).
//!
//! CubeCL runs a device's work on a thread of its own, fed by a channel in batches: Burn's
//! kernel launches are queued there and the caller goes on. `ComputeClient::exclusive`, the
//! public way to run other code there, flushes the channel and blocks the caller until the
//! device thread has run every task queued before and then this one. The vendored
//! `cubecl-common` adds `DeviceHandle::exclusive_queued`, which queues the task as a launch is
//! queued (`vendor/cubecl-common/PATCH.md`).
#![cfg_attr(not(feature = "cuda"), allow(dead_code))]

use cubecl_common::device::Device;
use cubecl_common::device_handle::DeviceHandle;
use cubecl_runtime::runtime::Runtime;

/// Queues `task` on the device thread of `device` (runtime `R`), after everything queued there
/// before it, and returns at once. It runs as `ComputeClient::exclusive` runs its task: under
/// the caller's stream, free to use the device's client (allocations, buffer look-ups, kernel
/// launches), only later: when the channel's batch fills or a later call (a read, a sync, an
/// `exclusive` call) flushes it.
pub(crate) fn queue<R: Runtime>(
    device: &R::Device,
    task: impl FnOnce() + Send + 'static,
) -> Result<(), String> {
    // The handle of the running device service: `new` looks the device's channel up (the
    // client using `device` already started it).
    DeviceHandle::<R::Server>::new(device.to_id())
        .exclusive_queued(task)
        .map_err(|error| format!("CubeCL device thread: {error:?}"))
}

#[cfg(all(test, feature = "wgpu"))]
mod tests {
    use std::sync::mpsc;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use burn_wgpu::{WgpuDevice, WgpuRuntime};
    use cubecl_common::stream_id::StreamId;
    use cubecl_runtime::client::ComputeClient;

    use super::*;

    /// How long a task waits for a message its caller sends once `queue` has returned.
    const PATIENCE: Duration = Duration::from_secs(5);

    #[test]
    fn queued_tasks_run_later_in_order_on_the_device_thread() {
        let device = WgpuDevice::default();
        let client = ComputeClient::<WgpuRuntime>::load(&device);
        let caller = std::thread::current().id();
        let caller_stream = StreamId::current();
        let (release, released) = mpsc::channel::<()>();
        let seen = Arc::new(Mutex::new(Vec::new()));

        // The first task waits for a message sent after `queue` returned: a `queue` that
        // waited for its task would make the task time out instead.
        let first = {
            let seen = seen.clone();
            move || {
                let released = released.recv_timeout(PATIENCE).is_ok();
                seen.lock()
                    .unwrap()
                    .push(("first", released, std::thread::current().id()));
            }
        };
        // The second task calls the client, as a library call does (an allocation, then the
        // buffer's look-up): the device's state must be free while a queued task runs.
        let second = {
            let (seen, client) = (seen.clone(), client.clone());
            move || {
                let handle = client.empty(256);
                let found = client.get_resource(handle).is_ok();
                let same_stream = StreamId::current() == caller_stream;
                let thread = std::thread::current().id();
                seen.lock()
                    .unwrap()
                    .push(("second", found && same_stream, thread));
            }
        };
        queue::<WgpuRuntime>(&device, first).expect("queue the first task");
        queue::<WgpuRuntime>(&device, second).expect("queue the second task");
        release.send(()).expect("the first task is waiting");
        // A blocking call flushes the channel and returns after both tasks ran.
        client.flush().expect("flush");

        let seen = seen.lock().unwrap();
        let order: Vec<_> = seen.iter().map(|(name, ok, _)| (*name, *ok)).collect();
        assert_eq!(order, [("first", true), ("second", true)]);
        assert!(seen.iter().all(|(_, _, thread)| *thread != caller));
    }
}
