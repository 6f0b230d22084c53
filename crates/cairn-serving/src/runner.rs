//! Running a model for many concurrent callers: a bounded number of requests in the system
//! (beyond it callers get [`ServingError::Overloaded`] at once instead of queueing without
//! bound) and, when enabled, dynamic batching: requests that arrive within `max_batch_delay`
//! of each other are stacked along the batch axis, run as one call, and split again.
//! Batching is off by default: a single row never waits.

use crate::{NamedTensor, OnnxModel, ServingError, TensorData};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, Semaphore};

/// How a model is run.
#[derive(Debug, Clone, Copy)]
pub struct RunnerOptions {
    /// Most rows merged into one call; 1 turns batching off.
    pub max_batch_size: usize,
    /// Longest a request waits for others to join its batch.
    pub max_batch_delay: Duration,
    /// Most requests admitted at once (running or waiting); more are refused.
    pub max_queue: usize,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        RunnerOptions {
            max_batch_size: 1,
            max_batch_delay: Duration::from_millis(2),
            max_queue: 1024,
        }
    }
}

type Reply = oneshot::Sender<Result<Vec<NamedTensor>, ServingError>>;

struct Job {
    inputs: Vec<NamedTensor>,
    rows: usize,
    reply: Reply,
}

/// A loaded model and the policy it runs under. Dropping it stops its batching thread.
pub struct Runner {
    model: OnnxModel,
    admitted: Arc<Semaphore>,
    max_queue: usize,
    batcher: Option<SyncSender<Job>>,
    /// Running mean of one unbatched call, in nanoseconds (0 until the first call).
    mean_call_ns: Arc<AtomicU64>,
}

/// Unbatched calls that take less than this on average run on the async worker that
/// received the request: handing a 2 µs logistic regression to the blocking pool costs two
/// thread wake-ups, more than the call. Slower models go to the blocking pool, so that the
/// workers keep accepting and answering other requests.
const INLINE_CALL_NS: u64 = 50_000;

/// Folds one call's duration into the running mean (weight 1/8).
fn observe_call(mean_ns: &AtomicU64, took: Duration) {
    let sample = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
    let old = mean_ns.load(Relaxed);
    let new = if old == 0 {
        sample
    } else {
        old - old / 8 + sample / 8
    };
    mean_ns.store(new.max(1), Relaxed);
}

fn overloaded(max_queue: usize) -> ServingError {
    ServingError::Overloaded(format!(
        "the model already has {max_queue} requests in progress; retry later"
    ))
}

