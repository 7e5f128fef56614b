//! The supervisor: owner of the plan and of every stream.
//!
//! It keeps the rules of every slot (from the watcher), plans them onto the configured API keys
//! with keys sticky across re-plans, and makes the running streams match the plan: new
//! connections start, connections whose rules changed get `UpdateRules` (and nothing else is
//! touched), connections no longer planned stop. A child that dies unexpectedly is restarted
//! with backoff. It tells the heartbeat which slots are streaming, logs a status line per
//! connection periodically, and answers [`GetStatus`] with a serializable snapshot.

pub mod children;
pub mod reconcile;
pub mod status;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime};

use actix::prelude::*;
use traptor_core::plan::{plan, ConnectionId, Plan, PlannedConnection};
use traptor_core::{Rule, RuleError, SlotId};

use crate::config::ApiKey;
use crate::heartbeat::StreamingSlots;
use crate::messages::{
    RulesChanged, RulesSnapshot, StopStream, StreamState, StreamStateChanged, UpdateRules,
};
use children::{failures_after_death, restart_delay, ChildHandle, ChildSpec, SpawnStream};
use reconcile::{reconcile, Running};
use status::{epoch_seconds, rate, state_error, ClusterStatus, ConnectionStatus, StatusSnapshot};

pub use children::{ArbiterPool, TweetCounter};

/// The supervisor's knobs, from the cluster config.
#[derive(Debug, Clone)]
pub struct SupervisorSettings {
    /// The API keys' names, in config order (the planner's key list).
    pub keys: Vec<String>,
    /// How often a status line per connection is logged (`None`: never).
    pub status_interval: Option<Duration>,
    /// Longest wait before restarting a child that died.
    pub max_restart_delay: Duration,
    /// How often children are checked for a closed mailbox.
    pub liveness_interval: Duration,
    /// A child that streamed this long in one go has proved itself: its next death restarts
    /// after the shortest wait again. Dying sooner keeps growing the wait (a crash loop).
    pub stable_after: Duration,
}

impl SupervisorSettings {
    pub fn new(keys: Vec<String>) -> Self {
        SupervisorSettings {
            keys,
            status_interval: Some(Duration::from_secs(60)),
            max_restart_delay: Duration::from_secs(60),
            liveness_interval: Duration::from_secs(1),
            stable_after: Duration::from_secs(30),
        }
    }
}

/// Stops every stream and waits for them, at most `timeout`; replies with how many did not
/// stop in time.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "usize")]
pub struct Shutdown {
    pub timeout: Duration,
}

/// The API keys of a reloaded config (SIGHUP): the plan is made again over them, so only the
/// connections whose key was removed, or whose key's credentials changed, are touched, and
/// slots that lacked a key get one of the new ones. Replies with what changed.
#[derive(Debug, Clone, Message)]
#[rtype(result = "KeysReloaded")]
pub struct ReloadKeys {
    pub keys: Vec<ApiKey>,
}

/// What a [`ReloadKeys`] changed, by key name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeysReloaded {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Same name, other credentials: their streams start again with the new ones.
    pub changed: Vec<String>,
}

impl KeysReloaded {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// Asks for the current [`StatusSnapshot`].
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "StatusSnapshot")]
pub struct GetStatus;

/// One running child and what the supervisor knows of it.
struct Child {
    handle: ChildHandle,
    key: String,
    rules: Vec<Rule>,
    state: StreamState,
    since: SystemTime,
    last_error: Option<String>,
    /// Set when the supervisor asked it to stop: its `Stopped` is then expected, not a crash.
    stop_requested: bool,
    /// Stopping so that it starts again (its key's credentials changed): once it has stopped,
    /// the plan is applied again, which starts it anew.
    restart_after_stop: bool,
    /// The tweet counter's value at the last status line, for the rate.
    tweets_at_last_status: u64,
    tweets_per_second: Option<f64>,
    /// Since when it has been streaming, if it is.
    streaming_since: Option<Instant>,
    /// Its longest time streaming in one go so far.
    longest_streak: Duration,
}

