//! The NER pool's queue: one queue per tenant, served round-robin, so a tenant with much
//! to scan (a long prompt, a burst of requests) takes its turn like any other and never
//! holds the others behind it. Each tenant may have a bounded number of jobs waiting;
//! beyond it, callers wait for room until their deadline.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use tokio::time::Instant;

/// Why a job was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The deadline passed while the tenant's queue was full.
    TimedOut,
    /// The queue was closed (the pool is shutting down).
    Closed,
}

/// Jobs waiting, per tenant, and the order tenants are served in.
pub struct FairQueue<J> {
    state: Mutex<State<J>>,
    /// Wakes workers when a job arrives or the queue closes.
    work: Condvar,
    /// Wakes callers waiting for room when a worker takes jobs away.
    room: tokio::sync::Notify,
    per_tenant: usize,
}

struct State<J> {
    waiting: HashMap<Arc<str>, VecDeque<J>>,
    /// Tenants with jobs waiting, the next to serve first.
    turns: VecDeque<Arc<str>>,
    closed: bool,
}

/// What one turn may take: at most `max_jobs` jobs of one tenant, weighing at most
/// `max_weight` together (the first job is taken whatever it weighs).
pub struct Turn<W, L> {
    pub max_jobs: usize,
    pub max_weight: usize,
    pub weight: W,
    /// Whether a job is still wanted; jobs nobody waits for any more are dropped.
    pub live: L,
}

