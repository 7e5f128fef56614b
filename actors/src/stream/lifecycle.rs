//! One streaming connection's whole life as a pure state machine: connect, stream, drop,
//! back off, stall, auth failure, rejection, rule change, stop. No actix, no I/O and no clock
//! of its own: the caller passes `now` with every event and carries out the returned
//! [`Action`]s, so every path (and every wait) is tested without real waiting.
//!
//! Policy (streaming API contract §2.7 and §2.9):
//! - the first attempt, and the first attempt after an *established* connection drops (or
//!   stalls, or gets a `disconnect` message), are immediate;
//! - network failures back off linearly, HTTP failures and rate limits exponentially
//!   (see [`BackoffConfig`]);
//! - 401/403 park the stream in `AuthFailed`, retried on a slow fixed schedule only;
//!   406/413/416 park it in `Rejected`, retried slowly or at once when the filter changes;
//! - no byte at all (keep-alives included) for `stall_timeout` while streaming → reconnect;
//! - a `disconnect` with code 7 (another connection uses the same credentials) backs off on
//!   the HTTP schedule however long the stream lived: two clients sharing a key would
//!   otherwise take turns kicking each other off, a reconnect storm that earns 420s;
//! - a rule change that alters the filter reconnects (or, while waiting, is simply used by the
//!   next attempt: it is never lost); one that only alters rule metadata is applied to the
//!   live connection; identical rules do nothing.
//!
//! Backoff counters are cleared when a connection that streamed for at least
//! `established_after` ends, whatever ends it.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use traptor_core::{Rule, StreamType};

use super::backoff::{Backoff, BackoffConfig, Delay, FailureClass};
use crate::messages::StreamState;

/// Identifies one connection attempt or one timer, so that late news about an attempt the
/// machine already abandoned (or a timer it replaced) is recognised and ignored.
pub type Ticket = u64;

/// Why a connection attempt failed before any streaming began.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// No response head: DNS, TCP, TLS, connect or head timeout.
    Network(String),
    /// The server answered with a status other than 200.
    Http { status: u16, reason: String },
}

/// What happened to the stream, as the caller observed it.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Begin: connect for the first time.
    Start,
    /// The attempt `ticket` got a 200 response head: the stream is open.
    Connected { ticket: Ticket },
    /// The attempt `ticket` failed before streaming.
    Failed { ticket: Ticket, failure: Failure },
    /// The open stream `ticket` ended: body closed, read error or a `disconnect` message.
    Dropped { ticket: Ticket, reason: String },
    /// The open stream `ticket` was closed because another connection uses the same
    /// credentials (`disconnect` code 7).
    Displaced { ticket: Ticket, reason: String },
    /// The timer `ticket` (from [`Action::Wait`]) went off.
    TimerFired { ticket: Ticket },
    /// New rules for this stream.
    RulesChanged(Vec<Rule>),
    /// Close for good.
    Stop,
}

/// What the caller must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Open a connection filtered by `rules`; report its outcome with this `ticket`.
    Connect { ticket: Ticket, rules: Vec<Rule> },
    /// Use these rules for matching on the current connection (its filter is unchanged).
    ApplyRules(Vec<Rule>),
    /// Drop the current connection or attempt, if any.
    Close,
    /// Send back `TimerFired { ticket }` after `delay`.
    Wait { ticket: Ticket, delay: Duration },
    /// Tell the supervisor the stream's new state.
    Report(StreamState),
}

/// Where the machine is; the tickets say which attempt or timer is current.
#[derive(Debug, Clone, PartialEq)]
enum Phase {
    Idle,
    Connecting {
        attempt: Ticket,
    },
    Streaming {
        attempt: Ticket,
        since: Instant,
        watchdog: Ticket,
    },
    BackingOff {
        timer: Ticket,
    },
    AuthFailed {
        timer: Ticket,
    },
    Rejected {
        timer: Ticket,
    },
    Stopped,
}

