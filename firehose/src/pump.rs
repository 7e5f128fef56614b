//! The traffic pump: produces tweets at the configured rate and routes each one to the
//! connections whose filters it was planted for (ground truth, not matching).
//!
//! It runs on its own thread so generation never competes with the HTTP worker's event loop,
//! and hands messages to each connection's bounded queue. A full queue means the client reads
//! too slowly: stall warnings first, then `disconnect` code 4 (or, at an infinite rate, the
//! pump simply waits: load-generation mode).
//!
//! In load mode the pump frames messages itself into per-connection batches (see `batch`),
//! and with a tweet pool it writes each copy straight into them, routed by a list worked out
//! once per kept tweet and set of connections: the cost per tweet is then little more than
//! one copy of its bytes.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc::error::TrySendError;

use crate::batch::{Batch, BATCH_MESSAGES};
use crate::body::{Control, Data, Outgoing};
use crate::generate::{FastRng, Plant, TweetFacts, TweetGenerator};
use crate::messages::{self, disconnect_code, MessageKind};
use crate::params::phrase_key;
use crate::plant_choice::{PlantChoice, PlantSlots};
use crate::pool::{Original, Stamp, Stamper, TweetPool};
use crate::replay::ReplayLine;
use crate::state::{LiveConnection, Shared};

/// Starts the pump thread (the archive, if any, is read first so errors reach the caller).
pub fn spawn(shared: Arc<Shared>) -> std::io::Result<std::thread::JoinHandle<()>> {
    let replay = match &shared.config.replay {
        Some(path) => Some(crate::replay::load(path)?),
        None => None,
    };
    std::thread::Builder::new()
        .name("firehose-pump".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("a current-thread runtime with only timers always builds");
            runtime.block_on(Pump::new(shared, replay).run());
        })
}

/// Tweets produced per round in load mode: enough for the batches of many connections to
/// fill before the round ends and hands over what is left in them.
const LOAD_ROUND: u64 = 4096;

/// Per-connection bookkeeping of the pump, kept across re-reads of the connection set.
struct RouteState {
    tokens: f64,
    refilled: Instant,
    undelivered: u64,
    last_notice: Option<Instant>,
    last_warning: Option<Instant>,
    queue_peak: usize,
    dead: bool,
    /// Messages framed for the connection and not handed over yet (load mode).
    batch: Batch,
    /// The pool slot of each plant drawn for this connection.
    plant_slots: PlantSlots,
}

impl RouteState {
    fn new(cap: Option<f64>) -> RouteState {
        RouteState {
            tokens: cap.unwrap_or(0.0).max(1.0),
            refilled: Instant::now(),
            undelivered: 0,
            last_notice: None,
            last_warning: None,
            queue_peak: 0,
            dead: false,
            batch: Batch::default(),
            plant_slots: PlantSlots::default(),
        }
    }
}

/// A message for one connection before it is framed: owned bytes, or a kept tweet to be
/// copied under a new stamp straight into the connection's batch.
enum Message<'a> {
    Owned(Outgoing),
    Copy {
        original: &'a Original,
        stamp: &'a Stamp,
    },
}

impl Message<'_> {
    fn kind(&self) -> MessageKind {
        match self {
            Message::Owned(outgoing) => outgoing.kind,
            Message::Copy { .. } => MessageKind::Tweet,
        }
    }

    fn tweet_id(&self) -> Option<u64> {
        match self {
            Message::Owned(outgoing) => outgoing.tweet_id,
            Message::Copy { stamp, .. } => Some(stamp.id_value),
        }
    }

    fn json_len(&self) -> usize {
        match self {
            Message::Owned(outgoing) => outgoing.json.len(),
            Message::Copy { original, .. } => original.json_len(),
        }
    }

    fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Message::Owned(outgoing) => out.extend_from_slice(&outgoing.json),
            Message::Copy { original, stamp } => original.write_copy(stamp, out),
        }
    }

    fn into_outgoing(self) -> Outgoing {
        match self {
            Message::Owned(outgoing) => outgoing,
            Message::Copy { original, stamp } => {
                let mut json = Vec::with_capacity(original.json_len());
                original.write_copy(stamp, &mut json);
                Outgoing {
                    kind: MessageKind::Tweet,
                    tweet_id: Some(stamp.id_value),
                    json: json.into(),
                }
            }
        }
    }
}

struct Route {
    conn: LiveConnection,
    state: RouteState,
}

