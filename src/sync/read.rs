//! The reading half of a run: every unfinished resource's pages, read ahead of the one being
//! stored, with a few queries running at once.
//!
//! Each resource is read as one or more streams ([`Connector::streams`]): key ranges, each its
//! own ordered query. Up to `concurrency` streams are read at a time, in the order the run
//! stores them: the streams of the resource being stored first, then those of the next
//! resources. A stream holds at most [`PAGES_AHEAD`] pages it has read and nobody has taken,
//! so memory stays bounded whatever the org's size. A resource's streams are handed to the
//! storing side in order, as one sequence of pages: the last page of a stream that is not the
//! resource's last names the next stream's start as its `next` cursor, which is what the run
//! checkpoints, so a run stopped there resumes with the streams that were left.
//!
//! Nothing here can stall: the stream being stored is always among those being read, since
//! the earlier ones have all ended.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::stream::{FuturesUnordered, StreamExt};
use provost_connector::connector::{
    Connector, ConnectorError, Cursor, Page, ResourceType, Watermark,
};
use tokio::sync::mpsc;

/// Pages a stream reads ahead of the one being stored.
pub const PAGES_AHEAD: usize = 2;

/// Why reading a resource stopped before its end.
pub enum Stop {
    LockLost,
    Budget(String),
    Read(ConnectorError),
    /// The connector broke the coverage contract.
    Contract(String),
}

/// What the run's reading needs to know.
pub struct Reading<'a> {
    pub connector: &'a dyn Connector,
    pub lost: &'a AtomicBool,
    pub budget_percent: u8,
    /// Streams read at once.
    pub concurrency: usize,
    /// Whether a page of this attempt has come back: the quota is fresh from then on.
    pub answered: AtomicBool,
}

/// One resource to read: where its checkpoint stands.
pub struct Wanted<'a> {
    pub resource: &'a ResourceType,
    pub cursor: Option<String>,
    pub since: Option<Watermark>,
}

/// A resource's pages in order, and why its reading stopped early.
pub type Pages = mpsc::Receiver<Result<Page, Stop>>;

type Task<'a> = Pin<Box<dyn Future<Output = Ended> + Send + 'a>>;

/// Which kind of task ended.
enum Ended {
    Stream,
    Forward,
}

impl<'a> Reading<'a> {
    /// A receiver for each of `wanted`'s resources, in order, and the future that reads them:
    /// run it beside the storing side, which takes the receivers in order.
    pub fn start(
        &'a self,
        wanted: Vec<Wanted<'a>>,
    ) -> (Vec<Pages>, impl Future<Output = ()> + Send + 'a) {
        let (senders, receivers): (Vec<_>, Vec<_>) =
            wanted.iter().map(|_| mpsc::channel(PAGES_AHEAD)).unzip();
        (receivers, self.read_all(wanted, senders))
    }

    async fn read_all(
        &'a self,
        wanted: Vec<Wanted<'a>>,
        outputs: Vec<mpsc::Sender<Result<Page, Stop>>>,
    ) {
        let mut tasks: FuturesUnordered<Task<'a>> = FuturesUnordered::new();
        let mut streams = 0usize;
        for (want, output) in wanted.into_iter().zip(outputs) {
            // Planning a read makes calls too: none past the budget.
            if let Some(stop) = self.stopped() {
                let _ = until(&mut tasks, &mut streams, output.send(Err(stop))).await;
                break;
            }
            let cursor = want.cursor.clone().map(Cursor);
            let planning = self.connector.streams(
                want.resource,
                cursor.as_ref(),
                want.since.as_ref(),
                self.concurrency,
            );
            let starts = match until(&mut tasks, &mut streams, planning).await {
                Ok(starts) if !starts.is_empty() => starts,
                Ok(_) => vec![cursor],
                Err(err) => {
                    let _ =
                        until(&mut tasks, &mut streams, output.send(Err(Stop::Read(err)))).await;
                    break;
                }
            };
            let (senders, receivers): (Vec<_>, Vec<_>) =
                starts.iter().map(|_| mpsc::channel(PAGES_AHEAD)).unzip();
            tasks.push(Box::pin(forward(receivers, starts.clone(), output)));
            for (start, sender) in starts.into_iter().zip(senders) {
                // One stream until the first answer tells the org's API usage, so that a
                // run over its budget stops after one call, not after a call per stream.
                while streams >= self.concurrency
                    || (streams > 0 && !self.answered.load(Ordering::SeqCst))
                {
                    next(&mut tasks, &mut streams).await;
                }
                streams += 1;
                tasks.push(Box::pin(self.read_stream(
                    want.resource,
                    want.since.clone(),
                    start,
                    sender,
                )));
            }
        }
        while !tasks.is_empty() {
            next(&mut tasks, &mut streams).await;
        }
    }

