//! What the NVIDIA-library paths ([`super::cublaslt`], [`super::cudnn`]) share: loading the
//! library at run time, the on/off switch and counters, the call on the CubeCL server's device
//! thread, buffer addresses with the stream that orders them, and the fallback to Burn's ops.
//!
//! A library is never linked: `cudarc` opens it (`dlopen`) on first use. A call is prepared on
//! the caller's thread (operands made contiguous, output allocated: queued like Burn's own
//! work), then made on the CubeCL server's device thread, where Burn's CUDA context is current
//! and where the server calls it makes (buffer look-ups, workspace allocations) run at once.
//! There it queues its work on the CUDA stream the server executes the caller's work on
//! (exposed by the vendored `cubecl-cuda`), so it is ordered with Burn's own kernels without
//! any host synchronisation. The caller waits for that call, or queues it and goes on
//! ([`CudaLibraryCalls`]; queued only once a call of the same plan has succeeded waited for,
//! since a queued call that fails cannot fall back to Burn's ops).

use std::collections::hash_map::{DefaultHasher, Entry, HashMap};
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use burn::tensor::DType;
use burn_cubecl::{tensor::CubeTensor, CubeRuntime};
use cubecl::client::ComputeClient;
use cubecl::cuda::CudaRuntime;
use cubecl::server::Handle;

use super::workspaces::Workspaces;
use super::{device_thread, retype};
use crate::backend::{cuda_library_calls, CudaLibraryCalls, LibraryStats};
use crate::error::LibraryError;
use crate::lock;

/// One library's path: whether it loads, whether it is on, and what it has done.
pub(crate) struct LibraryPath {
    /// The library's name in messages ("cuBLASLt").
    name: &'static str,
    /// Its file stem for the loader ("cublasLt" → `libcublasLt.so*`).
    stem: &'static str,
    /// `cudarc`'s check that the library opens.
    probe: unsafe fn() -> bool,
    present: OnceLock<bool>,
    enabled: AtomicBool,
    launched: AtomicU64,
    fallbacks: AtomicU64,
    last_failure: Mutex<Option<String>>,
    host_nanos: AtomicU64,
    library_nanos: AtomicU64,
    queue_nanos: AtomicU64,
    plans: AtomicU64,
    queued: AtomicU64,
    lost: AtomicU64,
    /// [`Call::plan`]s a call waited for has run: later calls with one may be queued.
    proven: Mutex<Option<HashSet<u64>>>,
    /// Cleared by a queued call that failed: the path's calls wait again from then on.
    queueing: AtomicBool,
}

impl LibraryPath {
    /// A path, on by default, for the library `name` whose files start `lib{stem}`.
    pub(crate) const fn new(
        name: &'static str,
        stem: &'static str,
        probe: unsafe fn() -> bool,
    ) -> Self {
        Self {
            name,
            stem,
            probe,
            present: OnceLock::new(),
            enabled: AtomicBool::new(true),
            launched: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
            last_failure: Mutex::new(None),
            host_nanos: AtomicU64::new(0),
            library_nanos: AtomicU64::new(0),
            queue_nanos: AtomicU64::new(0),
            plans: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            proven: Mutex::new(None),
            queueing: AtomicBool::new(true),
        }
    }

    /// Whether the library loads in this process, looked up once; the error lists the file
    /// names tried.
    pub(crate) fn available(&self) -> Result<(), LibraryError> {
        // SAFETY: opening the library runs its initialisers, which NVIDIA's libraries keep free
        // of side effects beyond their own state.
        if *self.present.get_or_init(|| unsafe { (self.probe)() }) {
            Ok(())
        } else {
            Err(LibraryError::NotFound {
                library: self.name,
                tried: cudarc::get_lib_name_candidates(self.stem).join(", "),
            })
        }
    }

    /// Turns the path on or off for later calls; turning it on fails with the reason when the
    /// library does not load.
    pub(crate) fn set_enabled(&self, enabled: bool) -> Result<(), LibraryError> {
        if enabled {
            self.available()?;
        }
        self.enabled.store(enabled, Ordering::Relaxed);
        Ok(())
    }

    /// Whether calls may take the path now.
    pub(crate) fn usable(&self) -> bool {
        self.enabled.load(Ordering::Relaxed) && self.available().is_ok()
    }

    /// Whether an operation on operands of these element types may take the path now: all
    /// the same, one the library `handles`, and `fits` (the shapes).
    pub(crate) fn takes(
        &self,
        dtypes: [DType; 3],
        handles: impl Fn(DType) -> bool,
        fits: bool,
    ) -> bool {
        fits && dtypes.iter().all(|d| *d == dtypes[0]) && handles(dtypes[0]) && self.usable()
    }