struct Pump {
    shared: Arc<Shared>,
    generator: TweetGenerator,
    rng: FastRng,
    replay: Option<Vec<ReplayLine>>,
    replay_next: usize,
    version: u64,
    routes: Vec<Route>,
    by_phrase: HashMap<String, Vec<usize>>,
    by_user: HashMap<u64, Vec<usize>>,
    located: Vec<usize>,
    buf: Vec<u8>,
    recipients: Vec<usize>,
    /// Tweets kept for reuse (`pooled_variants` > 0).
    pool: Option<TweetPool>,
    stamper: Stamper,
    /// Unlimited rate: wait on full queues and hand messages over in batches.
    load_mode: bool,
}

impl Pump {
    fn new(shared: Arc<Shared>, replay: Option<Vec<ReplayLine>>) -> Pump {
        let config = &shared.config;
        let pool = (config.pooled_variants > 0).then(|| TweetPool::new(config.pooled_variants));
        Pump {
            pool,
            stamper: Stamper::default(),
            load_mode: config.rate.is_infinite(),
            generator: TweetGenerator::new(config.seed, config.generator.clone()),
            rng: FastRng::new(config.seed ^ 0x5eed_0f7a_551c),
            shared,
            replay,
            replay_next: 0,
            version: u64::MAX,
            routes: Vec::new(),
            by_phrase: HashMap::new(),
            by_user: HashMap::new(),
            located: Vec::new(),
            buf: Vec::with_capacity(8192),
            recipients: Vec::new(),
        }
    }