impl Child {
    /// Its longest time streaming in one go, the current streak included.
    fn longest_streak(&self) -> Duration {
        let current = self.streaming_since.map_or(Duration::ZERO, |t| t.elapsed());
        self.longest_streak.max(current)
    }

    fn set_state(&mut self, state: StreamState, at: SystemTime) {
        match (&self.state, &state) {
            (StreamState::Streaming, StreamState::Streaming) => {}
            (_, StreamState::Streaming) => self.streaming_since = Some(Instant::now()),
            _ => {
                self.longest_streak = self.longest_streak();
                self.streaming_since = None;
            }
        }
        self.state = state;
        self.since = at;
    }
}

/// See the module documentation.
pub struct Supervisor {
    settings: SupervisorSettings,
    spawner: Box<dyn SpawnStream>,
    heartbeat: Option<Recipient<StreamingSlots>>,
    slots: BTreeMap<SlotId, Vec<Rule>>,
    rule_errors: BTreeMap<SlotId, Vec<RuleError>>,
    plan: Plan,
    children: BTreeMap<ConnectionId, Child>,
    /// Unexpected deaths in a row per connection (see [`failures_after_death`]), for the
    /// restart backoff.
    failures: BTreeMap<ConnectionId, u32>,
    /// Restarts per connection since start, for the status.
    restarts: BTreeMap<ConnectionId, u32>,
    /// Connections waiting for their delayed restart.
    restart_pending: BTreeSet<ConnectionId>,
    streaming_slots: BTreeSet<SlotId>,
    shutting_down: bool,
    last_status_at: Instant,
}

impl Supervisor {
    pub fn new(
        settings: SupervisorSettings,
        spawner: Box<dyn SpawnStream>,
        heartbeat: Option<Recipient<StreamingSlots>>,
    ) -> Self {
        Supervisor {
            settings,
            spawner,
            heartbeat,
            slots: BTreeMap::new(),
            rule_errors: BTreeMap::new(),
            plan: Plan::default(),
            children: BTreeMap::new(),
            failures: BTreeMap::new(),
            restarts: BTreeMap::new(),
            restart_pending: BTreeSet::new(),
            streaming_slots: BTreeSet::new(),
            shutting_down: false,
            last_status_at: Instant::now(),
        }
    }

    /// Plans again and makes the children match the new plan.
    fn replan(&mut self, ctx: &mut Context<Self>) {
        if self.shutting_down {
            return;
        }
        let new_plan = plan(&self.slots, &self.settings.keys, Some(&self.plan));
        if new_plan != self.plan {
            log_plan(&new_plan);
        }
        let running: BTreeMap<ConnectionId, Running> = self
            .children
            .iter()
            .map(|(id, child)| {
                (
                    id.clone(),
                    Running {
                        key: child.key.clone(),
                        rules: child.rules.clone(),
                    },
                )
            })
            .collect();
        let changes = reconcile(&running, &new_plan);
        self.plan = new_plan;

        for id in &changes.stop {
            if let Some(child) = self.children.remove(id) {
                tracing::info!(connection = %id, key = %child.key, "stopping stream: no longer planned on this key");
                child.handle.stop.do_send(StopStream);
            }
        }
        for id in &changes.update {
            let (Some(child), Some(planned)) =
                (self.children.get_mut(id), self.plan.connection(id))
            else {
                continue;
            };
            tracing::info!(connection = %id, rules = planned.rules.len(), "rules changed: updating stream");
            child.rules = planned.rules.clone();
            child.handle.update.do_send(UpdateRules {
                rules: planned.rules.clone(),
            });
        }
        for id in &changes.start {
            // A child waiting for its delayed restart starts then, with the rules of that time.
            if self.restart_pending.contains(id) {
                continue;
            }
            if let Some(planned) = self.plan.connection(id).cloned() {
                self.start_child(&planned, ctx);
            }
        }
        self.restart_pending
            .retain(|id| self.plan.connection(id).is_some());
        self.refresh_heartbeat();
    }