    /// The counters since the process started.
    pub(crate) fn stats(&self) -> LibraryStats {
        LibraryStats {
            launched: self.launched.load(Ordering::Relaxed),
            fallbacks: self.fallbacks.load(Ordering::Relaxed),
            last_failure: lock(&self.last_failure).clone(),
            host_micros: self.host_nanos.load(Ordering::Relaxed) / 1000,
            library_micros: self.library_nanos.load(Ordering::Relaxed) / 1000,
            queue_micros: self.queue_nanos.load(Ordering::Relaxed) / 1000,
            plans: self.plans.load(Ordering::Relaxed),
            queued: self.queued.load(Ordering::Relaxed),
            lost: self.lost.load(Ordering::Relaxed),
        }
    }

    /// The library's result on `inputs`: `prepare` (on the caller's thread) makes the
    /// [`Call`] on the CUDA operands, which then runs on the device thread, waited for or
    /// queued ([`CudaLibraryCalls`]). When the operands are not CUDA tensors, or `prepare` or
    /// a call waited for fails, `fallback` (Burn's ops) computes the result and the failure is
    /// counted.
    pub(crate) fn launch<R: CubeRuntime>(
        &'static self,
        inputs: [CubeTensor<R>; 3],
        prepare: impl FnOnce([CubeTensor<CudaRuntime>; 3]) -> Result<Call, String>,
        fallback: impl FnOnce([CubeTensor<R>; 3]) -> CubeTensor<R>,
    ) -> CubeTensor<R> {
        timed(&self.host_nanos, || {
            self.launch_timed(inputs, prepare, fallback)
        })
    }

    /// `call` (the library's own functions queueing an operation), timed apart from the rest
    /// of [`Self::launch`].
    pub(crate) fn in_library<T>(&self, call: impl FnOnce() -> T) -> T {
        timed(&self.library_nanos, call)
    }

    /// [`Self::launch`] without the clock.
    fn launch_timed<R: CubeRuntime>(
        &'static self,
        inputs: [CubeTensor<R>; 3],
        prepare: impl FnOnce([CubeTensor<CudaRuntime>; 3]) -> Result<Call, String>,
        fallback: impl FnOnce([CubeTensor<R>; 3]) -> CubeTensor<R>,
    ) -> CubeTensor<R> {
        let failure = match retype::<_, [CubeTensor<CudaRuntime>; 3]>(inputs.clone()) {
            Ok(cuda) => match prepare(cuda).and_then(|call| self.submit(call)) {
                Ok(output) => match retype::<_, CubeTensor<R>>(output) {
                    Ok(output) => return output,
                    Err(_) => unreachable!("R is CudaRuntime: the inputs retyped"),
                },
                Err(error) => format!("{}: {error}", self.name),
            },
            Err(_) => format!("{}: not on Burn's CUDA runtime", self.name),
        };
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        *lock(&self.last_failure) = Some(failure);
        fallback(inputs)
    }

    /// Runs `call` on the device thread and returns its output: queued when calls are
    /// [queued](CudaLibraryCalls::Queued) and one with its plan has run, else waited for (an
    /// error then leaves the output unwritten and is returned).
    fn submit(&'static self, call: Call) -> Result<CubeTensor<CudaRuntime>, String> {
        let Call {
            plan,
            output,
            queue,
            finish,
        } = call;
        let requested = Instant::now();
        if self.may_queue(plan) {
            let on_device_thread = move || {
                add_elapsed(&self.queue_nanos, requested);
                if let Err(error) = queue() {
                    self.lose(error);
                }
            };
            device_thread::queue::<CudaRuntime>(&output.device, on_device_thread)?;
            self.queued.fetch_add(1, Ordering::Relaxed);
        } else {
            let on_device_thread = move || {
                add_elapsed(&self.queue_nanos, requested);
                queue()
            };
            output
                .client
                .exclusive(on_device_thread)
                .map_err(|error| format!("CubeCL device thread: {error:?}"))??;
            lock(&self.proven)
                .get_or_insert_with(HashSet::new)
                .insert(plan);
        }
        self.launched.fetch_add(1, Ordering::Relaxed);
        Ok(match finish {
            Some(finish) => finish(output),
            None => output,
        })
    }