impl Runner {
    /// Wraps `model`; starts a batching thread when `options.max_batch_size > 1` and the
    /// model's inputs all have a free batch axis.
    pub fn new(model: OnnxModel, options: RunnerOptions) -> Self {
        let max_queue = options.max_queue.max(1);
        let batchable = !model.signature().inputs.is_empty()
            && model
                .signature()
                .inputs
                .iter()
                .all(|s| s.shape.first() == Some(&-1));
        let batcher = (options.max_batch_size > 1 && batchable).then(|| {
            let (tx, rx) = sync_channel::<Job>(max_queue);
            let model = model.clone();
            std::thread::Builder::new()
                .name("cairn-batcher".into())
                .spawn(move || serve_batches(rx, options, |jobs| run_batch(&model, jobs)))
                .ok()
                .map(|_| tx)
        });
        Runner {
            model,
            admitted: Arc::new(Semaphore::new(max_queue)),
            max_queue,
            batcher: batcher.flatten(),
            mean_call_ns: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The model.
    pub fn model(&self) -> &OnnxModel {
        &self.model
    }

    /// Whether requests are batched.
    pub fn batching(&self) -> bool {
        self.batcher.is_some()
    }

    /// Runs one request, off the async runtime.
    pub async fn infer(&self, inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>, ServingError> {
        let permit = self
            .admitted
            .clone()
            .try_acquire_owned()
            .map_err(|_| overloaded(self.max_queue))?;
        let mean = self.mean_call_ns.load(Relaxed);
        if self.batcher.is_none() && mean != 0 && mean < INLINE_CALL_NS {
            let started = Instant::now();
            // A panic fails this request only, as on the blocking pool.
            let result =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.model.infer(inputs)))
                    .unwrap_or_else(|_| {
                        Err(ServingError::Inference("the model call panicked".into()))
                    });
            observe_call(&self.mean_call_ns, started.elapsed());
            drop(permit);
            return result;
        }
        let (reply, answer) = oneshot::channel();
        match &self.batcher {
            Some(batcher) => {
                let rows = inputs
                    .first()
                    .and_then(|t| t.shape.first())
                    .copied()
                    .unwrap_or(1);
                batcher
                    .try_send(Job {
                        inputs,
                        rows,
                        reply,
                    })
                    .map_err(|e| match e {
                        TrySendError::Full(_) => overloaded(self.max_queue),
                        TrySendError::Disconnected(_) => {
                            ServingError::Inference("the batching thread stopped".into())
                        }
                    })?;
            }
            None => {
                let model = self.model.clone();
                let mean_ns = self.mean_call_ns.clone();
                tokio::task::spawn_blocking(move || {
                    let started = Instant::now();
                    let result = model.infer(inputs);
                    observe_call(&mean_ns, started.elapsed());
                    let _ = reply.send(result);
                });
            }
        }
        let result = answer
            .await
            .unwrap_or_else(|_| Err(ServingError::Inference("the worker stopped".into())));
        drop(permit);
        result
    }
}

/// Whether two requests can share a call: same inputs, types and non-batch dimensions.
fn same_layout(a: &[NamedTensor], b: &[NamedTensor]) -> bool {
    !a.is_empty()
        && a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.name == y.name
                && x.data.element_type() == y.data.element_type()
                && !x.shape.is_empty()
                && x.shape.len() == y.shape.len()
                && x.shape[1..] == y.shape[1..]
                && x.data.len() == x.shape.iter().product::<usize>()
                && y.data.len() == y.shape.iter().product::<usize>()
        })
}

