//! The reading half of a run: every unfinished resource's pages, read ahead of the one being
//! stored, with a few queries running at once.
//!
//! Each resource is read as one or more streams ([`Connector::streams`]): key ranges, each its
//! own ordered query. Up to `concurrency` streams are read at a time, started in the order the
//! run stores them: the streams of the resource being stored, then those of the next
//! resources. Planning a resource's streams makes calls too (a fingerprint, a first page): the
//! next few resources are planned while earlier ones are planned and read, each plan taking a
//! stream's slot while it runs. A resource's pages reach the storing side as they come, from
//! all its streams (every page says which keys it covers, so the order does not matter); the
//! storing side takes one resource at a time, so a resource read ahead holds at most
//! [`PAGES_AHEAD`] pages and each of its streams one more, and memory stays bounded whatever
//! the org's size.
//!
//! Nothing here can stall: the streams of the resource being stored are always among those
//! being read, since those of the resources before it have all ended.
//!
//! A resource's checkpoint says where each unfinished stream stands ([`Positions`]), so a
//! run stopped anywhere resumes every stream where it was.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::stream::{FuturesUnordered, StreamExt};
use provost_connector::connector::{
    Connector, ConnectorError, Cursor, Page, ResourceType, Watermark,
};
use tokio::sync::{mpsc, oneshot};

/// Pages of a resource read and not yet taken by the storing side (besides the one each of
/// its streams holds while it waits).
pub const PAGES_AHEAD: usize = 2;

/// Why reading a resource stopped before its end.
pub enum Stop {
    LockLost,
    Budget(String),
    Read(ConnectorError),
    /// The connector broke the coverage contract.
    Contract(String),
}

/// What a resource's channel carries: the streams it is read as (their start cursors), then
/// each stream's pages, in that stream's order, mixed with the other streams' as they come.
pub enum Item {
    Streams(Vec<Option<String>>),
    Page(usize, Result<Page, Stop>),
}

/// A resource's items.
pub type Pages = mpsc::Receiver<Item>;

/// The prefix of a checkpoint of several streams: a JSON array of their cursors follows.
const STREAMS: &str = "streams:";

/// Where a resource's streams stand: each unfinished stream's next cursor (`None`: from the
/// start). Its checkpoint text is the one stream's cursor as the connector wrote it, or
/// `streams:` and a JSON array of the unfinished streams' cursors.
pub struct Positions {
    /// By stream; `None` once the stream has ended.
    streams: Vec<Option<Option<String>>>,
}

impl Positions {
    pub fn new(starts: Vec<Option<String>>) -> Positions {
        Positions {
            streams: starts.into_iter().map(Some).collect(),
        }
    }

    /// Stream `stream` has read a page whose next cursor is `next` (`None`: it has ended).
    pub fn advance(&mut self, stream: usize, next: Option<String>) {
        if let Some(slot) = self.streams.get_mut(stream) {
            *slot = next.map(Some);
        }
    }

    pub fn done(&self) -> bool {
        self.streams.iter().all(Option::is_none)
    }

    pub fn checkpoint(&self) -> Option<String> {
        let left: Vec<&Option<String>> = self.streams.iter().flatten().collect();
        match left.as_slice() {
            [] => None,
            [Some(one)] => Some(one.clone()),
            many => Some(format!(
                "{STREAMS}{}",
                serde_json::to_string(many).expect("strings serialise")
            )),
        }
    }

    /// The streams a checkpoint holds; `None` for a resource read from its start.
    fn parse(checkpoint: Option<&str>) -> Option<Result<Vec<Option<String>>, String>> {
        let text = checkpoint?;
        Some(match text.strip_prefix(STREAMS) {
            Some(json) => serde_json::from_str(json).map_err(|err| err.to_string()),
            None => Ok(vec![Some(text.to_owned())]),
        })
    }
}

/// What the run's reading needs to know.
pub struct Reading<'a> {
    connector: &'a dyn Connector,
    lost: &'a AtomicBool,
    budget_percent: u8,
    /// Streams read at once.
    concurrency: usize,
    /// Whether a page of this attempt has come back: the quota is fresh from then on.
    answered: AtomicBool,
    /// Told when the first page comes back.
    first_answer: tokio::sync::Notify,
}