    /// Whether a call with `plan` may be queued now.
    fn may_queue(&self, plan: u64) -> bool {
        cuda_library_calls() == CudaLibraryCalls::Queued
            && self.queueing.load(Ordering::Relaxed)
            && lock(&self.proven)
                .as_ref()
                .is_some_and(|proven| proven.contains(&plan))
    }

    /// Records a queued call that failed on the device thread (its output was not written):
    /// counted as lost, the reason kept, logged, and the path's later calls waited for.
    fn lose(&self, error: String) {
        let failure = format!(
            "{}: a queued call failed, its output left unwritten; later calls wait: {error}",
            self.name
        );
        log::error!("{failure}");
        self.lost.fetch_add(1, Ordering::Relaxed);
        self.queueing.store(false, Ordering::Relaxed);
        *lock(&self.last_failure) = Some(failure);
    }
}

/// One library operation, prepared on the caller's thread (operands made contiguous, output
/// allocated: queued like Burn's own work), left to queue on the device thread.
pub(crate) struct Call {
    /// Identifies the plan the call needs: the operation, its sizes and element types, and
    /// the operands' alignments as their offsets give them. A call waited for that succeeded
    /// proves its plan; a call with a proven plan may be queued.
    plan: u64,
    /// What [`Self::queue`] writes.
    output: CubeTensor<CudaRuntime>,
    /// Queues the library's work on the device thread (buffer look-ups, plan, library call).
    queue: Box<dyn FnOnce() -> Result<(), String> + Send>,
    /// Burn's work on the output after the library's (on the caller's thread).
    finish: Option<Box<Finish>>,
}

/// Burn's work on a library call's output.
type Finish = dyn FnOnce(CubeTensor<CudaRuntime>) -> CubeTensor<CudaRuntime>;

impl Call {
    /// The call that `queue` makes on the device thread to write `output`; `plan` and the
    /// `operands` (every buffer the call reads or writes) decide its [plan's identity](Self).
    pub(crate) fn new(
        plan: impl Hash,
        operands: &[&Handle],
        output: CubeTensor<CudaRuntime>,
        queue: impl FnOnce() -> Result<(), String> + Send + 'static,
    ) -> Self {
        let mut hasher = DefaultHasher::new();
        plan.hash(&mut hasher);
        for operand in operands {
            offset_alignment(operand).hash(&mut hasher);
        }
        Self {
            plan: hasher.finish(),
            output,
            queue: Box::new(queue),
            finish: None,
        }
    }

    /// The call with `finish` applied to its output afterwards (queued after the library's
    /// work, on the caller's thread).
    pub(crate) fn then(
        mut self,
        finish: impl FnOnce(CubeTensor<CudaRuntime>) -> CubeTensor<CudaRuntime> + 'static,
    ) -> Self {
        self.finish = Some(Box::new(finish));
        self
    }
}

/// The alignment a buffer's address owes to its offset into the allocation CubeCL made (whose
/// start is aligned to 512 bytes on CUDA): the largest power of two up to 512 dividing it.
fn offset_alignment(handle: &Handle) -> u32 {
    (handle.offset_start.unwrap_or(0) | 512).trailing_zeros()
}

/// `work`'s result, its duration added to `nanos`.
fn timed<T>(nanos: &AtomicU64, work: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let output = work();
    add_elapsed(nanos, started);
    output
}

/// Adds the time since `started` to `nanos`.
fn add_elapsed(nanos: &AtomicU64, started: Instant) {
    let elapsed = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    nanos.fetch_add(elapsed, Ordering::Relaxed);
}

/// The device addresses of the operands' buffers (0 for an absent one), the stream the server
/// executes this thread's work on, and guards that keep the buffers allocated while they live
/// (hold them until the call that uses the addresses is queued). Call on the device thread.
pub(crate) fn buffers<const N: usize>(
    client: &ComputeClient<CudaRuntime>,
    handles: [Option<&Handle>; N],
) -> Result<([u64; N], usize, Vec<impl Sized>), String> {
    let mut addresses = [0; N];
    let mut stream = 0;
    let mut guards = Vec::with_capacity(N);
    for (address, handle) in addresses.iter_mut().zip(handles) {
        let Some(handle) = handle else { continue };
        let managed = client
            .get_resource(handle.clone())
            .map_err(|error| format!("buffer of an operand: {error:?}"))?;
        *address = managed.resource().ptr;
        stream = managed.resource().stream as usize;
        guards.push(managed);
    }
    Ok((addresses, stream, guards))
}

/// The workspaces of every library path (they share one per stream).
static WORKSPACES: Workspaces<Handle> = Workspaces::new();

