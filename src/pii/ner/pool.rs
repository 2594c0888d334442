//! A bounded pool of dedicated inference threads, each with its own session: async callers
//! queue texts and await findings; texts waiting together run as one batch.

use super::NerError;
use super::model::NerModel;
use crate::pii::Finding;
use std::sync::Arc;

/// Sizes of the pool.
#[derive(Debug, Clone, Copy)]
pub struct PoolSize {
    /// Inference threads (each runs one batch at a time on one core).
    pub threads: usize,
    /// Texts that may wait; beyond it callers get [`NerError::Busy`] at once.
    pub queue: usize,
    /// Texts one thread takes into one batch when several wait.
    pub max_batch: usize,
}

struct Job {
    text: String,
    reply: tokio::sync::oneshot::Sender<Result<Vec<Finding>, NerError>>,
}

/// The running pool; dropping it ends the threads once the queue drains.
pub struct NerPool {
    jobs: crossbeam_channel::Sender<Job>,
    queue: usize,
}

impl NerPool {
    /// Creates every session first (a model that cannot load fails here, not later), then
    /// starts the threads.
    pub fn start(
        model: Arc<NerModel>,
        environment: &ort::environment::Environment,
        size: PoolSize,
    ) -> Result<Self, NerError> {
        let (jobs, queued) = crossbeam_channel::bounded::<Job>(size.queue.max(1));
        for index in 0..size.threads.max(1) {
            let mut session = model.session(environment)?;
            let model = Arc::clone(&model);
            let queued = queued.clone();
            let max_batch = size.max_batch.max(1);
            std::thread::Builder::new()
                .name(format!("airlock-ner-{index}"))
                .spawn(move || serve(&model, &mut session, &queued, max_batch))
                .map_err(|e| NerError::Unavailable(format!("cannot start a thread: {e}")))?;
        }
        Ok(Self {
            jobs,
            queue: size.queue.max(1),
        })
    }

    /// Findings in `text`, computed on the pool.
    pub async fn find(&self, text: String) -> Result<Vec<Finding>, NerError> {
        let waiting = self.submit(text)?;
        waiting
            .await
            .unwrap_or_else(|_| Err(NerError::Unavailable("the inference thread stopped".into())))
    }

    /// [`Self::find`] for callers outside the async runtime (the CLI).
    pub fn find_blocking(&self, text: String) -> Result<Vec<Finding>, NerError> {
        let waiting = self.submit(text)?;
        waiting
            .blocking_recv()
            .unwrap_or_else(|_| Err(NerError::Unavailable("the inference thread stopped".into())))
    }

    fn submit(
        &self,
        text: String,
    ) -> Result<tokio::sync::oneshot::Receiver<Result<Vec<Finding>, NerError>>, NerError> {
        let (reply, waiting) = tokio::sync::oneshot::channel();
        self.jobs
            .try_send(Job { text, reply })
            .map_err(|e| match e {
                crossbeam_channel::TrySendError::Full(_) => NerError::Busy(self.queue),
                crossbeam_channel::TrySendError::Disconnected(_) => {
                    NerError::Unavailable("the inference threads stopped".into())
                }
            })?;
        Ok(waiting)
    }
}

/// One inference thread: takes a text, and whatever else is already waiting up to
/// `max_batch`, runs them together and answers each.
fn serve(
    model: &NerModel,
    session: &mut ort::session::Session,
    queued: &crossbeam_channel::Receiver<Job>,
    max_batch: usize,
) {
    while let Ok(first) = queued.recv() {
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match queued.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let texts: Vec<&str> = batch.iter().map(|job| job.text.as_str()).collect();
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| model.find(session, &texts)))
                .unwrap_or_else(|_| Err(NerError::Model("inference panicked".into())));
        match outcome {
            Ok(found) => {
                for (job, findings) in batch.into_iter().zip(found) {
                    let _ = job.reply.send(Ok(findings));
                }
            }
            Err(error) => {
                for job in batch {
                    let _ = job.reply.send(Err(error.clone()));
                }
            }
        }
    }
}