    fn start_child(&mut self, planned: &PlannedConnection, ctx: &mut Context<Self>) {
        let spec = ChildSpec {
            id: planned.id.clone(),
            key_name: planned.key.clone(),
            rules: planned.rules.clone(),
            report_to: ctx.address().recipient(),
        };
        match self.spawner.spawn(spec) {
            Ok(handle) => {
                tracing::info!(connection = %planned.id, key = %planned.key, rules = planned.rules.len(), "starting stream");
                self.children.insert(
                    planned.id.clone(),
                    Child {
                        handle,
                        key: planned.key.clone(),
                        rules: planned.rules.clone(),
                        state: StreamState::Connecting,
                        since: SystemTime::now(),
                        last_error: None,
                        stop_requested: false,
                        restart_after_stop: false,
                        tweets_at_last_status: 0,
                        tweets_per_second: None,
                        streaming_since: None,
                        longest_streak: Duration::ZERO,
                    },
                );
            }
            Err(reason) => {
                tracing::error!(connection = %planned.id, key = %planned.key, "cannot start stream: {reason}");
                self.schedule_restart(planned.id.clone(), Duration::ZERO, ctx);
            }
        }
    }

    /// A child is gone without being asked: forget it and restart it after a backoff.
    fn child_died(&mut self, id: &ConnectionId, why: &str, ctx: &mut Context<Self>) {
        let Some(child) = self.children.remove(id) else {
            return;
        };
        if child.restart_after_stop {
            self.replan(ctx);
            return;
        }
        if self.shutting_down || child.stop_requested {
            return;
        }
        tracing::warn!(connection = %id, key = %child.key, "stream {why}; restarting it");
        child.handle.stop.do_send(StopStream);
        self.refresh_heartbeat();
        self.schedule_restart(id.clone(), child.longest_streak(), ctx);
    }

    /// Restarts the connection after a wait that grows with its deaths in a row; `streamed`
    /// is how long the dead child streamed in one go at best.
    fn schedule_restart(&mut self, id: ConnectionId, streamed: Duration, ctx: &mut Context<Self>) {
        if self.shutting_down || !self.restart_pending.insert(id.clone()) {
            return;
        }
        let attempt = self.failures.entry(id.clone()).or_insert(0);
        *attempt = failures_after_death(*attempt, streamed, self.settings.stable_after);
        let delay = restart_delay(*attempt, self.settings.max_restart_delay);
        tracing::info!(connection = %id, attempt = *attempt, "restarting stream in {delay:?}");
        ctx.run_later(delay, move |act, ctx| {
            act.restart_pending.remove(&id);
            if act.shutting_down || act.children.contains_key(&id) {
                return;
            }
            if let Some(planned) = act.plan.connection(&id).cloned() {
                *act.restarts.entry(id.clone()).or_insert(0) += 1;
                act.start_child(&planned, ctx);
            }
        });
    }

    /// Finds children whose mailbox closed (stopped on their own, or panicked).
    fn check_liveness(&mut self, ctx: &mut Context<Self>) {
        let dead: Vec<ConnectionId> = self
            .children
            .iter()
            .filter(|(_, child)| !child.handle.alive())
            .map(|(id, _)| id.clone())
            .collect();
        for id in dead {
            self.child_died(&id, "ended unexpectedly (its mailbox closed)", ctx);
        }
    }

    /// Tells the heartbeat when the set of slots with a streaming connection changed.
    fn refresh_heartbeat(&mut self) {
        let streaming: BTreeSet<SlotId> = self
            .children
            .iter()
            .filter(|(_, child)| child.state == StreamState::Streaming)
            .map(|(id, _)| id.slot.clone())
            .collect();
        if streaming != self.streaming_slots {
            self.streaming_slots = streaming.clone();
            if let Some(heartbeat) = &self.heartbeat {
                heartbeat.do_send(StreamingSlots(streaming));
            }
        }
    }