/// The address of at least `bytes` of scratch for work queued on `stream` (the one
/// [`buffers`] gave for this call's operands) of `client`'s device `device`. Call on the
/// device thread.
pub(crate) fn workspace(
    client: &ComputeClient<CudaRuntime>,
    device: usize,
    stream: usize,
    bytes: usize,
) -> Result<u64, String> {
    WORKSPACES.address(device, stream, bytes, |size| {
        let handle = client.empty(size);
        let ([address], allocated_on, _guard) = buffers(client, [Some(&handle)])?;
        if allocated_on != stream {
            return Err(format!(
                "workspace allocated on stream {allocated_on:#x}, not the operands' {stream:#x}"
            ));
        }
        Ok((handle, address))
    })
}

/// Whether CubeCL runtime `R` is CUDA's (where the NVIDIA libraries run).
pub(crate) fn on_cuda<R: CubeRuntime>() -> bool {
    std::any::TypeId::of::<R>() == std::any::TypeId::of::<CudaRuntime>()
}

/// `tensor`, copied to a contiguous row-major layout if it is not one.
pub(crate) fn contiguous(tensor: CubeTensor<CudaRuntime>) -> CubeTensor<CudaRuntime> {
    if tensor.is_contiguous() {
        tensor
    } else {
        burn_cubecl::kernel::into_contiguous(tensor)
    }
}

/// A library handle `H`, created on first use, and the plans `P` (descriptors, algorithm) made
/// with it per key `K`, kept for the process and used under one lock.
pub(crate) struct Session<H, K, P> {
    /// The library whose plans these are (which counts them).
    library: &'static LibraryPath,
    state: Mutex<Option<SessionState<H, K, P>>>,
}

/// A session's handle and plans, once the handle exists.
struct SessionState<H, K, P> {
    handle: LibraryHandle<H>,
    plans: HashMap<K, P>,
}

/// A handle a library hands out (a pointer).
struct LibraryHandle<H>(H);

// SAFETY: NVIDIA's library handles may be used from any thread, one thread at a time: every
// use goes through the session's lock.
unsafe impl<H> Send for LibraryHandle<H> {}

impl<H: Copy, K: Copy + Eq + Hash, P> Session<H, K, P> {
    /// A session of `library` with no handle yet.
    pub(crate) const fn new(library: &'static LibraryPath) -> Self {
        Self {
            library,
            state: Mutex::new(None),
        }
    }

    /// `call` with the handle and `key`'s plan, made by `create` and `plan` on first use.
    pub(crate) fn run<T>(
        &self,
        key: K,
        create: impl FnOnce() -> Result<H, String>,
        plan: impl FnOnce(H) -> Result<P, String>,
        call: impl FnOnce(H, &mut P) -> Result<T, String>,
    ) -> Result<T, String> {
        let mut state = lock(&self.state);
        let state = match &mut *state {
            Some(state) => state,
            empty => empty.insert(SessionState {
                handle: LibraryHandle(create()?),
                plans: HashMap::new(),
            }),
        };
        let handle = state.handle.0;
        let plan = match state.plans.entry(key) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => {
                let made = plan(handle)?;
                self.library.plans.fetch_add(1, Ordering::Relaxed);
                entry.insert(made)
            }
        };
        call(handle, plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::set_cuda_library_calls;

    fn never_present() -> bool {
        false
    }

    #[test]
    fn calls_are_queued_only_for_proven_plans_until_one_is_lost() {
        static PATH: LibraryPath = LibraryPath::new("test library", "none", never_present);
        lock(&PATH.proven)
            .get_or_insert_with(HashSet::new)
            .insert(7);
        // Waited for by default, even with a proven plan.
        assert!(!PATH.may_queue(7));
        set_cuda_library_calls(CudaLibraryCalls::Queued);
        assert!(PATH.may_queue(7));
        assert!(
            !PATH.may_queue(8),
            "a plan no call has run yet is waited for"
        );
        PATH.lose("engine refused".into());
        assert!(
            !PATH.may_queue(7),
            "after a lost call, the path's calls wait"
        );
        set_cuda_library_calls(CudaLibraryCalls::Blocking);
        let stats = PATH.stats();
        assert_eq!((stats.lost, stats.queued, stats.fallbacks), (1, 0, 0));
        let failure = stats.last_failure.unwrap_or_default();
        assert!(
            failure.starts_with("test library: a queued call failed"),
            "{failure}"
        );
        assert!(failure.ends_with("engine refused"), "{failure}");
    }
}
