//! The stream actor: thin glue that carries out what the [`Lifecycle`] decides — opening the
//! connection (paced per API key), reading it into the writer, running timers, reporting
//! states — and feeds back what happened.
//!
//! Closing an open connection never cancels its reader: the reader is asked to stop
//! ([`StopReading`]) and finishes handing what it decoded to the writer. On `StopStream` the
//! actor stays alive until every such handover is done (at most [`HANDOVER_LIMIT`]), so whoever
//! waits for the stream to stop knows its records are with the writer.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix::prelude::*;
use traptor_core::filter::Filter;
use traptor_core::oauth::Credentials;
use traptor_core::plan::ConnectionId;
use traptor_core::protocol::DEFAULT_MAX_FRAME_BYTES;
use traptor_core::Rule;

use super::backoff::BackoffConfig;
use super::client::{
    build_client, check_endpoint, open, ClientError, ClientSettings, StreamRequest,
};
use super::lifecycle::{Action, Event, Failure, Lifecycle, Ticket};
use super::pacing::Pacer;
use super::reader::{
    read_stream, End, Finished, Liveness, Reader, Received, RulesUpdate, StopReading,
};
use super::stats::{DropKind, StreamStats};
use crate::messages::{StopStream, StreamState, StreamStateChanged, UpdateRules};
use crate::sinks::RecordOutlet;

/// The `disconnect` code for "another connection with the same credentials took over".
const DUPLICATE_STREAM: u32 = 7;

/// Longest a stopping stream waits for its readers to hand their last records to the writer
/// (the writer may be stuck on a dead sink); after it the stream stops anyway.
pub const HANDOVER_LIMIT: Duration = Duration::from_secs(10);

/// Everything one stream needs to know about its connection.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    pub connection: ConnectionId,
    /// The API key's name in the configuration (safe to log; the secrets are in `credentials`).
    pub key_name: String,
    pub credentials: Credentials,
    pub rules: Vec<Rule>,
    /// The filter endpoint, without query string.
    pub endpoint: String,
    pub user_agent: String,
    /// No byte at all for this long while streaming → reconnect (90 s per the contract).
    pub stall_timeout: Duration,
    pub max_frame_bytes: usize,
    pub backoff: BackoffConfig,
    pub http: ClientSettings,
}

impl StreamSpec {
    /// A spec with the streaming API's documented defaults for everything else.
    pub fn new(
        connection: ConnectionId,
        key_name: impl Into<String>,
        credentials: Credentials,
        rules: Vec<Rule>,
        endpoint: impl Into<String>,
    ) -> StreamSpec {
        StreamSpec {
            connection,
            key_name: key_name.into(),
            credentials,
            rules,
            endpoint: endpoint.into(),
            user_agent: format!("traptor/{}", env!("CARGO_PKG_VERSION")),
            stall_timeout: Duration::from_secs(90),
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            backoff: BackoffConfig::default(),
            http: ClientSettings::default(),
        }
    }
}

/// A started stream: its address and its live counters.
#[derive(Debug, Clone)]
pub struct StreamHandle {
    pub addr: Addr<StreamActor>,
    pub stats: Arc<StreamStats>,
}

/// One streaming connection `(ConnectionId, API key)`. Receives `UpdateRules` and `StopStream`;
/// hands its records to the sink ([`RecordOutlet`]) and sends `StreamStateChanged` to the
/// supervisor.
pub struct StreamActor {
    spec: StreamSpec,
    lifecycle: Lifecycle,
    outlet: RecordOutlet,
    reports: Recipient<StreamStateChanged>,
    pacer: Arc<Pacer>,
    stats: Arc<StreamStats>,
    /// Built on the actor's own arbiter (`awc::Client` is `!Send`).
    client: awc::Client,
    /// The pacing wait or connection attempt in progress (cancelled on close).
    in_flight: Option<SpawnHandle>,
    /// The reader of the open connection (asked to stop on close, never cancelled).
    reading: Option<OpenReader>,
    /// Readers asked to stop that are still handing their last batch to the writer.
    handing_over: usize,
    /// `StopStream` arrived: stop once `handing_over` is back to 0.
    stop_when_handed_over: bool,
    liveness: Option<Rc<Liveness>>,
    rules_update: RulesUpdate,
}