/// The state machine of one stream. See the module documentation for the policy.
#[derive(Debug)]
pub struct Lifecycle {
    phase: Phase,
    rules: Vec<Rule>,
    backoff: Backoff,
    stall_timeout: Duration,
    last_activity: Option<Instant>,
    next_ticket: Ticket,
    reported: Option<StreamState>,
}

impl Lifecycle {
    pub fn new(rules: Vec<Rule>, backoff: BackoffConfig, stall_timeout: Duration) -> Self {
        Lifecycle {
            phase: Phase::Idle,
            rules,
            backoff: Backoff::new(backoff),
            stall_timeout,
            last_activity: None,
            next_ticket: 0,
            reported: None,
        }
    }

    /// The rules the next (or current) connection is filtered by.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The last state reported (`None` before [`Event::Start`]).
    pub fn state(&self) -> Option<&StreamState> {
        self.reported.as_ref()
    }

    /// The current connection attempt, if one is in flight or streaming.
    pub fn current_attempt(&self) -> Option<Ticket> {
        match self.phase {
            Phase::Connecting { attempt } | Phase::Streaming { attempt, .. } => Some(attempt),
            _ => None,
        }
    }

    /// Bytes arrived on the open stream (keep-alive newlines included): it is alive.
    pub fn note_activity(&mut self, now: Instant) {
        self.last_activity = Some(now);
    }

    /// Feeds one event and returns what to do about it.
    pub fn on_event(&mut self, event: Event, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        match event {
            Event::Start => {
                if self.phase == Phase::Idle {
                    self.connect(&mut actions);
                }
            }
            Event::Connected { ticket } => {
                if self.phase == (Phase::Connecting { attempt: ticket }) {
                    self.last_activity = Some(now);
                    let watchdog = self.wait(self.stall_timeout, &mut actions);
                    self.phase = Phase::Streaming {
                        attempt: ticket,
                        since: now,
                        watchdog,
                    };
                    self.report(StreamState::Streaming, &mut actions);
                }
            }
            Event::Failed { ticket, failure } => {
                if self.phase == (Phase::Connecting { attempt: ticket }) {
                    self.on_failure(failure, &mut actions);
                }
            }
            Event::Dropped { ticket, reason } => {
                if let Phase::Streaming { attempt, since, .. } = self.phase {
                    if attempt == ticket {
                        actions.push(Action::Close);
                        self.after_drop(since, now, reason, &mut actions);
                    }
                }
            }
            Event::Displaced { ticket, reason } => {
                if self.current_attempt() == Some(ticket)
                    && matches!(self.phase, Phase::Streaming { .. })
                {
                    actions.push(Action::Close);
                    let reason = format!("{reason}; another client is using this API key");
                    self.back_off(FailureClass::Http, reason, &mut actions);
                }
            }
            Event::TimerFired { ticket } => self.on_timer(ticket, now, &mut actions),
            Event::RulesChanged(rules) => self.on_rules(rules, now, &mut actions),
            Event::Stop => {
                if self.phase != Phase::Stopped {
                    self.phase = Phase::Stopped;
                    actions.push(Action::Close);
                    self.report(StreamState::Stopped, &mut actions);
                }
            }
        }
        actions
    }

    fn on_failure(&mut self, failure: Failure, actions: &mut Vec<Action>) {
        match failure {
            Failure::Network(reason) => self.back_off(FailureClass::Network, reason, actions),
            Failure::Http { status, reason } => {
                let reason = format!("HTTP {status}: {reason}");
                match status {
                    401 | 403 => {
                        let timer = self.wait(self.backoff.config().auth_failed_retry, actions);
                        self.phase = Phase::AuthFailed { timer };
                        self.report(StreamState::AuthFailed { reason }, actions);
                    }
                    406 | 413 | 416 => {
                        let timer = self.wait(self.backoff.config().rejected_retry, actions);
                        self.phase = Phase::Rejected { timer };
                        self.report(StreamState::Rejected { reason }, actions);
                    }
                    420 | 429 => self.back_off(FailureClass::RateLimited, reason, actions),
                    _ => self.back_off(FailureClass::Http, reason, actions),
                }
            }
        }
    }

