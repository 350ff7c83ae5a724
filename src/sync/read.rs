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
//! storing side takes one resource at a time, so a resource's channel holds at most
//! [`PAGES_AHEAD`] pages. A stream whose channel is full reads on while the pages it holds fit
//! in the run's read-ahead allowance ([`READ_AHEAD_BYTES`], shared by all streams, by an
//! estimate of each page's memory); past it, it hands over what it holds and that page before
//! it reads on, as each stream waited with its one page before. So memory stays bounded
//! whatever the org's size: the channels, the allowance, and a page for each stream reading.
//!
//! A stream's slot (one of `concurrency`) is taken from its start until it has read its last
//! page, not until the storing side has taken the pages it holds: the next streams start as
//! soon as the ones before have been read. So a small resource after a large one (the
//! permission set license assignments after the assignments) is read while the large one is
//! stored, not after it.
//!
//! Nothing here can stall: the streams of the resource being stored are always among those
//! being read or handing over what they read, since those of the resources before it have all
//! ended; a stream never waits for the allowance, only for its channel.
//!
//! A resource's checkpoint says where each unfinished stream stands ([`Positions`]), so a
//! run stopped anywhere resumes every stream where it was.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::stream::{FuturesUnordered, StreamExt};
use provost_connector::connector::{
    Connector, ConnectorError, Coverage, Cursor, Page, ResourceType, Watermark,
};
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot, Semaphore, SemaphorePermit};

/// Pages of a resource read and not yet taken by the storing side (besides those its streams
/// hold).
pub const PAGES_AHEAD: usize = 2;

/// How much memory (estimated, see [`held_bytes`]) the pages streams hold beyond their
/// channels may take, all streams together. The `large` org's users come to about 7 MB a page
/// (2,500 accounts with their attributes and grants), their assignments to about 0.5 MB.
/// With 64 MB a full sync of `large` peaked 20 to 30 MB higher and was no faster than with 16
/// (see docs/src/performance.md).
pub const READ_AHEAD_BYTES: usize = 16 << 20;