    /// Reads one stream from `start` to its end (or an error, or a stop) into `pages`.
    async fn read_stream(
        &'a self,
        resource: &'a ResourceType,
        since: Option<Watermark>,
        start: Option<Cursor>,
        pages: mpsc::Sender<Result<Page, Stop>>,
    ) -> Ended {
        let mut cursor = start;
        loop {
            if let Some(stop) = self.stopped() {
                let _ = pages.send(Err(stop)).await;
                return Ended::Stream;
            }
            match self
                .connector
                .read_page(resource, cursor.as_ref(), since.as_ref())
                .await
            {
                Ok(page) => {
                    self.answered.store(true, Ordering::SeqCst);
                    cursor = page.next.clone();
                    if pages.send(Ok(page)).await.is_err() || cursor.is_none() {
                        return Ended::Stream;
                    }
                }
                Err(err) => {
                    let _ = pages.send(Err(Stop::Read(err))).await;
                    return Ended::Stream;
                }
            }
        }
    }

    /// Whether to stop before the next call: the lock is lost, or the API budget reached
    /// (the quota as this attempt's own answers reported it, not a stale earlier figure).
    fn stopped(&self) -> Option<Stop> {
        if self.lost.load(Ordering::SeqCst) {
            return Some(Stop::LockLost);
        }
        let fresh = self.answered.load(Ordering::SeqCst);
        let quota = self.connector.quota().filter(|_| fresh)?;
        let budget = quota.limit * u64::from(self.budget_percent) / 100;
        (quota.used >= budget).then(|| {
            Stop::Budget(format!(
                "the org has used {} of its {} API requests today, the sync budget is {}% ({budget}); the run resumes from its checkpoint at the next sync",
                quota.used, quota.limit, self.budget_percent
            ))
        })
    }
}

/// Hands a resource's streams on as one sequence of pages: each stream's last page names the
/// next stream's start as its `next`.
async fn forward(
    streams: Vec<mpsc::Receiver<Result<Page, Stop>>>,
    starts: Vec<Option<Cursor>>,
    output: mpsc::Sender<Result<Page, Stop>>,
) -> Ended {
    for (k, mut stream) in streams.into_iter().enumerate() {
        loop {
            let Some(item) = stream.recv().await else {
                // The stream was dropped before its end: the run is stopping.
                return Ended::Forward;
            };
            let mut page = match item {
                Ok(page) => page,
                Err(stop) => {
                    let _ = output.send(Err(stop)).await;
                    return Ended::Forward;
                }
            };
            let ended = page.next.is_none();
            if ended {
                page.next = starts.get(k + 1).cloned().flatten();
            }
            if output.send(Ok(page)).await.is_err() {
                return Ended::Forward;
            }
            if ended {
                break;
            }
        }
    }
    Ended::Forward
}

/// Waits for one task to end.
async fn next(tasks: &mut FuturesUnordered<Task<'_>>, streams: &mut usize) {
    if let Some(Ended::Stream) = tasks.next().await {
        *streams -= 1;
    }
}

/// Awaits `step` while the tasks go on.
async fn until<F: Future>(
    tasks: &mut FuturesUnordered<Task<'_>>,
    streams: &mut usize,
    step: F,
) -> F::Output {
    let mut step = std::pin::pin!(step);
    loop {
        tokio::select! {
            biased;
            output = &mut step => return output,
            Some(ended) = tasks.next(), if !tasks.is_empty() => {
                if let Ended::Stream = ended {
                    *streams -= 1;
                }
            }
        }
    }
}