    /// An open stream ended (the caller already got `Close`): reconnect at once if it was
    /// established, else count it as a network failure.
    fn after_drop(
        &mut self,
        since: Instant,
        now: Instant,
        reason: String,
        actions: &mut Vec<Action>,
    ) {
        let lived = now.saturating_duration_since(since);
        if lived >= self.backoff.config().established_after {
            self.backoff.reset();
            self.connect(actions);
        } else {
            let reason = format!(
                "connection dropped after {} ms: {reason}",
                lived.as_millis()
            );
            self.back_off(FailureClass::Network, reason, actions);
        }
    }

    fn on_timer(&mut self, ticket: Ticket, now: Instant, actions: &mut Vec<Action>) {
        match self.phase {
            Phase::BackingOff { timer }
            | Phase::AuthFailed { timer }
            | Phase::Rejected { timer }
                if timer == ticket =>
            {
                self.connect(actions)
            }
            Phase::Streaming {
                attempt,
                since,
                watchdog,
            } if watchdog == ticket => {
                let quiet = now.saturating_duration_since(self.last_activity.unwrap_or(since));
                if quiet >= self.stall_timeout {
                    actions.push(Action::Close);
                    let reason = format!("stalled: no data for {} ms", quiet.as_millis());
                    self.after_drop(since, now, reason, actions);
                } else {
                    let watchdog = self.wait(self.stall_timeout - quiet, actions);
                    self.phase = Phase::Streaming {
                        attempt,
                        since,
                        watchdog,
                    };
                }
            }
            _ => {}
        }
    }

    fn on_rules(&mut self, rules: Vec<Rule>, now: Instant, actions: &mut Vec<Action>) {
        if rules == self.rules || self.phase == Phase::Stopped {
            return;
        }
        let filter_changed = filter_terms(&rules) != filter_terms(&self.rules);
        self.rules = rules;
        match self.phase.clone() {
            Phase::Connecting { .. } | Phase::Streaming { .. } if !filter_changed => {
                actions.push(Action::ApplyRules(self.rules.clone()));
            }
            Phase::Connecting { .. } => {
                actions.push(Action::Close);
                self.connect(actions);
            }
            Phase::Streaming { since, .. } => {
                actions.push(Action::Close);
                if now.saturating_duration_since(since) >= self.backoff.config().established_after {
                    self.backoff.reset();
                }
                self.connect(actions);
            }
            Phase::Rejected { .. } if filter_changed => self.connect(actions),
            // Idle, BackingOff, AuthFailed: the next attempt takes the newest rules; waits
            // imposed by the server are kept.
            _ => {}
        }
    }

    fn connect(&mut self, actions: &mut Vec<Action>) {
        let attempt = self.ticket();
        self.phase = Phase::Connecting { attempt };
        self.report(StreamState::Connecting, actions);
        actions.push(Action::Connect {
            ticket: attempt,
            rules: self.rules.clone(),
        });
    }

    fn back_off(&mut self, class: FailureClass, reason: String, actions: &mut Vec<Action>) {
        let Delay { wait, at_cap } = self.backoff.next_delay(class);
        let timer = self.wait(wait, actions);
        self.phase = Phase::BackingOff { timer };
        let reason = if at_cap {
            format!("{reason} (backoff at its cap)")
        } else {
            reason
        };
        self.report(
            StreamState::BackingOff {
                delay: wait,
                reason,
            },
            actions,
        );
    }

    fn wait(&mut self, delay: Duration, actions: &mut Vec<Action>) -> Ticket {
        let ticket = self.ticket();
        actions.push(Action::Wait { ticket, delay });
        ticket
    }

    fn ticket(&mut self) -> Ticket {
        self.next_ticket += 1;
        self.next_ticket
    }