/// A resource's plan: being made, or not made because the run stopped first.
enum Plan {
    Planning(oneshot::Receiver<Result<Vec<Option<String>>, ConnectorError>>),
    Stopped(Stop),
}

/// One resource to read: its checkpoint.
pub struct Wanted<'a> {
    pub resource: &'a ResourceType,
    pub checkpoint: Option<String>,
    pub since: Option<Watermark>,
}

type Task<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

impl<'a> Reading<'a> {
    pub fn new(
        connector: &'a dyn Connector,
        lost: &'a AtomicBool,
        budget_percent: u8,
        concurrency: usize,
    ) -> Reading<'a> {
        Reading {
            connector,
            lost,
            budget_percent,
            concurrency,
            answered: AtomicBool::new(false),
            first_answer: tokio::sync::Notify::new(),
        }
    }

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

    async fn read_all(&'a self, wanted: Vec<Wanted<'a>>, outputs: Vec<mpsc::Sender<Item>>) {
        let mut streams: FuturesUnordered<Task<'a>> = FuturesUnordered::new();
        let mut waiting = wanted.into_iter().zip(outputs);
        // Resources whose streams are planned or being planned, in the order they are stored.
        let mut planned: VecDeque<(Wanted<'a>, mpsc::Sender<Item>, Plan)> = VecDeque::new();
        let mut stopped = false;
        loop {
            // Plan the next resources while earlier ones are read: planning makes calls (a
            // fingerprint, a first page), and one after another they add up.
            while !stopped && planned.len() <= self.plans_ahead() {
                let Some((want, output)) = waiting.next() else {
                    break;
                };
                self.wait_for_a_slot(&mut streams).await;
                // Planning a read makes calls too: none past the budget.
                let plan = match self.stopped() {
                    Some(stop) => {
                        stopped = true;
                        Plan::Stopped(stop)
                    }
                    None => {
                        let (sent, plan) = oneshot::channel();
                        streams.push(Box::pin(self.plan(
                            want.resource,
                            want.checkpoint.clone(),
                            want.since.clone(),
                            sent,
                        )));
                        Plan::Planning(plan)
                    }
                };
                planned.push_back((want, output, plan));
            }
            let Some((want, output, plan)) = planned.pop_front() else {
                break;
            };
            let starts = match plan {
                Plan::Stopped(stop) => Err(stop),
                // The task always sends before it ends; the streams outlive this loop.
                Plan::Planning(plan) => until(&mut streams, plan)
                    .await
                    .expect("a plan task sends its plan")
                    .map_err(Stop::Read),
            };
            let (item, starts) = match starts {
                Ok(starts) => (Item::Streams(starts.clone()), starts),
                Err(stop) => (Item::Page(0, Err(stop)), Vec::new()),
            };
            // Reading stops at a resource that cannot be read, or that nobody takes any more.
            if until(&mut streams, output.send(item)).await.is_err() || starts.is_empty() {
                break;
            }
            for (index, start) in starts.into_iter().enumerate() {
                self.wait_for_a_slot(&mut streams).await;
                streams.push(Box::pin(self.read_stream(
                    want.resource,
                    want.since.clone(),
                    index,
                    start.map(Cursor),
                    output.clone(),
                )));
            }
        }
        while streams.next().await.is_some() {}
    }

    /// How many resources may be planned beyond the one whose streams are being started: none
    /// until the first answer has told the org's API usage (a run over its budget stops after one
    /// call), and then no more than the other slots, since plans take the streams' slots (no more
    /// than `concurrency` queries run at once), nor than the query cursors allow. The resource
    /// whose streams are being started holds its first page's cursor until they start, and so
    /// may each planned full read: with the streams, that stays within
    /// [`super::MAX_CONCURRENCY`] and one more, of the 10 Salesforce keeps per user (it forgets
    /// the oldest when an 11th opens, which costs that read a query to go on after its last ID).
    /// At the default concurrency, two ahead; at 1 or 8, none, as when plans were made one
    /// after another.
    fn plans_ahead(&self) -> usize {
        if !self.answered.load(Ordering::SeqCst) {
            return 0;
        }
        let slots = self.concurrency.saturating_sub(1);
        let cursors = super::MAX_CONCURRENCY.saturating_sub(self.concurrency);
        slots.min(cursors)
    }

    /// Plans `resource`'s streams and sends them to `sent`: a task beside the streams.
    async fn plan(
        &self,
        resource: &ResourceType,
        checkpoint: Option<String>,
        since: Option<Watermark>,
        sent: oneshot::Sender<Result<Vec<Option<String>>, ConnectorError>>,
    ) {
        let _ = sent.send(
            self.starts(resource, checkpoint.as_deref(), since.as_ref())
                .await,
        );
    }

    /// Where a resource's streams start: from its checkpoint, or as the connector plans them.
    async fn starts(
        &self,
        resource: &ResourceType,
        checkpoint: Option<&str>,
        since: Option<&Watermark>,
    ) -> Result<Vec<Option<String>>, ConnectorError> {
        let starts = match Positions::parse(checkpoint) {
            Some(parsed) => parsed.map_err(|err| ConnectorError::InvalidCursor {
                message: format!(
                    "the checkpoint of `{}` does not list its streams ({err}); read the resource again from the start",
                    resource.id
                ),
            })?,
            None => self
                .connector
                .streams(resource, since, self.concurrency)
                .await?
                .into_iter()
                .map(|start| start.map(|cursor| cursor.0))
                .collect(),
        };
        Ok(match starts.is_empty() {
            true => vec![None],
            false => starts,
        })
    }

    /// Waits until another stream may start: fewer than `concurrency` are being read, and,
    /// until the first answer tells the org's API usage, none (so that a run over its budget
    /// stops after one call, not after a call per stream).
    async fn wait_for_a_slot(&self, streams: &mut FuturesUnordered<Task<'a>>) {
        loop {
            if streams.len() >= self.concurrency {
                streams.next().await;
            } else if !streams.is_empty() && !self.answered.load(Ordering::SeqCst) {
                tokio::select! {
                    () = self.first_answer.notified() => {}
                    Some(()) = streams.next() => {}
                }
            } else {
                return;
            }
        }
    }

    /// Reads stream `index` from `start` to its end (or an error, or a stop) into `pages`.
    async fn read_stream(
        &'a self,
        resource: &'a ResourceType,
        since: Option<Watermark>,
        index: usize,
        start: Option<Cursor>,
        pages: mpsc::Sender<Item>,
    ) {
        let mut cursor = start;
        loop {
            if let Some(stop) = self.stopped() {
                let _ = pages.send(Item::Page(index, Err(stop))).await;
                return;
            }
            match self
                .connector
                .read_page(resource, cursor.as_ref(), since.as_ref())
                .await
            {
                Ok(page) => {
                    if !self.answered.swap(true, Ordering::SeqCst) {
                        self.first_answer.notify_waiters();
                    }
                    cursor = page.next.clone();
                    if pages.send(Item::Page(index, Ok(page))).await.is_err() || cursor.is_none() {
                        return;
                    }
                }
                Err(err) => {
                    let _ = pages.send(Item::Page(index, Err(Stop::Read(err)))).await;
                    return;
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

/// Awaits `step` while the streams go on.
async fn until<F: Future>(streams: &mut FuturesUnordered<Task<'_>>, step: F) -> F::Output {
    let mut step = std::pin::pin!(step);
    loop {
        tokio::select! {
            biased;
            output = &mut step => return output,
            Some(()) = streams.next(), if !streams.is_empty() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_lists_the_unfinished_streams_and_one_stream_keeps_its_own_cursor() {
        let mut positions =
            Positions::new(vec![Some("a".into()), Some("b".into()), Some("c".into())]);
        positions.advance(1, None);
        let checkpoint = positions.checkpoint().unwrap();
        assert_eq!(checkpoint, r#"streams:["a","c"]"#);
        assert_eq!(
            Positions::parse(Some(&checkpoint)).unwrap().unwrap(),
            vec![Some("a".to_owned()), Some("c".to_owned())]
        );
        positions.advance(0, None);
        positions.advance(2, Some("c2".into()));
        assert_eq!(positions.checkpoint().as_deref(), Some("c2"));
        assert_eq!(
            Positions::parse(Some("c2")).unwrap().unwrap(),
            vec![Some("c2".to_owned())]
        );
        assert!(!positions.done());
        positions.advance(2, None);
        assert!(positions.done());
        assert_eq!(positions.checkpoint(), None);
        assert!(Positions::parse(None).is_none());
        assert!(Positions::parse(Some("streams:[1")).unwrap().is_err());
    }
}