    /// Updates each child's tweets/s and logs one status line per planned connection.
    fn log_status(&mut self) {
        let elapsed = self.last_status_at.elapsed();
        self.last_status_at = Instant::now();
        for child in self.children.values_mut() {
            if let Some(counter) = &child.handle.tweets {
                let now = counter();
                child.tweets_per_second = Some(rate(child.tweets_at_last_status, now, elapsed));
                child.tweets_at_last_status = now;
            }
        }
        let snapshot = self.status();
        if snapshot.connections.is_empty() {
            tracing::info!("status: no connections planned (waiting for rules)");
        }
        for connection in &snapshot.connections {
            tracing::info!("status: {}", connection.log_line());
        }
    }

    /// The current status, for logs and a `/status` endpoint.
    pub fn status(&self) -> StatusSnapshot {
        let connections = self
            .plan
            .connections
            .iter()
            .map(|planned| {
                let child = self.children.get(&planned.id);
                let state = match child {
                    Some(child) => child.state.name().to_string(),
                    None if self.restart_pending.contains(&planned.id) => "restarting".to_string(),
                    None => "not_started".to_string(),
                };
                ConnectionStatus {
                    connection: planned.id.to_string(),
                    slot: planned.id.slot.to_string(),
                    part: planned.id.part,
                    key: planned.key.clone(),
                    rules: planned.rules.len(),
                    terms: planned.filter.len(),
                    state,
                    state_since: child.map(|c| epoch_seconds(c.since)),
                    last_error: child.and_then(|c| c.last_error.clone()),
                    tweets_per_second: child.and_then(|c| c.tweets_per_second),
                    restarts: self.restarts.get(&planned.id).copied().unwrap_or(0),
                }
            })
            .collect();
        StatusSnapshot {
            connections,
            cluster: ClusterStatus {
                rules_left_out: self
                    .plan
                    .left_out_groups()
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
                rules_left_out_count: self.plan.left_out.len(),
                rule_errors: self
                    .rule_errors
                    .values()
                    .flatten()
                    .map(ToString::to_string)
                    .collect(),
                slots_without_key: self
                    .plan
                    .slots_without_key
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
                unused_keys: self.plan.unused_keys.clone(),
                shutting_down: self.shutting_down,
            },
        }
    }

    fn set_slot(&mut self, changed: RulesChanged) {
        if changed.errors.is_empty() {
            self.rule_errors.remove(&changed.slot);
        } else {
            self.rule_errors
                .insert(changed.slot.clone(), changed.errors);
        }
        if changed.rules.is_empty() {
            self.slots.remove(&changed.slot);
        } else {
            self.slots.insert(changed.slot, changed.rules);
        }
    }
}

/// The plan as a table at info; what is not collected at warn, so it is not missed.
fn log_plan(plan: &Plan) {
    tracing::info!("plan changed:\n{}", plan.summary().trim_end());
    // One line per slot and reason: a slot without a key may leave thousands of rules out.
    for group in plan.left_out_groups() {
        tracing::warn!("rules not collected: {group}");
    }
    if !plan.slots_without_key.is_empty() {
        let slots: Vec<String> = plan
            .slots_without_key
            .iter()
            .map(ToString::to_string)
            .collect();
        tracing::warn!(
            "slots without an API key (not collected): {}",
            slots.join(", ")
        );
    }
    if !plan.unused_keys.is_empty() {
        tracing::warn!(
            "API keys not used by any connection: {}",
            plan.unused_keys.join(", ")
        );
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.settings.liveness_interval, |act, ctx| {
            act.check_liveness(ctx)
        });
        if let Some(every) = self.settings.status_interval {
            ctx.run_interval(every, |act, _| act.log_status());
        }
    }
}

impl Handler<RulesChanged> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: RulesChanged, ctx: &mut Self::Context) {
        self.set_slot(msg);
        self.replan(ctx);
    }
}

impl Handler<ReloadKeys> for Supervisor {
    type Result = MessageResult<ReloadKeys>;