impl<J> FairQueue<J> {
    /// A queue letting each tenant have `per_tenant` jobs waiting (at least one).
    pub fn new(per_tenant: usize) -> Self {
        Self {
            state: Mutex::new(State {
                waiting: HashMap::new(),
                turns: VecDeque::new(),
                closed: false,
            }),
            work: Condvar::new(),
            room: tokio::sync::Notify::new(),
            per_tenant: per_tenant.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<J>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `job` for `tenant`, waiting for room while the tenant has its fill of jobs
    /// waiting, until `deadline` (forever when `None`).
    pub async fn push(
        &self,
        tenant: &str,
        job: J,
        deadline: Option<Instant>,
    ) -> Result<(), Refused> {
        let mut job = job;
        loop {
            // Registered before looking, so room made in between is not missed.
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            match self.try_push(tenant, job) {
                Ok(()) => return Ok(()),
                Err(None) => return Err(Refused::Closed),
                Err(Some(back)) => job = back,
            }
            match deadline {
                Some(deadline) => {
                    if tokio::time::timeout_at(deadline, room).await.is_err() {
                        return Err(Refused::TimedOut);
                    }
                }
                None => room.await,
            }
        }
    }

    /// Queues `job` if the tenant has room: `Err(Some(job))` when it has not,
    /// `Err(None)` when the queue is closed.
    fn try_push(&self, tenant: &str, job: J) -> Result<(), Option<J>> {
        let mut state = self.lock();
        if state.closed {
            return Err(None);
        }
        let state = &mut *state;
        match state.waiting.get_mut(tenant) {
            Some(queue) if queue.len() >= self.per_tenant => return Err(Some(job)),
            Some(queue) => queue.push_back(job),
            None => {
                let tenant: Arc<str> = Arc::from(tenant);
                state
                    .waiting
                    .insert(Arc::clone(&tenant), VecDeque::from([job]));
                state.turns.push_back(tenant);
            }
        }
        self.work.notify_one();
        Ok(())
    }

    /// The next turn's jobs, from the tenant whose turn it is; blocks until there are
    /// some. `None` once the queue is closed and empty.
    pub fn take<W, L>(&self, turn: &Turn<W, L>) -> Option<Vec<J>>
    where
        W: Fn(&J) -> usize,
        L: Fn(&J) -> bool,
    {
        let mut state = self.lock();
        loop {
            if let Some(batch) = Self::take_turn(&mut state, turn) {
                drop(state);
                self.room.notify_waiters();
                return Some(batch);
            }
            if state.closed {
                return None;
            }
            state = self
                .work
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// One tenant's turn, skipping tenants whose jobs are all dead; `None` when nothing
    /// live waits.
    fn take_turn<W, L>(state: &mut State<J>, turn: &Turn<W, L>) -> Option<Vec<J>>
    where
        W: Fn(&J) -> usize,
        L: Fn(&J) -> bool,
    {
        while let Some(tenant) = state.turns.pop_front() {
            let Some(queue) = state.waiting.get_mut(&tenant) else {
                continue;
            };
            let mut batch = Vec::new();
            let mut weight = 0;
            while batch.len() < turn.max_jobs.max(1) {
                let Some(job) = queue.front() else {
                    break;
                };
                if !(turn.live)(job) {
                    queue.pop_front();
                    continue;
                }
                let more = (turn.weight)(job);
                if !batch.is_empty() && weight + more > turn.max_weight {
                    break;
                }
                weight += more;
                batch.extend(queue.pop_front());
            }
            if queue.is_empty() {
                state.waiting.remove(&tenant);
            } else {
                state.turns.push_back(tenant);
            }
            if !batch.is_empty() {
                return Some(batch);
            }
        }
        None
    }

    /// Refuses new jobs; workers finish what waits, then `take` answers `None`.
    pub fn close(&self) {
        self.lock().closed = true;
        self.work.notify_all();
        self.room.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A job: its tenant's tag, its weight, and whether anyone still waits for it.
    type Job = (&'static str, usize, bool);

    fn turn() -> Turn<impl Fn(&Job) -> usize, impl Fn(&Job) -> bool> {
        Turn {
            max_jobs: 3,
            max_weight: 10,
            weight: |job: &Job| job.1,
            live: |job: &Job| job.2,
        }
    }

    fn tags(batch: &[Job]) -> String {
        batch.iter().map(|job| job.0).collect()
    }

    #[tokio::test]
    async fn tenants_take_turns_whatever_one_of_them_queued() {
        let queue = FairQueue::new(100);
        for _ in 0..20 {
            queue.push("big", ("B", 10, true), None).await.unwrap();
        }
        for _ in 0..5 {
            queue.push("small", ("s", 1, true), None).await.unwrap();
        }
        queue.push("other", ("o", 1, true), None).await.unwrap();
        let turn = turn();
        let mut served = Vec::new();
        for _ in 0..6 {
            served.push(tags(&queue.take(&turn).unwrap()));
        }
        // One heavy job per turn for `big`; small jobs go three to a turn.
        assert_eq!(served, ["B", "sss", "o", "B", "ss", "B"]);
    }

    #[tokio::test]
    async fn jobs_nobody_waits_for_are_dropped_unrun() {
        let queue = FairQueue::new(100);
        queue.push("a", ("x", 1, false), None).await.unwrap();
        queue.push("a", ("y", 1, true), None).await.unwrap();
        queue.push("b", ("z", 1, false), None).await.unwrap();
        queue.push("c", ("w", 1, true), None).await.unwrap();
        let turn = turn();
        assert_eq!(tags(&queue.take(&turn).unwrap()), "y");
        assert_eq!(tags(&queue.take(&turn).unwrap()), "w", "b had nothing live");
        queue.close();
        assert!(queue.take(&turn).is_none());
    }

    #[tokio::test]
    async fn a_full_tenant_waits_for_room_until_its_deadline_and_others_do_not() {
        let queue = Arc::new(FairQueue::new(2));
        queue.push("a", ("a", 1, true), None).await.unwrap();
        queue.push("a", ("a", 1, true), None).await.unwrap();
        let soon = Instant::now() + Duration::from_millis(50);
        assert_eq!(
            queue.push("a", ("a", 1, true), Some(soon)).await,
            Err(Refused::TimedOut)
        );
        queue.push("b", ("b", 1, true), Some(soon)).await.unwrap();
        // Room made by a worker lets the waiting caller in.
        let waiting = {
            let queue = Arc::clone(&queue);
            tokio::spawn(async move { queue.push("a", ("A", 1, true), None).await })
        };
        let taker = Arc::clone(&queue);
        let first = tokio::task::spawn_blocking(move || tags(&taker.take(&turn()).unwrap()))
            .await
            .unwrap();
        assert_eq!(first, "aa");
        waiting.await.unwrap().unwrap();
        queue.close();
        assert_eq!(
            queue.push("a", ("a", 1, true), None).await,
            Err(Refused::Closed)
        );
        let turn = turn();
        let rest: Vec<String> = std::iter::from_fn(|| queue.take(&turn))
            .map(|b| tags(&b))
            .collect();
        assert_eq!(rest, ["b", "A"], "what waits is still served after closing");
    }
}
