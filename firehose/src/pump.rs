//! The traffic pump: produces tweets at the configured rate and routes each one to the
//! connections whose filters it was planted for (ground truth, not matching).
//!
//! It runs on its own thread so generation never competes with the HTTP worker's event loop,
//! and hands messages to each connection's bounded queue. A full queue means the client reads
//! too slowly: stall warnings first, then `disconnect` code 4 (or, at an infinite rate, the
//! pump simply waits: load-generation mode).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc::error::TrySendError;

use crate::body::{Control, Outgoing};
use crate::generate::{FastRng, Plant, PlantedUser, TweetFacts, TweetGenerator, UserRole};
use crate::messages::{self, disconnect_code, MessageKind};
use crate::params::phrase_key;
use crate::pool::TweetPool;
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

/// Per-connection bookkeeping of the pump, kept across re-reads of the connection set.
struct RouteState {
    tokens: f64,
    refilled: Instant,
    undelivered: u64,
    last_notice: Option<Instant>,
    last_warning: Option<Instant>,
    queue_peak: usize,
    dead: bool,
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
}

impl Pump {
    fn new(shared: Arc<Shared>, replay: Option<Vec<ReplayLine>>) -> Pump {
        let config = &shared.config;
        let pool = (config.pooled_variants > 0).then(|| TweetPool::new(config.pooled_variants));
        Pump {
            pool,
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
                256
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
            for _ in 0..due.min(4096) {
                done += 1;
                if !self.produce_one().await {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    break;
                }
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
        let filter = self.routes[target].conn.filter.clone();
        let mut plant = Plant {
            lang: (!filter.language.is_empty()).then(|| self.rng.pick(&filter.language).clone()),
            filter_level: Some(filter.filter_level),
            ..Plant::default()
        };
        let mut k = self.rng.index(filter.item_count());
        if k < filter.track.len() {
            plant.phrases.push(filter.track[k].clone());
        } else {
            k -= filter.track.len();
            if k < filter.follow.len() {
                let roll = self.rng.unit();
                let role = if roll < 0.6 {
                    UserRole::Author
                } else if roll < 0.85 {
                    UserRole::RetweetedAuthor
                } else {
                    UserRole::ReplyTarget
                };
                plant.user = Some(PlantedUser {
                    id: filter.follow[k],
                    role,
                });
            } else {
                plant.location = Some(filter.locations[k - filter.follow.len()]);
            }
        }
        self.buf.clear();
        let facts = match &mut self.pool {
            Some(pool) => {
                pool.write_tweet(&mut self.generator, &mut self.rng, &plant, &mut self.buf)
            }
            None => self.generator.write_tweet(&plant, &mut self.buf),
        };
        let json = Bytes::copy_from_slice(&self.buf);
        self.shared.produced.fetch_add(1, Ordering::Relaxed);

        self.recipients.clear();
        if let Some(phrase) = plant.phrases.first() {
            self.recipients.extend(
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
            self.recipients
                .extend(self.by_user.get(&id).into_iter().flatten());
        }
        if let (Some(geo), false) = (facts.geo, facts.is_retweet) {
            for &i in &self.located {
                if geo.selected_by(&self.routes[i].conn.filter.locations) {
                    self.recipients.push(i);
                }
            }
        }
        self.recipients.sort_unstable();
        self.recipients.dedup();
        let recipients = std::mem::take(&mut self.recipients);
        for &i in &recipients {
            if self.routes[i]
                .conn
                .filter
                .accepts(&facts.lang, facts.filter_level)
            {
                let message = Outgoing {
                    kind: MessageKind::Tweet,
                    tweet_id: Some(facts.id),
                    json: json.clone(),
                };
                if self.deliver(i, message).await {
                    self.compliance(i, &facts).await;
                }
            }
        }
        self.recipients = recipients;
        true
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
                let message = Outgoing {
                    kind: line.kind,
                    tweet_id: line.tweet_id,
                    json: line.json.clone(),
                };
                self.deliver(i, message).await;
            }
        }
        true
    }

    /// Applies the per-connection rate cap, then queues; false if the tweet was not queued.
    async fn deliver(&mut self, i: usize, message: Outgoing) -> bool {
        let config = &self.shared.config;
        let state = &mut self.routes[i].state;
        if state.dead {
            return false;
        }
        if let (Some(cap), MessageKind::Tweet) = (config.limit_cap_per_sec, message.kind) {
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
                    self.enqueue(i, notice).await;
                }
                return false;
            }
            state.tokens -= 1.0;
        }
        self.enqueue(i, message).await
    }

    /// The compliance messages that may follow a delivered tweet.
    async fn compliance(&mut self, i: usize, facts: &TweetFacts) {
        let rates = self.shared.config.control_message_rates;
        let now = messages::now_ms();
        let (id, user) = (facts.id, facts.author_id);
        if self.rng.chance(rates.delete) {
            self.enqueue(
                i,
                Outgoing::new(MessageKind::Delete, messages::delete(id, user, now)),
            )
            .await;
        }
        if self.rng.chance(rates.scrub_geo) {
            self.enqueue(
                i,
                Outgoing::new(MessageKind::ScrubGeo, messages::scrub_geo(user, id, now)),
            )
            .await;
        }
        if self.rng.chance(rates.status_withheld) {
            self.enqueue(
                i,
                Outgoing::new(
                    MessageKind::StatusWithheld,
                    messages::status_withheld(id, user, now),
                ),
            )
            .await;
        }
        if self.rng.chance(rates.user_withheld) {
            self.enqueue(
                i,
                Outgoing::new(
                    MessageKind::UserWithheld,
                    messages::user_withheld(user, now),
                ),
            )
            .await;
        }
    }

    /// Puts a message in a connection's queue, watching how full it gets.
    async fn enqueue(&mut self, i: usize, message: Outgoing) -> bool {
        let config = &self.shared.config;
        let route = &mut self.routes[i];
        if route.state.dead {
            return false;
        }
        if config.rate.is_infinite() {
            if route.conn.data.send(message).await.is_err() {
                route.state.dead = true;
                return false;
            }
        } else {
            match route.conn.data.try_send(message) {
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
        }
        let max = route.conn.data.max_capacity();
        let used = max - route.conn.data.capacity();
        if used > route.state.queue_peak {
            route.state.queue_peak = used;
            route
                .conn
                .stats
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .queue_peak = used;
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
        true
    }
}