    fn handle(&mut self, msg: ReloadKeys, ctx: &mut Self::Context) -> Self::Result {
        let names: Vec<String> = msg.keys.iter().map(|k| k.name.clone()).collect();
        let before: BTreeSet<&String> = self.settings.keys.iter().collect();
        let after: BTreeSet<&String> = names.iter().collect();
        let mut changed = self.spawner.replace_keys(&msg.keys);
        changed.retain(|name| after.contains(name));
        let reloaded = KeysReloaded {
            added: after.difference(&before).map(|s| s.to_string()).collect(),
            removed: before.difference(&after).map(|s| s.to_string()).collect(),
            changed,
        };
        self.settings.keys = names;
        for (id, child) in self.children.iter_mut() {
            if reloaded.changed.contains(&child.key) && !child.stop_requested {
                tracing::info!(connection = %id, key = %child.key, "the key's credentials changed: restarting the stream");
                child.stop_requested = true;
                child.restart_after_stop = true;
                child.handle.stop.do_send(StopStream);
            }
        }
        self.replan(ctx);
        MessageResult(reloaded)
    }
}

impl Handler<RulesSnapshot> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: RulesSnapshot, ctx: &mut Self::Context) {
        self.slots.clear();
        self.rule_errors.clear();
        for slot in msg.slots {
            self.set_slot(slot);
        }
        self.replan(ctx);
    }
}

impl Handler<StreamStateChanged> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: StreamStateChanged, ctx: &mut Self::Context) {
        // Reports of a child already replaced (another key) are stale.
        let Some(child) = self
            .children
            .get_mut(&msg.connection)
            .filter(|c| c.key == msg.key_name)
        else {
            return;
        };
        if let Some(error) = state_error(&msg.state) {
            child.last_error = Some(error);
        }
        match &msg.state {
            StreamState::AuthFailed { reason } => {
                tracing::error!(connection = %msg.connection, key = %msg.key_name, "API key rejected: {reason}");
            }
            StreamState::Rejected { reason } => {
                tracing::error!(connection = %msg.connection, key = %msg.key_name, "filter rejected: {reason}");
            }
            _ => {}
        }
        if msg.state == StreamState::Stopped && child.restart_after_stop {
            self.children.remove(&msg.connection);
            tracing::info!(connection = %msg.connection, key = %msg.key_name, "stopped for the key's new credentials: starting it again");
            self.replan(ctx);
            return;
        }
        let stopped_unasked = msg.state == StreamState::Stopped && !child.stop_requested;
        child.set_state(msg.state, msg.at);
        if stopped_unasked {
            self.child_died(&msg.connection, "stopped without being asked", ctx);
        }
        self.refresh_heartbeat();
    }
}

impl Handler<Shutdown> for Supervisor {
    type Result = ResponseActFuture<Self, usize>;

    fn handle(&mut self, msg: Shutdown, _: &mut Self::Context) -> Self::Result {
        self.shutting_down = true;
        let handles: Vec<ChildHandle> = self
            .children
            .values_mut()
            .map(|child| {
                child.stop_requested = true;
                child.handle.stop.do_send(StopStream);
                child.handle.clone()
            })
            .collect();
        tracing::info!(streams = handles.len(), "stopping every stream");
        let deadline = Instant::now() + msg.timeout;
        let wait = async move {
            loop {
                let running = handles.iter().filter(|h| h.alive()).count();
                if running == 0 || Instant::now() >= deadline {
                    return running;
                }
                actix_rt::time::sleep(Duration::from_millis(20)).await;
            }
        };
        Box::pin(wait.into_actor(self).map(|still_running, act, _| {
            act.children.clear();
            act.refresh_heartbeat();
            still_running
        }))
    }
}

impl Handler<GetStatus> for Supervisor {
    type Result = MessageResult<GetStatus>;

    fn handle(&mut self, _: GetStatus, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.status())
    }
}

#[cfg(test)]
mod tests;
