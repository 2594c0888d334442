//! A bounded pool of dedicated inference threads, each with its own session. Texts are cut
//! into pieces of a few windows; each tenant's pieces wait in the tenant's own queue, and
//! the threads serve the tenants in turn, so no tenant's long prompt or burst holds the
//! others back. Callers wait for their findings until their deadline; pieces nobody
//! waits for any more are dropped unrun.

use super::NerError;
use super::fair::{FairQueue, Refused, Turn};
use super::model::NerModel;
use super::pieces::{self, PIECE_BYTES, Piece};
use crate::pii::Finding;
use std::sync::Arc;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Sizes of the pool.
#[derive(Debug, Clone, Copy)]
pub struct PoolSize {
    /// Inference threads (each runs one batch at a time on one core).
    pub threads: usize,
    /// Pieces (of up to 2 KiB of text) one tenant may have waiting; beyond it, the
    /// tenant's callers wait for room (until their deadline).
    pub queue: usize,
    /// Pieces one thread runs together when one tenant has several waiting.
    pub max_batch: usize,
}

/// A piece's findings, or why there are none.
type Found = Result<Vec<Finding>, NerError>;
type Reply = oneshot::Sender<Found>;

struct Job {
    text: String,
    reply: Reply,
}

/// The running pool; dropping it ends the threads once the queue drains.
pub struct NerPool {
    queue: Arc<FairQueue<Job>>,
    classes: Vec<&'static str>,
}

/// A text queued on the pool: its pieces and where their findings will come from.
pub struct Pending {
    pieces: Vec<(Piece, oneshot::Receiver<Found>)>,
}

impl NerPool {
    /// Creates every session first (a model that cannot load fails here, not later), then
    /// starts the threads.
    pub fn start(
        model: Arc<NerModel>,
        environment: &ort::environment::Environment,
        size: PoolSize,
    ) -> Result<Self, NerError> {
        let queue = Arc::new(FairQueue::new(size.queue));
        for index in 0..size.threads.max(1) {
            let mut session = model.session(environment)?;
            let model = Arc::clone(&model);
            let queue = Arc::clone(&queue);
            let max_batch = size.max_batch.max(1);
            std::thread::Builder::new()
                .name(format!("airlock-ner-{index}"))
                .spawn(move || serve(&model, &mut session, &queue, max_batch))
                .map_err(|e| NerError::Unavailable(format!("cannot start a thread: {e}")))?;
        }
        Ok(Self {
            queue,
            classes: model.classes(),
        })
    }

    /// The data classes the model finds.
    pub fn classes(&self) -> &[&'static str] {
        &self.classes
    }

    /// Findings in `text`, computed on the pool in `tenant`'s turns, if they are all in
    /// by `deadline` (waiting as long as it takes when `None`).
    pub async fn find(
        &self,
        tenant: &str,
        text: &str,
        deadline: Option<Instant>,
    ) -> Result<Vec<Finding>, NerError> {
        self.submit(tenant, text, deadline)
            .await?
            .wait(deadline)
            .await
    }

    /// Queues the pieces of `text` in `tenant`'s queue, waiting for room until
    /// `deadline`; [`Pending::wait`] collects the findings.
    pub async fn submit(
        &self,
        tenant: &str,
        text: &str,
        deadline: Option<Instant>,
    ) -> Result<Pending, NerError> {
        let mut queued = Vec::new();
        for piece in pieces::split(text) {
            let (reply, answer) = oneshot::channel();
            let job = Job {
                text: text[piece.span.clone()].to_owned(),
                reply,
            };
            self.queue
                .push(tenant, job, deadline)
                .await
                .map_err(|refused| match refused {
                    Refused::TimedOut => NerError::TimedOut,
                    Refused::Closed => stopped(),
                })?;
            queued.push((piece, answer));
        }
        Ok(Pending { pieces: queued })
    }
}

impl Pending {
    /// The text's findings once every piece is done, or why not by `deadline`. Pieces
    /// not yet run when it gives up are dropped from the queue unrun.
    pub async fn wait(self, deadline: Option<Instant>) -> Result<Vec<Finding>, NerError> {
        let mut findings = Vec::new();
        for (piece, answer) in self.pieces {
            let answered = match deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, answer)
                    .await
                    .map_err(|_| NerError::TimedOut)?,
                None => answer.await,
            };
            let found = answered.unwrap_or_else(|_| Err(stopped()))?;
            findings.extend(piece.keep(found));
        }
        Ok(findings)
    }
}

impl Drop for NerPool {
    fn drop(&mut self) {
        self.queue.close();
    }
}

fn stopped() -> NerError {
    NerError::Unavailable("the inference threads stopped".into())
}

/// One inference thread: takes the next tenant's turn (up to `max_batch` pieces of about
/// one piece's worth of text), runs them together and answers each.
fn serve(
    model: &NerModel,
    session: &mut ort::session::Session,
    queue: &FairQueue<Job>,
    max_batch: usize,
) {
    let turn = Turn {
        max_jobs: max_batch,
        max_weight: PIECE_BYTES,
        weight: |job: &Job| job.text.len(),
        live: |job: &Job| !job.reply.is_closed(),
    };
    while let Some(batch) = queue.take(&turn) {
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