    fn report(&mut self, state: StreamState, actions: &mut Vec<Action>) {
        if self.reported.as_ref() != Some(&state) {
            self.reported = Some(state.clone());
            actions.push(Action::Report(state));
        }
    }
}

/// What the server is asked for: the distinct filter values per parameter. Two rule lists
/// with equal terms need no reconnect, whatever their other fields say.
fn filter_terms(rules: &[Rule]) -> BTreeSet<(StreamType, String)> {
    rules
        .iter()
        .map(|rule| (rule.term.stream_type(), rule.term.to_filter_value()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use traptor_core::rules::parse_rule;

    #[test]
    fn a_duplicate_connection_backs_off_exponentially_even_when_established() {
        let start = Instant::now();
        let mut machine = Lifecycle::new(Vec::new(), BackoffConfig::default(), STALL);
        let mut waits = Vec::new();
        let mut now = start;
        machine.on_event(Event::Start, now);
        for _ in 0..3 {
            let ticket = machine.current_attempt().expect("connecting");
            machine.on_event(Event::Connected { ticket }, now);
            now += Duration::from_secs(60); // long established
            let actions = machine.on_event(
                Event::Displaced {
                    ticket,
                    reason: "disconnect message (code 7)".into(),
                },
                now,
            );
            assert_eq!(actions[0], Action::Close);
            let (timer, delay) = actions
                .iter()
                .find_map(|a| match a {
                    Action::Wait { ticket, delay } => Some((*ticket, *delay)),
                    _ => None,
                })
                .expect("a backoff wait");
            waits.push(delay.as_secs());
            assert!(matches!(
                machine.state(),
                Some(StreamState::BackingOff { reason, .. }) if reason.contains("another client")
            ));
            now += delay;
            machine.on_event(Event::TimerFired { ticket: timer }, now);
        }
        // However long each connection lived, a displacement is a failure: never an
        // immediate reconnect, and the waits double.
        assert_eq!(waits, [5, 10, 20]);
    }

    const STALL: Duration = Duration::from_secs(90);

    fn track(id: &str, value: &str, tag: &str) -> Rule {
        let fields = [("rule_id", id), ("value", value), ("tag", tag)];
        parse_rule(
            fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            Some(StreamType::Track),
        )
        .unwrap()
    }

    /// Drives a [`Lifecycle`] on a virtual clock and remembers what it asked for.
    struct Harness {
        machine: Lifecycle,
        now: Instant,
        attempt: Option<Ticket>,
        timers: Vec<(Ticket, Duration)>,
        reports: Vec<StreamState>,
        connects: Vec<Vec<Rule>>,
        closes: usize,
        applied: Vec<Vec<Rule>>,
    }

    impl Harness {
        fn new(rules: Vec<Rule>) -> Self {
            Self::with_config(rules, BackoffConfig::default())
        }

        fn with_config(rules: Vec<Rule>, config: BackoffConfig) -> Self {
            Harness {
                machine: Lifecycle::new(rules, config, STALL),
                now: Instant::now(),
                attempt: None,
                timers: Vec::new(),
                reports: Vec::new(),
                connects: Vec::new(),
                closes: 0,
                applied: Vec::new(),
            }
        }

        fn send(&mut self, event: Event) -> Vec<Action> {
            let actions = self.machine.on_event(event, self.now);
            for action in &actions {
                match action {
                    Action::Connect { ticket, rules } => {
                        self.attempt = Some(*ticket);
                        self.connects.push(rules.clone());
                    }
                    Action::Wait { ticket, delay } => self.timers.push((*ticket, *delay)),
                    Action::Report(state) => self.reports.push(state.clone()),
                    Action::Close => self.closes += 1,
                    Action::ApplyRules(rules) => self.applied.push(rules.clone()),
                }
            }
            actions
        }

        fn advance(&mut self, by: Duration) {
            self.now += by;
        }

        fn attempt(&self) -> Ticket {
            self.attempt.expect("an attempt was made")
        }

        fn connected(&mut self) -> Vec<Action> {
            let ticket = self.attempt();
            self.send(Event::Connected { ticket })
        }

        fn fail(&mut self, failure: Failure) -> Vec<Action> {
            let ticket = self.attempt();
            self.send(Event::Failed { ticket, failure })
        }

        fn http(&mut self, status: u16) -> Vec<Action> {
            self.fail(Failure::Http {
                status,
                reason: "refused".into(),
            })
        }

        fn dropped(&mut self) -> Vec<Action> {
            let ticket = self.attempt();
            self.send(Event::Dropped {
                ticket,
                reason: "closed by server".into(),
            })
        }

        /// Lets the latest timer fire after its full delay, as the caller would.
        fn fire_latest_timer(&mut self) -> Vec<Action> {
            let (ticket, delay) = *self.timers.last().expect("a timer is pending");
            self.advance(delay);
            self.send(Event::TimerFired { ticket })
        }

        fn last_report(&self) -> &StreamState {
            self.reports.last().expect("a state was reported")
        }

        /// Fails `n` attempts in a row with `failure`, returning the waits asked for.
        fn waits_after_failures(
            &mut self,
            n: usize,
            failure: impl Fn() -> Failure,
        ) -> Vec<Duration> {
            (0..n)
                .map(|_| {
                    self.fail(failure());
                    let (_, delay) = *self.timers.last().unwrap();
                    self.fire_latest_timer();
                    delay
                })
                .collect()
        }
    }

    fn network() -> Failure {
        Failure::Network("connection refused".into())
    }

    fn http(status: u16) -> impl Fn() -> Failure {
        move || Failure::Http {
            status,
            reason: "error".into(),
        }
    }

    #[test]
    fn start_connects_at_once_and_reports_connecting() {
        let rules = vec![track("1", "rust", "a")];
        let mut h = Harness::new(rules.clone());
        let actions = h.send(Event::Start);
        assert_eq!(
            actions,
            vec![
                Action::Report(StreamState::Connecting),
                Action::Connect { ticket: 1, rules }
            ]
        );
        assert!(
            h.send(Event::Start).is_empty(),
            "a second start does nothing"
        );
    }

    #[test]
    fn a_200_head_means_streaming_with_the_stall_watchdog_armed() {
        let mut h = Harness::new(vec![]);
        h.send(Event::Start);
        let actions = h.connected();
        assert_eq!(
            actions[0],
            Action::Wait {
                ticket: 2,
                delay: STALL
            }
        );
        assert_eq!(actions[1], Action::Report(StreamState::Streaming));
        assert_eq!(h.machine.state(), Some(&StreamState::Streaming));
    }

    #[test]
    fn network_failures_back_off_linearly_250ms_to_16s() {
        let mut h = Harness::new(vec![]);
        h.send(Event::Start);
        let waits = h.waits_after_failures(66, network);
        let expected: Vec<Duration> = (1..=66u64)
            .map(|n| Duration::from_millis((250 * n).min(16_000)))
            .collect();
        assert_eq!(waits, expected);
        assert_eq!(
            h.connects.len(),
            67,
            "one attempt per elapsed wait, plus the first"
        );
    }

    #[test]
    fn http_errors_back_off_exponentially_5s_to_320s() {
        for status in [500, 503, 404, 502] {
            let mut h = Harness::new(vec![]);
            h.send(Event::Start);
            let waits = h.waits_after_failures(8, http(status));
            assert_eq!(
                waits,
                [5, 10, 20, 40, 80, 160, 320, 320].map(Duration::from_secs),
                "status {status}"
            );
        }
    }

    #[test]
    fn rate_limits_back_off_exponentially_from_60s() {
        for status in [420, 429] {
            let mut h = Harness::new(vec![]);
            h.send(Event::Start);
            let waits = h.waits_after_failures(6, http(status));
            assert_eq!(
                waits,
                [60, 120, 240, 480, 960, 960].map(Duration::from_secs),
                "status {status}"
            );
            match h.last_report() {
                StreamState::Connecting => {}
                other => panic!("expected a new attempt, got {other:?}"),
            }
        }
    }

    #[test]
    fn backing_off_is_reported_with_its_delay_and_reason() {
        let mut h = Harness::new(vec![]);
        h.send(Event::Start);
        h.http(503);
        match h.last_report() {
            StreamState::BackingOff { delay, reason } => {
                assert_eq!(*delay, Duration::from_secs(5));
                assert!(reason.contains("503"), "{reason}");
            }
            other => panic!("expected backing off, got {other:?}"),
        }
    }

    #[test]
    fn reaching_the_cap_is_said_in_the_reason() {
        let mut h = Harness::new(vec![]);
        h.send(Event::Start);
        h.waits_after_failures(6, http(503));
        h.http(503);
        match h.last_report() {
            StreamState::BackingOff { delay, reason } => {
                assert_eq!(*delay, Duration::from_secs(320));
                assert!(reason.contains("cap"), "{reason}");
            }
            other => panic!("expected backing off, got {other:?}"),
        }
    }

    #[test]
    fn an_established_stream_that_drops_reconnects_at_once_with_a_fresh_backoff() {
        let mut h = Harness::new(vec![]);
        h.send(Event::Start);
        h.waits_after_failures(3, http(503));
        h.connected();
        h.advance(Duration::from_secs(60));
        let actions = h.dropped();
        assert_eq!(actions[0], Action::Close);
        assert!(
            matches!(actions.last(), Some(Action::Connect { .. })),
            "{actions:?}"
        );
        assert!(
            !actions.iter().any(|a| matches!(a, Action::Wait { .. })),
            "no wait: {actions:?}"
        );
        // The reconnect failing starts the curves over.
        assert_eq!(
            h.waits_after_failures(1, http(503)),
            [Duration::from_secs(5)]
        );
    }

    #[test]
    fn a_stream_that_dies_young_counts_as_a_network_failure() {
        let mut h = Harness::new(vec![]);
        h.send(Event::Start);
        let mut waits = Vec::new();
        for _ in 0..4 {
            h.connected();
            h.advance(Duration::from_secs(1));
            h.dropped();
            waits.push(h.timers.last().unwrap().1);
            assert!(matches!(h.last_report(), StreamState::BackingOff { .. }));
            h.fire_latest_timer();
        }
        assert_eq!(waits, [250, 500, 750, 1000].map(Duration::from_millis));
    }

    #[test]
    fn silence_for_the_stall_timeout_closes_and_reconnects_at_once() {
        let mut h = Harness::new(vec![]);
        h.send(Event::Start);
        h.connected();
        let first_attempt = h.attempt();
        let actions = h.fire_latest_timer();
        assert_eq!(actions[0], Action::Close);
        assert!(
            matches!(actions.last(), Some(Action::Connect { ticket, .. }) if *ticket != first_attempt)
        );
        assert_eq!(h.last_report(), &StreamState::Connecting);
    }

    #[test]
    fn activity_keeps_the_watchdog_quiet_and_rearms_it_for_the_remainder() {
        let mut h = Harness::new(vec![]);
        h.send(Event::Start);
        h.connected();
        let (ticket, _) = *h.timers.last().unwrap();
        h.advance(Duration::from_secs(60));
        h.machine.note_activity(h.now); // a keep-alive newline
        h.advance(Duration::from_secs(30));
        let actions = h.send(Event::TimerFired { ticket });
        assert_eq!(
            actions,
            vec![Action::Wait {
                ticket: ticket + 1,
                delay: Duration::from_secs(60)
            }]
        );
        // Silence from then on: the re-armed watchdog fires exactly 90 s after the keep-alive.
        let actions = h.fire_latest_timer();
        assert_eq!(actions[0], Action::Close);
        assert_eq!(h.now - h.machine.last_activity.unwrap(), STALL);
    }

    #[test]
    fn unauthorized_parks_in_auth_failed_and_retries_only_slowly() {
        let mut h = Harness::new(vec![]);
        h.send(Event::Start);
        let mut attempts_in_an_hour = 1;
        let started = h.now;
        while h.now - started < Duration::from_secs(3600) {
            h.http(401);
            assert!(
                matches!(h.last_report(), StreamState::AuthFailed { reason } if reason.contains("401"))
            );
            assert_eq!(h.timers.last().unwrap().1, Duration::from_secs(600));
            h.fire_latest_timer();
            attempts_in_an_hour += 1;
        }
        assert!(
            attempts_in_an_hour <= 7,
            "{attempts_in_an_hour} attempts with bad credentials in an hour"
        );
    }

    #[test]
    fn forbidden_is_treated_like_unauthorized() {
        let mut h = Harness::new(vec![]);
        h.send(Event::Start);
        h.http(403);
        assert!(matches!(h.last_report(), StreamState::AuthFailed { .. }));
    }

    #[test]
    fn a_refused_filter_is_rejected_and_retried_slowly() {
        for status in [406, 413, 416] {
            let mut h = Harness::new(vec![]);
            h.send(Event::Start);
            h.http(status);
            assert!(
                matches!(h.last_report(), StreamState::Rejected { reason } if reason.contains(&status.to_string()))
            );
            assert_eq!(h.timers.last().unwrap().1, Duration::from_secs(900));
        }
    }

    #[test]
    fn a_filter_change_retries_a_rejected_stream_at_once() {
        let mut h = Harness::new(vec![track("1", "a", "x")]);
        h.send(Event::Start);
        h.http(406);
        let stale_timer = h.timers.last().unwrap().0;
        let new_rules = vec![track("1", "rust", "x")];
        let actions = h.send(Event::RulesChanged(new_rules.clone()));
        assert!(
            matches!(actions.last(), Some(Action::Connect { rules, .. }) if *rules == new_rules)
        );
        // The old slow-retry timer is stale now and must not start a second attempt.
        assert!(h
            .send(Event::TimerFired {
                ticket: stale_timer
            })
            .is_empty());
    }

    #[test]
    fn a_filter_change_keeps_the_slow_schedule_of_auth_failed_but_uses_the_new_filter() {
        let mut h = Harness::new(vec![track("1", "a", "x")]);
        h.send(Event::Start);
        h.http(401);
        let new_rules = vec![track("1", "rust", "x")];
        assert!(h.send(Event::RulesChanged(new_rules.clone())).is_empty());
        h.fire_latest_timer();
        assert_eq!(h.connects.last(), Some(&new_rules));
    }

    #[test]
    fn a_filter_change_while_streaming_reconnects_with_the_new_filter() {
        let mut h = Harness::new(vec![track("1", "a", "x")]);
        h.send(Event::Start);
        h.connected();
        let new_rules = vec![track("1", "a", "x"), track("2", "rust", "y")];
        let actions = h.send(Event::RulesChanged(new_rules.clone()));
        assert_eq!(actions[0], Action::Close);
        assert_eq!(actions[1], Action::Report(StreamState::Connecting));
        assert!(matches!(&actions[2], Action::Connect { rules, .. } if *rules == new_rules));
        // The old connection's late news is ignored.
        assert!(h
            .send(Event::Dropped {
                ticket: 1,
                reason: "closed".into()
            })
            .is_empty());
    }

    #[test]
    fn identical_rules_change_nothing() {
        let rules = vec![track("1", "a", "x")];
        let mut h = Harness::new(rules.clone());
        h.send(Event::Start);
        h.connected();
        assert!(h.send(Event::RulesChanged(rules)).is_empty());
    }

    #[test]
    fn a_metadata_only_change_is_applied_without_reconnecting() {
        let mut h = Harness::new(vec![track("1", "Rust", "x")]);
        h.send(Event::Start);
        h.connected();
        // Same filter term ("rust"), another tag and spelling.
        let retagged = vec![track("1", "rust", "y")];
        let actions = h.send(Event::RulesChanged(retagged.clone()));
        assert_eq!(actions, vec![Action::ApplyRules(retagged.clone())]);
        assert_eq!(h.machine.rules(), retagged.as_slice());
    }

    #[test]
    fn a_filter_change_while_connecting_abandons_the_attempt_for_one_with_the_new_filter() {
        let mut h = Harness::new(vec![track("1", "a", "x")]);
        h.send(Event::Start);
        let old = h.attempt();
        let new_rules = vec![track("1", "b", "x")];
        let actions = h.send(Event::RulesChanged(new_rules.clone()));
        assert_eq!(actions[0], Action::Close);
        assert!(
            matches!(&actions[1], Action::Connect { rules, ticket } if *rules == new_rules && *ticket != old)
        );
        assert!(
            h.send(Event::Connected { ticket: old }).is_empty(),
            "the abandoned attempt is ignored"
        );
        assert_eq!(h.connects.len(), 2);
    }

    #[test]
    fn a_filter_change_while_backing_off_is_used_by_the_next_attempt_without_cutting_the_wait() {
        let mut h = Harness::new(vec![track("1", "a", "x")]);
        h.send(Event::Start);
        h.http(420);
        let newest = vec![track("1", "c", "x")];
        assert!(h
            .send(Event::RulesChanged(vec![track("1", "b", "x")]))
            .is_empty());
        assert!(h.send(Event::RulesChanged(newest.clone())).is_empty());
        let (_, wait) = *h.timers.last().unwrap();
        assert_eq!(wait, Duration::from_secs(60));
        h.fire_latest_timer();
        assert_eq!(h.connects.last(), Some(&newest));
    }

    #[test]
    fn stop_closes_reports_stopped_and_ignores_everything_after() {
        let mut h = Harness::new(vec![]);
        h.send(Event::Start);
        h.connected();
        let actions = h.send(Event::Stop);
        assert_eq!(
            actions,
            vec![Action::Close, Action::Report(StreamState::Stopped)]
        );
        assert!(h.send(Event::Stop).is_empty());
        assert!(h.fire_latest_timer().is_empty());
        assert!(h.dropped().is_empty());
        assert!(h
            .send(Event::RulesChanged(vec![track("1", "z", "z")]))
            .is_empty());
    }

    #[test]
    fn stale_news_of_abandoned_attempts_and_timers_is_ignored() {
        let mut h = Harness::new(vec![]);
        h.send(Event::Start);
        let first = h.attempt();
        h.http(503);
        assert!(h.send(Event::Connected { ticket: first }).is_empty());
        assert!(h
            .send(Event::Failed {
                ticket: first,
                failure: network()
            })
            .is_empty());
        assert!(h.send(Event::TimerFired { ticket: 999 }).is_empty());
        assert!(matches!(h.last_report(), StreamState::BackingOff { .. }));
    }

    #[test]
    fn each_state_change_is_reported_once() {
        let mut h = Harness::new(vec![]);
        h.send(Event::Start);
        h.connected();
        h.advance(Duration::from_secs(30));
        h.dropped();
        h.http(401);
        let names: Vec<&str> = h.reports.iter().map(StreamState::name).collect();
        assert_eq!(
            names,
            ["connecting", "streaming", "connecting", "auth_failed"]
        );
    }

    #[test]
    fn scaled_configs_keep_the_same_sequence_in_shorter_time() {
        let mut h = Harness::with_config(vec![], BackoffConfig::default().scaled(0.001));
        h.send(Event::Start);
        let waits = h.waits_after_failures(3, http(503));
        assert_eq!(waits, [5, 10, 20].map(Duration::from_millis));
    }
}