/// The batching thread's loop: gathers requests that arrive within `max_batch_delay` of the
/// first (up to `max_batch_size` rows) and hands each batch to `run`, until every sender is
/// gone.
fn serve_batches(rx: Receiver<Job>, options: RunnerOptions, run: impl Fn(Vec<Job>)) {
    while let Ok(first) = rx.recv() {
        let deadline = Instant::now() + options.max_batch_delay;
        let mut rows = first.rows;
        let mut jobs = vec![first];
        while rows < options.max_batch_size {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            match rx.recv_timeout(deadline - now) {
                Ok(job) => {
                    rows = rows.saturating_add(job.rows);
                    jobs.push(job);
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        // A panic fails this batch's requests (their reply channels close: 500) and leaves
        // the thread serving the next batch.
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(jobs)));
        if ran.is_err() {
            tracing::error!("a batch panicked; its requests failed");
        }
    }
}

fn run_alone(model: &OnnxModel, job: Job) {
    let _ = job.reply.send(model.infer(job.inputs));
}

fn run_batch(model: &OnnxModel, jobs: Vec<Job>) {
    let mut jobs = jobs.into_iter();
    let Some(first) = jobs.next() else { return };
    let (mut group, mut others): (Vec<Job>, Vec<Job>) = (vec![], vec![]);
    for job in jobs {
        if same_layout(&first.inputs, &job.inputs) {
            group.push(job);
        } else {
            others.push(job);
        }
    }
    group.insert(0, first);
    run_group(model, group);
    for job in others {
        run_alone(model, job);
    }
}

fn run_group(model: &OnnxModel, group: Vec<Job>) {
    if group.len() == 1 {
        group.into_iter().for_each(|j| run_alone(model, j));
        return;
    }
    let rows: Vec<usize> = group.iter().map(|j| j.inputs[0].shape[0]).collect();
    let total: usize = rows.iter().sum();
    let mut merged: Vec<NamedTensor> = group[0].inputs.clone();
    for t in &mut merged {
        t.shape[0] = total;
    }
    for job in &group[1..] {
        for (m, t) in merged.iter_mut().zip(&job.inputs) {
            m.data.extend(&t.data);
        }
    }
    let outputs = match model.infer(merged) {
        Ok(outputs) if outputs.iter().all(|o| o.shape.first() == Some(&total)) => outputs,
        // One bad request, or outputs not split by row: each request answers for itself.
        _ => {
            group.into_iter().for_each(|j| run_alone(model, j));
            return;
        }
    };
    let mut start = 0;
    for (job, n) in group.into_iter().zip(rows) {
        let part = outputs
            .iter()
            .map(|o| {
                let per_row = o.shape[1..].iter().product::<usize>();
                let mut shape = o.shape.clone();
                shape[0] = n;
                NamedTensor {
                    name: o.name.clone(),
                    shape,
                    data: o.data.slice(start * per_row, (start + n) * per_row),
                }
            })
            .collect();
        start += n;
        let _ = job.reply.send(Ok(part));
    }
}

impl TensorData {
    /// Appends `other` (same element type; other types are ignored).
    pub fn extend(&mut self, other: &TensorData) {
        match (self, other) {
            (TensorData::Fp32(a), TensorData::Fp32(b)) => a.extend_from_slice(b),
            (TensorData::Fp64(a), TensorData::Fp64(b)) => a.extend_from_slice(b),
            (TensorData::Int32(a), TensorData::Int32(b)) => a.extend_from_slice(b),
            (TensorData::Int64(a), TensorData::Int64(b)) => a.extend_from_slice(b),
            (TensorData::Bool(a), TensorData::Bool(b)) => a.extend_from_slice(b),
            (TensorData::Bytes(a), TensorData::Bytes(b)) => a.extend_from_slice(b),
            _ => {}
        }
    }

    /// Elements `start..end`.
    pub fn slice(&self, start: usize, end: usize) -> TensorData {
        match self {
            TensorData::Fp32(v) => TensorData::Fp32(v[start..end].to_vec()),
            TensorData::Fp64(v) => TensorData::Fp64(v[start..end].to_vec()),
            TensorData::Int32(v) => TensorData::Int32(v[start..end].to_vec()),
            TensorData::Int64(v) => TensorData::Int64(v[start..end].to_vec()),
            TensorData::Bool(v) => TensorData::Bool(v[start..end].to_vec()),
            TensorData::Bytes(v) => TensorData::Bytes(v[start..end].to_vec()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(
        rows: usize,
    ) -> (
        Job,
        oneshot::Receiver<Result<Vec<NamedTensor>, ServingError>>,
    ) {
        let (reply, answer) = oneshot::channel();
        (
            Job {
                inputs: vec![],
                rows,
                reply,
            },
            answer,
        )
    }

    #[test]
    fn a_panicking_batch_fails_only_its_own_requests() {
        let (tx, rx) = sync_channel::<Job>(8);
        let options = RunnerOptions {
            max_batch_size: 1,
            max_batch_delay: Duration::from_millis(1),
            max_queue: 8,
        };
        // A batch whose first request has 13 rows panics (a graph that panics on some
        // input); any other batch answers.
        let thread = std::thread::spawn(move || {
            serve_batches(rx, options, |jobs| {
                assert_ne!(jobs[0].rows, 13, "a model that panics on this batch");
                for j in jobs {
                    let _ = j.reply.send(Ok(vec![]));
                }
            })
        });
        let (bad, bad_answer) = job(13);
        tx.send(bad).unwrap();
        // Its reply channel closes unanswered: the server turns that into a 500.
        assert!(bad_answer.blocking_recv().is_err());
        // The thread lives on and answers the next batches.
        for _ in 0..3 {
            let (good, good_answer) = job(1);
            tx.send(good).unwrap();
            assert!(matches!(good_answer.blocking_recv(), Ok(Ok(_))));
        }
        drop(tx);
        thread.join().unwrap();
    }
}