/// The unit the read-ahead allowance is counted in.
const ALLOWANCE_UNIT: usize = 1 << 10;

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
    /// A permit for each plan and stream still reading (a stream that has read its last page
    /// and only hands over what it holds gives its permit back): `concurrency` of them.
    slots: Semaphore,
    /// What pages held beyond the channels may take, in [`ALLOWANCE_UNIT`]s.
    allowance: Semaphore,
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
            slots: Semaphore::new(concurrency),
            allowance: Semaphore::new(READ_AHEAD_BYTES / ALLOWANCE_UNIT),
        }
    }

    /// The same, with `bytes` of read-ahead allowance instead of [`READ_AHEAD_BYTES`].
    #[cfg(test)]
    fn with_read_ahead(mut self, bytes: usize) -> Reading<'a> {
        self.allowance = Semaphore::new(bytes / ALLOWANCE_UNIT);
        self
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
                let slot = self.wait_for_a_slot(&mut streams).await;
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
                            slot,
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
                let slot = self.wait_for_a_slot(&mut streams).await;
                streams.push(Box::pin(self.read_stream(
                    want.resource,
                    want.since.clone(),
                    (index, slot),
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

    /// Plans `resource`'s streams and sends them to `sent`: a task beside the streams, in
    /// `slot` until it ends.
    async fn plan(
        &self,
        resource: &ResourceType,
        checkpoint: Option<String>,
        since: Option<Watermark>,
        sent: oneshot::Sender<Result<Vec<Option<String>>, ConnectorError>>,
        slot: Slot<'a>,
    ) {
        let starts = self
            .starts(resource, checkpoint.as_deref(), since.as_ref())
            .await;
        drop(slot);
        let _ = sent.send(starts);
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

    /// Waits until another stream may start, and returns its slot: fewer than `concurrency`
    /// are being read, and, until the first answer tells the org's API usage, none (so that a
    /// run over its budget stops after one call, not after a call per stream).
    async fn wait_for_a_slot(&'a self, streams: &mut FuturesUnordered<Task<'a>>) -> Slot<'a> {
        loop {
            if !streams.is_empty() && !self.answered.load(Ordering::SeqCst) {
                tokio::select! {
                    () = self.first_answer.notified() => {}
                    Some(()) = streams.next() => {}
                }
                continue;
            }
            tokio::select! {
                slot = self.slots.acquire() => return slot.expect("the slots are never closed"),
                Some(()) = streams.next() => {}
            }
        }
    }

    /// Reads stream `index` from `start` to its end (or an error, or a stop) into `pages`,
    /// holding what its channel has no room for while the read-ahead allowance lasts. It keeps
    /// `slot` until it has read its last page and passed it on or held it; a stream that stops
    /// or fails keeps it until it has handed everything over, so that no other starts meanwhile
    /// (the run stops at this resource, and a failed read's query may still be open).
    async fn read_stream(
        &'a self,
        resource: &'a ResourceType,
        since: Option<Watermark>,
        (index, slot): (usize, Slot<'a>),
        start: Option<Cursor>,
        pages: mpsc::Sender<Item>,
    ) {
        let mut held = Held::default();
        let mut cursor = start;
        loop {
            if let Some(stop) = self.stopped() {
                held.hold_unbudgeted(Item::Page(index, Err(stop)));
                break;
            }
            let read = self
                .connector
                .read_page(resource, cursor.as_ref(), since.as_ref());
            let Some(result) = held.hand_over_while(&pages, read).await else {
                // Nobody takes this resource's pages any more.
                return;
            };
            let page = match result {
                Ok(page) => page,
                Err(err) => {
                    held.hold_unbudgeted(Item::Page(index, Err(Stop::Read(err))));
                    break;
                }
            };
            if !self.answered.swap(true, Ordering::SeqCst) {
                self.first_answer.notify_waiters();
            }
            cursor = page.next.clone();
            if !held
                .pass_or_hold(&pages, Item::Page(index, Ok(page)), &self.allowance)
                .await
            {
                return;
            }
            if cursor.is_none() {
                // Read to its end (Salesforce has closed its query): the slot goes to another
                // stream while this one hands over what it holds.
                drop(slot);
                held.hand_over_all(&pages).await;
                return;
            }
        }
        held.hand_over_all(&pages).await;
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

/// A plan's or a reading stream's place among the `concurrency` at once.
type Slot<'a> = SemaphorePermit<'a>;

/// The pages a stream has read and its channel had no room for yet, in the stream's order,
/// each with its share of the read-ahead allowance (a stop or failure, and a page that waits
/// for room, has none).
#[derive(Default)]
struct Held<'s> {
    pages: VecDeque<(Item, Option<SemaphorePermit<'s>>)>,
}

impl<'s> Held<'s> {
    /// Holds `item` without a share of the allowance: the stream hands it over before it
    /// reads again, or ends.
    fn hold_unbudgeted(&mut self, item: Item) {
        self.pages.push_back((item, None));
    }

    /// Awaits `step`, handing held pages to the channel as it makes room; `None` when the
    /// channel is closed.
    async fn hand_over_while<F: Future>(
        &mut self,
        pages: &mpsc::Sender<Item>,
        step: F,
    ) -> Option<F::Output> {
        let mut step = std::pin::pin!(step);
        loop {
            if self.pages.is_empty() {
                return Some(step.await);
            }
            tokio::select! {
                biased;
                room = pages.reserve() => {
                    let (item, _share) = self.pages.pop_front().expect("a page is held");
                    room.ok()?.send(item);
                }
                output = &mut step => return Some(output),
            }
        }
    }

    /// Hands every held page to the channel, in order, waiting for room; `false` when the
    /// channel is closed.
    async fn hand_over_all(&mut self, pages: &mpsc::Sender<Item>) -> bool {
        while let Some((item, _share)) = self.pages.pop_front() {
            if pages.send(item).await.is_err() {
                return false;
            }
        }
        true
    }

    /// Passes `item` on or holds it, behind the pages held before it: into the channel when
    /// it has room and nothing is held; else held if its estimated memory fits in what is left
    /// of `allowance`; else handed over after them, waiting for room (the stream reads nothing
    /// meanwhile, as every stream did before pages were held). `false` when the channel is
    /// closed.
    async fn pass_or_hold(
        &mut self,
        pages: &mpsc::Sender<Item>,
        item: Item,
        allowance: &'s Semaphore,
    ) -> bool {
        let item = if self.pages.is_empty() {
            match pages.try_send(item) {
                Ok(()) => return true,
                Err(mpsc::error::TrySendError::Closed(_)) => return false,
                Err(mpsc::error::TrySendError::Full(item)) => item,
            }
        } else {
            item
        };
        // Estimated only for a page that is to be held, not for each page passed on.
        let bytes = held_bytes(&item);
        let units = u32::try_from(bytes.div_ceil(ALLOWANCE_UNIT).max(1)).unwrap_or(u32::MAX);
        match allowance.try_acquire_many(units) {
            Ok(share) => {
                self.pages.push_back((item, Some(share)));
                true
            }
            Err(_) => {
                self.hold_unbudgeted(item);
                self.hand_over_all(pages).await
            }
        }
    }
}

/// About how much memory a page takes, for the read-ahead allowance: each row's fields and
/// their allocations, each attribute's key, value and map entry (an account of the `large` org
/// comes to about 2 KB, a grant to 300 bytes), and each key a read of changes names. Nothing
/// for a stop or failure.
fn held_bytes(item: &Item) -> usize {
    let Item::Page(_, Ok(page)) = item else {
        return 0;
    };
    const ROW: usize = 300;
    const ATTRIBUTE: usize = 130;
    const ACTION: usize = 32;
    const KEY: usize = 50;
    let attributes = |map: &Map<String, Value>| map.len() * ATTRIBUTE;
    let accounts = page
        .accounts
        .iter()
        .map(|account| ROW + attributes(&account.attributes));
    let entitlements = page
        .entitlements
        .iter()
        .map(|entitlement| ROW + attributes(&entitlement.attributes));
    let grants = page
        .grants
        .iter()
        .map(|grant| ROW + attributes(&grant.attributes));
    let permissions = page.permissions.iter().map(|permission| {
        ROW + attributes(&permission.attributes) + permission.actions.len() * ACTION
    });
    let keys = match &page.coverage {
        Coverage::Records(keys) => keys.len() * KEY,
        Coverage::Range { .. } => 0,
    };
    keys + accounts
        .chain(entitlements)
        .chain(grants)
        .chain(permissions)
        .sum::<usize>()
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
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    use async_trait::async_trait;
    use provost_connector::model::{Grant, GrantSource};

    static RESOURCES: [ResourceType; 2] = [
        ResourceType {
            id: "first",
            label: "First",
        },
        ResourceType {
            id: "second",
            label: "Second",
        },
    ];

    /// Every resource one stream of `pages` pages, each of one grant, and the read of one
    /// page failing; remembers each read.
    struct Pager {
        pages: usize,
        fails: Option<(&'static str, usize)>,
        reads: Mutex<Vec<(&'static str, usize)>>,
    }

    impl Pager {
        fn new(pages: usize) -> Pager {
            Pager {
                pages,
                fails: None,
                reads: Mutex::new(Vec::new()),
            }
        }

        fn reads_of(&self, resource: &str) -> usize {
            let reads = self.reads.lock().expect("reads");
            reads.iter().filter(|(id, _)| *id == resource).count()
        }
    }

    #[async_trait]
    impl Connector for Pager {
        fn resource_types(&self) -> &'static [ResourceType] {
            &RESOURCES
        }

        async fn read_page(
            &self,
            resource: &ResourceType,
            cursor: Option<&Cursor>,
            _since: Option<&Watermark>,
        ) -> Result<Page, ConnectorError> {
            let at: usize = cursor.map_or(0, |cursor| cursor.0.parse().expect("a page number"));
            self.reads.lock().expect("reads").push((resource.id, at));
            for _ in 0..3 {
                tokio::task::yield_now().await;
            }
            if self.fails == Some((resource.id, at)) {
                return Err(ConnectorError::Unavailable {
                    message: format!("page {at} of {} failed", resource.id),
                });
            }
            Ok(Page {
                grants: vec![Grant {
                    id: format!("{}-{at}", resource.id),
                    account_id: "005".into(),
                    entitlement_id: "0PS".into(),
                    source: GrantSource::Direct,
                    expires_at: None,
                    attributes: Map::new(),
                }],
                next: (at + 1 < self.pages).then(|| Cursor((at + 1).to_string())),
                records: 1,
                ..Page::default()
            })
        }
    }

    /// The grants of a resource's pages, in the order the storing side gets them.
    async fn take_all(pages: &mut Pages) -> Vec<String> {
        let mut ids = Vec::new();
        while let Some(item) = pages.recv().await {
            match item {
                Item::Streams(starts) => assert_eq!(starts, vec![None]),
                Item::Page(stream, page) => {
                    assert_eq!(stream, 0);
                    let Ok(page) = page else {
                        panic!("a read failed");
                    };
                    ids.extend(page.grants.into_iter().map(|grant| grant.id));
                }
            }
        }
        ids
    }

    /// The grants of both resources' pages, the first's first.
    async fn take_both(receivers: &mut [Pages]) -> (Vec<String>, Vec<String>) {
        let first = take_all(&mut receivers[0]).await;
        (first, take_all(&mut receivers[1]).await)
    }

    fn wanted() -> Vec<Wanted<'static>> {
        RESOURCES
            .iter()
            .map(|resource| Wanted {
                resource,
                checkpoint: None,
                since: None,
            })
            .collect()
    }

    fn ids(resource: &str, pages: usize) -> Vec<String> {
        (0..pages).map(|at| format!("{resource}-{at}")).collect()
    }

    #[tokio::test]
    async fn a_stream_read_to_its_end_leaves_its_slot_while_the_storing_side_has_not_taken_its_pages(
    ) {
        // One query at a time, and nothing taken yet: the first resource's pages outnumber its
        // channel, so its stream holds the rest; having read its last page, it leaves its
        // slot, and the second resource is read meanwhile.
        let pager = Pager::new(6);
        let lost = AtomicBool::new(false);
        let reading = Reading::new(&pager, &lost, 100, 1);
        let (mut receivers, reader) = reading.start(wanted());
        let storing = async {
            let deadline = Instant::now() + Duration::from_secs(10);
            while pager.reads_of("second") < 6 {
                assert!(
                    Instant::now() < deadline,
                    "the second resource was not read while the first's pages waited: {:?}",
                    pager.reads.lock().expect("reads")
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            take_both(&mut receivers).await
        };
        let ((first, second), ()) = tokio::join!(storing, reader);
        assert_eq!(first, ids("first", 6));
        assert_eq!(second, ids("second", 6));
    }

    #[tokio::test]
    async fn without_read_ahead_allowance_a_stream_holds_one_page_and_waits() {
        let pager = Pager::new(6);
        let lost = AtomicBool::new(false);
        let reading = Reading::new(&pager, &lost, 100, 1).with_read_ahead(0);
        let (mut receivers, reader) = reading.start(wanted());
        let storing = async {
            // The reader runs while this yields (one thread: nothing else runs meanwhile).
            for _ in 0..200 {
                tokio::task::yield_now().await;
            }
            // The channel holds the streams and a page; the stream, the next page.
            assert_eq!(
                *pager.reads.lock().expect("reads"),
                vec![("first", 0), ("first", 1)]
            );
            take_both(&mut receivers).await
        };
        let ((first, second), ()) = tokio::join!(storing, reader);
        assert_eq!(first, ids("first", 6));
        assert_eq!(second, ids("second", 6));
    }

    #[tokio::test]
    async fn pages_held_for_a_slow_storing_side_arrive_in_their_order_and_a_failure_after_them() {
        let pager = Pager {
            fails: Some(("first", 25)),
            ..Pager::new(30)
        };
        let lost = AtomicBool::new(false);
        let reading = Reading::new(&pager, &lost, 100, 1);
        let (mut receivers, reader) = reading.start(wanted());
        let storing = async {
            // Slower than the reads: the stream holds pages, and hands them over as the
            // channel makes room while it reads the next.
            let mut first = Vec::new();
            let mut failure = None;
            while let Some(item) = receivers[0].recv().await {
                for _ in 0..10 {
                    tokio::task::yield_now().await;
                }
                match item {
                    Item::Streams(_) => assert!(first.is_empty()),
                    Item::Page(_, Ok(page)) => {
                        assert!(failure.is_none(), "a page came after the failure");
                        first.extend(page.grants.into_iter().map(|grant| grant.id));
                    }
                    Item::Page(_, Err(Stop::Read(err))) => failure = Some(err.to_string()),
                    Item::Page(_, Err(_)) => panic!("the stream stopped for another reason"),
                }
            }
            let second = take_all(&mut receivers[1]).await;
            (first, failure, second)
        };
        let ((first, failure, second), ()) = tokio::join!(storing, reader);
        assert_eq!(first, ids("first", 25));
        assert_eq!(failure.as_deref(), Some("page 25 of first failed"));
        assert_eq!(second, ids("second", 30));
    }

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