    async fn run(mut self) {
        let rate = self.shared.config.rate;
        let mut epoch = Instant::now();
        let mut done: u64 = 0;
        while !self.shared.stopping.load(Ordering::Acquire) {
            self.refresh();
            if self.routes.is_empty() || rate <= 0.0 || rate.is_nan() {
                epoch = Instant::now();
                done = 0;
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
            let due = if rate.is_infinite() {
                LOAD_ROUND
            } else {
                let target = (epoch.elapsed().as_secs_f64() * rate) as u64;
                // More than a second behind: skip the backlog rather than burst it.
                if target > done + rate as u64 + 1 {
                    done = target - 1;
                }
                target - done
            };
            if due == 0 {
                let next = Duration::from_secs_f64((done + 1) as f64 / rate)
                    .saturating_sub(epoch.elapsed());
                tokio::time::sleep(next.clamp(Duration::from_millis(1), Duration::from_millis(20)))
                    .await;
                continue;
            }
            let mut idle = false;
            for _ in 0..due.min(4096) {
                done += 1;
                if !self.produce_one().await {
                    idle = true;
                    break;
                }
            }
            self.flush_batches().await;
            if idle {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// Re-reads the live connections when they changed and rebuilds the routing index.
    fn refresh(&mut self) {
        let version = self.shared.version.load(Ordering::Acquire);
        if version == self.version {
            return;
        }
        self.version = version;
        let cap = self.shared.config.limit_cap_per_sec;
        let mut states: HashMap<u64, RouteState> = self
            .routes
            .drain(..)
            .map(|r| (r.conn.id, r.state))
            .collect();
        self.routes = self
            .shared
            .live()
            .into_iter()
            .map(|conn| {
                let state = states
                    .remove(&conn.id)
                    .unwrap_or_else(|| RouteState::new(cap));
                Route { conn, state }
            })
            .collect();
        self.by_phrase.clear();
        self.by_user.clear();
        self.located.clear();
        for (i, route) in self.routes.iter().enumerate() {
            for phrase in &route.conn.filter.track {
                self.by_phrase
                    .entry(phrase_key(phrase))
                    .or_default()
                    .push(i);
            }
            for id in &route.conn.filter.follow {
                self.by_user.entry(*id).or_default().push(i);
            }
            if !route.conn.filter.locations.is_empty() {
                self.located.push(i);
            }
        }
    }

    /// Produces one tweet (or archive line) and delivers it; false when there is nothing to send.
    async fn produce_one(&mut self) -> bool {
        if self.replay.is_some() {
            return self.replay_one().await;
        }
        if !self.rng.chance(self.shared.config.hit_ratio) {
            self.shared.unplanted.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        let target = self.rng.index(self.routes.len());
        let choice = PlantChoice::draw(&mut self.rng, &self.routes[target].conn.filter);
        match self.pool.take() {
            Some(mut pool) => {
                self.produce_pooled(&mut pool, target, choice).await;
                self.pool = Some(pool);
            }
            None => {
                let plant = choice.plant(&self.routes[target].conn.filter);
                self.produce_generated(&plant).await;
            }
        }
        true
    }

    /// A copy of a kept tweet for the drawn plant, or a generated one while the plant has
    /// fewer than `pooled_variants` kept (kept then too).
    async fn produce_pooled(&mut self, pool: &mut TweetPool, target: usize, choice: PlantChoice) {
        let Route { conn, state } = &mut self.routes[target];
        let cached = state.plant_slots.get_or_insert(&conn.filter, choice, || {
            pool.slot_for(&choice.plant(&conn.filter))
        });
        if !cached.full {
            cached.full = pool.is_full(cached.slot);
        }
        let (slot, full) = (cached.slot, cached.full);
        if !full {
            let plant = pool.plant(slot).clone();
            let facts = self.produce_generated(&plant).await;
            pool.keep(slot, &self.buf, &facts);
            return;
        }
        let (id, created_ms) = self.generator.next_id();
        let stamp = self.stamper.stamp(id, created_ms);
        let place = pool.pick(slot, &mut self.rng);
        if !pool.original(place).fits(&stamp) {
            // A new id of another width cannot be patched in: generate this one.
            let plant = pool.plant(slot).clone();
            self.produce_generated(&plant).await;
            return;
        }
        if pool.original(place).routing.version != Some(self.version) {
            let mut recipients = std::mem::take(&mut self.recipients);
            self.recipients_of(
                pool.plant(slot),
                pool.original(place).facts(),
                &mut recipients,
            );
            pool.original_mut(place)
                .routing
                .set(self.version, &recipients);
            self.recipients = recipients;
        }
        let original = pool.original(place);
        let author = original.author_id;
        self.shared.produced.fetch_add(1, Ordering::Relaxed);
        for n in 0..original.routing.len() {
            let i = original.routing.get(n);
            let message = Message::Copy {
                original,
                stamp: &stamp,
            };
            if self.deliver(i, message).await {
                self.compliance(i, id, author).await;
            }
        }
    }

    /// Generates a tweet carrying `plant` into `self.buf` and delivers it to every connection
    /// it is for.
    async fn produce_generated(&mut self, plant: &Plant) -> TweetFacts {
        self.buf.clear();
        let facts = self.generator.write_tweet(plant, &mut self.buf);
        let json = Bytes::copy_from_slice(&self.buf);
        self.shared.produced.fetch_add(1, Ordering::Relaxed);
        let mut recipients = std::mem::take(&mut self.recipients);
        self.recipients_of(plant, &facts, &mut recipients);
        for &i in &recipients {
            let message = Message::Owned(Outgoing {
                kind: MessageKind::Tweet,
                tweet_id: Some(facts.id),
                json: json.clone(),
            });
            if self.deliver(i, message).await {
                self.compliance(i, facts.id, facts.author_id).await;
            }
        }
        self.recipients = recipients;
        facts
    }

    /// The connections a tweet carrying `plant` with these facts goes to (ground truth: what
    /// it was planted for, and what its author and place select), in order, each once.
    fn recipients_of(&self, plant: &Plant, facts: &TweetFacts, out: &mut Vec<usize>) {
        out.clear();
        if let Some(phrase) = plant.phrases.first() {
            out.extend(
                self.by_phrase
                    .get(&phrase_key(phrase))
                    .into_iter()
                    .flatten(),
            );
        }
        for id in plant
            .user
            .map(|u| u.id)
            .into_iter()
            .chain([facts.author_id])
        {
            out.extend(self.by_user.get(&id).into_iter().flatten());
        }
        if let (Some(geo), false) = (facts.geo, facts.is_retweet) {
            for &i in &self.located {
                if geo.selected_by(&self.routes[i].conn.filter.locations) {
                    out.push(i);
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out.retain(|&i| {
            self.routes[i]
                .conn
                .filter
                .accepts(&facts.lang, facts.filter_level)
        });
    }

    async fn replay_one(&mut self) -> bool {
        let lines = self.replay.as_ref().expect("replay mode");
        if self.replay_next >= lines.len() {
            if !self.shared.config.replay_loop || lines.is_empty() {
                return false;
            }
            self.replay_next = 0;
        }
        let line = lines[self.replay_next].clone();
        self.replay_next += 1;
        self.shared.produced.fetch_add(1, Ordering::Relaxed);
        for i in 0..self.routes.len() {
            if line.selected_by(&self.routes[i].conn.filter) {
                let message = Message::Owned(Outgoing {
                    kind: line.kind,
                    tweet_id: line.tweet_id,
                    json: line.json.clone(),
                });
                self.deliver(i, message).await;
            }
        }
        true
    }

    /// Applies the per-connection rate cap, then queues; false if the tweet was not queued.
    async fn deliver(&mut self, i: usize, message: Message<'_>) -> bool {
        let config = &self.shared.config;
        let state = &mut self.routes[i].state;
        if state.dead {
            return false;
        }
        if let (Some(cap), MessageKind::Tweet) = (config.limit_cap_per_sec, message.kind()) {
            let now = Instant::now();
            state.tokens = (state.tokens + now.duration_since(state.refilled).as_secs_f64() * cap)
                .min(cap.max(1.0));
            state.refilled = now;
            if state.tokens < 1.0 {
                state.undelivered += 1;
                let undelivered = state.undelivered;
                self.routes[i]
                    .conn
                    .stats
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .undelivered = undelivered;
                let state = &mut self.routes[i].state;
                if state
                    .last_notice
                    .is_none_or(|t| t.elapsed() >= config.limit_notice_interval)
                {
                    state.last_notice = Some(now);
                    let notice = Outgoing::new(
                        MessageKind::Limit,
                        messages::limit(undelivered, messages::now_ms()),
                    );
                    self.enqueue(i, Message::Owned(notice)).await;
                }
                return false;
            }
            state.tokens -= 1.0;
        }
        self.enqueue(i, message).await
    }

    /// The compliance messages that may follow a delivered tweet.
    async fn compliance(&mut self, i: usize, id: u64, user: u64) {
        let rates = self.shared.config.control_message_rates;
        let drawn = [
            self.rng.chance(rates.delete),
            self.rng.chance(rates.scrub_geo),
            self.rng.chance(rates.status_withheld),
            self.rng.chance(rates.user_withheld),
        ];
        if !drawn.contains(&true) {
            return;
        }
        let now = messages::now_ms();
        let [delete, scrub_geo, status_withheld, user_withheld] = drawn;
        let mut notices = Vec::new();
        if delete {
            notices.push((MessageKind::Delete, messages::delete(id, user, now)));
        }
        if scrub_geo {
            notices.push((MessageKind::ScrubGeo, messages::scrub_geo(user, id, now)));
        }
        if status_withheld {
            let json = messages::status_withheld(id, user, now);
            notices.push((MessageKind::StatusWithheld, json));
        }
        if user_withheld {
            let json = messages::user_withheld(user, now);
            notices.push((MessageKind::UserWithheld, json));
        }
        for (kind, json) in notices {
            self.enqueue(i, Message::Owned(Outgoing::new(kind, json)))
                .await;
        }
    }

    /// Puts a message in a connection's queue, watching how full it gets. In load mode it goes
    /// into the connection's batch, handed over once full.
    async fn enqueue(&mut self, i: usize, message: Message<'_>) -> bool {
        let route = &mut self.routes[i];
        if route.state.dead {
            return false;
        }
        if self.load_mode {
            let delimited = route.conn.filter.delimited;
            let (kind, tweet_id, len) = (message.kind(), message.tweet_id(), message.json_len());
            route
                .state
                .batch
                .push(delimited, kind, tweet_id, len, |out| {
                    message.write_json(out)
                });
            if route.state.batch.is_full() {
                return self.flush(i).await;
            }
            return true;
        }
        match route
            .conn
            .data
            .try_send(Data::Message(message.into_outgoing()))
        {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                route.state.dead = true;
                self.shared
                    .disconnect(route.conn.id, disconnect_code::STALL, "queue_full");
                return false;
            }
            Err(TrySendError::Closed(_)) => {
                route.state.dead = true;
                return false;
            }
        }
        self.watch_queue(i, 1);
        true
    }

    /// Hands a connection's batch over, waiting while its queue is full (load mode).
    async fn flush(&mut self, i: usize) -> bool {
        let route = &mut self.routes[i];
        if route.state.dead {
            return false;
        }
        if route.state.batch.is_empty() {
            return true;
        }
        let run = route.state.batch.take();
        if route.conn.data.send(Data::Framed(run)).await.is_err() {
            route.state.dead = true;
            return false;
        }
        self.watch_queue(i, BATCH_MESSAGES);
        true
    }

    /// Hands over every batch that holds anything, so no message waits past a round.
    async fn flush_batches(&mut self) {
        if !self.load_mode {
            return;
        }
        for i in 0..self.routes.len() {
            self.flush(i).await;
        }
    }

    /// Records the queue's peak (in messages: each slot holds up to `per_slot`) and sends a
    /// stall warning when the queue is full enough.
    fn watch_queue(&mut self, i: usize, per_slot: usize) {
        let config = &self.shared.config;
        let route = &mut self.routes[i];
        let max = route.conn.data.max_capacity();
        let used = max - route.conn.data.capacity();
        let peak = used * per_slot;
        if peak > route.state.queue_peak {
            route.state.queue_peak = peak;
            route
                .conn
                .stats
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .queue_peak = peak;
        }
        let percent = (used * 100 / max) as u32;
        if route.conn.filter.stall_warnings
            && percent >= config.stall_warning_percent
            && route
                .state
                .last_warning
                .is_none_or(|t| t.elapsed() >= config.stall_warning_interval)
        {
            route.state.last_warning = Some(Instant::now());
            let warning = Outgoing::new(MessageKind::Warning, messages::warning(percent));
            let _ = route.conn.control.send(Control::Message(warning));
        }
    }
}