/// The reader of one open connection: which attempt it belongs to and how to stop it.
struct OpenReader {
    ticket: Ticket,
    stop: Rc<StopReading>,
}

impl StreamActor {
    /// Starts the stream on `arbiter` (the supervisor spreads streams over one arbiter per
    /// core). Fails only on a configuration error, before anything is started.
    pub fn start_in(
        arbiter: &ArbiterHandle,
        spec: StreamSpec,
        outlet: RecordOutlet,
        reports: Recipient<StreamStateChanged>,
        pacer: Arc<Pacer>,
    ) -> Result<StreamHandle, ClientError> {
        check_endpoint(&spec.endpoint)?;
        let stats = Arc::new(StreamStats::default());
        let shared = stats.clone();
        let addr = StreamActor::start_in_arbiter(arbiter, move |_| {
            // This closure runs on `arbiter`: the client is built where it is used.
            let client = build_client(&spec.http);
            let lifecycle =
                Lifecycle::new(spec.rules.clone(), spec.backoff.clone(), spec.stall_timeout);
            StreamActor {
                spec,
                lifecycle,
                outlet,
                reports,
                pacer,
                stats: shared,
                client,
                in_flight: None,
                reading: None,
                handing_over: 0,
                stop_when_handed_over: false,
                liveness: None,
                rules_update: RulesUpdate::default(),
            }
        });
        Ok(StreamHandle { addr, stats })
    }

    /// Starts the stream on the current arbiter.
    pub fn start_here(
        spec: StreamSpec,
        outlet: RecordOutlet,
        reports: Recipient<StreamStateChanged>,
        pacer: Arc<Pacer>,
    ) -> Result<StreamHandle, ClientError> {
        StreamActor::start_in(&Arbiter::current(), spec, outlet, reports, pacer)
    }

    fn feed(&mut self, event: Event, ctx: &mut Context<Self>) {
        let actions = self.lifecycle.on_event(event, Instant::now());
        for action in actions {
            self.perform(action, ctx);
        }
    }

    fn perform(&mut self, action: Action, ctx: &mut Context<Self>) {
        match action {
            Action::Connect { ticket, rules } => self.connect(ticket, rules, ctx),
            Action::ApplyRules(rules) => *self.rules_update.borrow_mut() = Some(rules),
            Action::Close => {
                if let Some(handle) = self.in_flight.take() {
                    ctx.cancel_future(handle);
                }
                if let Some(reader) = self.reading.take() {
                    reader.stop.request();
                    self.handing_over += 1;
                }
                self.liveness = None;
            }
            Action::Wait { ticket, delay } => {
                ctx.run_later(delay, move |act, ctx| act.timer_fired(ticket, ctx));
            }
            Action::Report(state) => self.report(state),
        }
    }

    /// Takes one attempt from the key's allowance (waiting for it if need be), then connects.
    fn connect(&mut self, ticket: Ticket, rules: Vec<Rule>, ctx: &mut Context<Self>) {
        if let Err(wait) = self.pacer.try_acquire(&self.spec.key_name) {
            tracing::debug!(connection = %self.spec.connection, key = %self.spec.key_name, ?wait, "connect paced");
            let handle = ctx.run_later(wait, move |act, ctx| {
                act.in_flight = None;
                if act.lifecycle.current_attempt() == Some(ticket) {
                    act.connect(ticket, rules, ctx);
                }
            });
            self.in_flight = Some(handle);
            return;
        }
        self.stats.connect_attempt();
        let client = self.client.clone();
        let filter = Filter::from_rules(self.spec.connection.slot.stream_type, &rules);
        let form = filter.form_params();
        let endpoint = self.spec.endpoint.clone();
        let user_agent = self.spec.user_agent.clone();
        let credentials = self.spec.credentials.clone();
        let attempt = async move {
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let request = StreamRequest {
                endpoint: &endpoint,
                user_agent: &user_agent,
                credentials: &credentials,
                form: &form,
            };
            open(&client, &request).await
        };
        let handle = ctx.spawn(attempt.into_actor(self).map(move |opened, act, ctx| {
            act.in_flight = None;
            match opened {
                Ok(body) => act.opened(ticket, body, ctx),
                Err(failure) => {
                    match &failure {
                        Failure::Network(reason) => act.stats.network_error(reason),
                        Failure::Http { status, reason } => act.stats.http_status(*status, reason),
                    }
                    act.feed(Event::Failed { ticket, failure }, ctx);
                }
            }
        }));
        self.in_flight = Some(handle);
    }

    /// A 200 arrived: start reading the body into the writer.
    fn opened(
        &mut self,
        ticket: Ticket,
        body: impl super::client::StreamBody,
        ctx: &mut Context<Self>,
    ) {
        self.stats.connected();
        self.feed(Event::Connected { ticket }, ctx);
        if self.lifecycle.current_attempt() != Some(ticket) {
            return;
        }
        tracing::info!(connection = %self.spec.connection, key = %self.spec.key_name, "streaming");
        let liveness = Liveness::new(Instant::now());
        self.liveness = Some(liveness.clone());
        // The newest rules: any change since the attempt began left the filter as it was.
        self.rules_update.borrow_mut().take();
        let reader = Reader::new(
            self.spec.connection.to_string(),
            self.spec.connection.slot.clone(),
            self.lifecycle.rules().to_vec(),
            self.spec.max_frame_bytes,
            self.stats.clone(),
        );
        let stop = StopReading::new();
        let reading = read_stream(
            body,
            reader,
            self.outlet.clone(),
            liveness,
            self.rules_update.clone(),
            stop.clone(),
        );
        ctx.spawn(
            reading
                .into_actor(self)
                .map(move |finished, act, ctx| act.reader_finished(ticket, finished, ctx)),
        );
        self.reading = Some(OpenReader { ticket, stop });
    }

    /// A reader is done: either its connection ended on its own (the lifecycle decides what
    /// next), or it was asked to stop and has now handed everything over.
    fn reader_finished(&mut self, ticket: Ticket, finished: Finished, ctx: &mut Context<Self>) {
        let Finished { end, received } = finished;
        if self.reading.as_ref().is_some_and(|r| r.ticket == ticket) {
            self.reading = None;
            self.ended(ticket, end, received, ctx);
            return;
        }
        self.handing_over = self.handing_over.saturating_sub(1);
        let Received {
            bytes,
            messages,
            tweets,
        } = received;
        match end {
            End::Stopped => {
                tracing::info!(connection = %self.spec.connection, key = %self.spec.key_name, bytes, messages, tweets, "connection closed by traptor; everything received was handed to the writer")
            }
            other => {
                tracing::info!(connection = %self.spec.connection, key = %self.spec.key_name, bytes, messages, tweets, ending = ?other, "connection closed by traptor")
            }
        }
        if self.stop_when_handed_over && self.handing_over == 0 {
            ctx.stop();
        }
    }

    fn ended(&mut self, ticket: Ticket, end: End, received: Received, ctx: &mut Context<Self>) {
        let displaced = matches!(
            end,
            End::Disconnect {
                code: Some(DUPLICATE_STREAM),
                ..
            }
        );
        let (kind, reason) = match end {
            // Only a reader asked to stop ends so, and it is no longer the current one.
            End::Stopped => return,
            End::Closed => (DropKind::Closed, "the server closed the stream".to_owned()),
            End::ReadError(error) => (
                DropKind::ReadError,
                format!("reading the stream failed: {error}"),
            ),
            End::Disconnect { code, reason } => (
                DropKind::DisconnectMessage,
                format!(
                    "disconnect message (code {}): {}",
                    code.map_or("?".to_owned(), |c| c.to_string()),
                    reason.unwrap_or_default()
                ),
            ),
            End::WriterGone(error) => (
                DropKind::WriterGone,
                format!("the writer stopped accepting records: {error}"),
            ),
        };
        self.stats.dropped(kind);
        self.stats.set_last_error(&reason);
        let Received {
            bytes,
            messages,
            tweets,
        } = received;
        tracing::warn!(connection = %self.spec.connection, key = %self.spec.key_name, %reason, bytes, messages, tweets, "stream ended");
        if displaced {
            self.feed(Event::Displaced { ticket, reason }, ctx);
        } else {
            self.feed(Event::Dropped { ticket, reason }, ctx);
        }
    }

    fn timer_fired(&mut self, ticket: Ticket, ctx: &mut Context<Self>) {
        let now = Instant::now();
        if let Some(liveness) = &self.liveness {
            self.lifecycle
                .note_activity(liveness.last_sign_of_life(now));
        }
        let streaming = self.lifecycle.state() == Some(&StreamState::Streaming);
        let actions = self.lifecycle.on_event(Event::TimerFired { ticket }, now);
        if streaming && actions.contains(&Action::Close) {
            self.stats.dropped(DropKind::Stall);
            self.stats
                .set_last_error("stalled: no data within the stall timeout");
            tracing::warn!(connection = %self.spec.connection, key = %self.spec.key_name, "stream stalled; reconnecting");
        }
        for action in actions {
            self.perform(action, ctx);
        }
    }

    fn report(&self, state: StreamState) {
        match &state {
            StreamState::AuthFailed { reason } | StreamState::Rejected { reason } => {
                tracing::error!(connection = %self.spec.connection, key = %self.spec.key_name, state = state.name(), %reason, "stream refused")
            }
            StreamState::BackingOff { delay, reason } => {
                tracing::warn!(connection = %self.spec.connection, key = %self.spec.key_name, ?delay, %reason, "backing off")
            }
            _ => {
                tracing::info!(connection = %self.spec.connection, key = %self.spec.key_name, state = state.name(), "stream state")
            }
        }
        self.reports.do_send(StreamStateChanged {
            connection: self.spec.connection.clone(),
            key_name: self.spec.key_name.clone(),
            state,
            at: SystemTime::now(),
        });
    }
}

impl Actor for StreamActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.feed(Event::Start, ctx);
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        // Stopped without `StopStream` (the arbiter or system is going down): still say so.
        for action in self.lifecycle.on_event(Event::Stop, Instant::now()) {
            if let Action::Report(state) = action {
                self.report(state);
            }
        }
    }
}

impl Handler<UpdateRules> for StreamActor {
    type Result = ();

    fn handle(&mut self, msg: UpdateRules, ctx: &mut Self::Context) {
        let streaming = self.lifecycle.state() == Some(&StreamState::Streaming);
        let actions = self
            .lifecycle
            .on_event(Event::RulesChanged(msg.rules), Instant::now());
        if streaming && actions.contains(&Action::Close) {
            self.stats.dropped(DropKind::RuleChange);
            tracing::info!(connection = %self.spec.connection, "the filter changed; reconnecting");
        }
        for action in actions {
            self.perform(action, ctx);
        }
    }
}

impl Handler<StopStream> for StreamActor {
    type Result = ();

    fn handle(&mut self, _: StopStream, ctx: &mut Self::Context) {
        self.feed(Event::Stop, ctx);
        if self.handing_over == 0 {
            ctx.stop();
            return;
        }
        self.stop_when_handed_over = true;
        ctx.run_later(HANDOVER_LIMIT, |act, ctx| {
            if act.handing_over > 0 {
                tracing::error!(connection = %act.spec.connection, key = %act.spec.key_name, "the writer took no records for {HANDOVER_LIMIT:?}: stopping anyway; the records in hand are lost");
            }
            ctx.stop();
        });
    }
}
