//! A runnable BioT notification dispatcher: the subscription API over HTTP, real
//! delivery over HTTP(S) through the delivery engine, subscriptions in memory or in
//! PostgreSQL.
//!
//! ```sh
//! cargo run --example server --features axum,http-notifier,metrics -- --api-token TOKEN [--listen ADDR] [--allow-private-endpoints] [--shutdown-deadline SECONDS]
//! cargo run --example server --features axum,http-notifier,metrics -- --no-auth --allow-private-endpoints
//! cargo run --example server --features axum,http-notifier,metrics,postgres -- --api-token TOKEN --database-url postgres://... [--plain-postgres]
//! cargo run --example server --features axum,http-notifier,metrics,jwt -- --api-public-key biot.pub.pem --signing-key service.key.pem
//! ```
//!
//! The server refuses to start until it is told who may call its API:
//!
//! - `--api-token TOKEN` (or `BIOT_API_TOKEN`): every subscription call, and the event
//!   route below, must carry `Authorization: Bearer TOKEN`. A static shared secret, the
//!   example's stand-in for verifying BioT's JWTs.
//! - `--api-public-key PATH` (needs the `jwt` feature): BioT's tokens. Every
//!   subscription call must carry `Authorization: Bearer <token>` signed (RS512) by this
//!   public key (PEM, or BioT's bare base64), unexpired, with the route's permission in
//!   its `scopes`; the event route below asks for `DISPATCHER_SUBSCRIPTIONS_SUBSCRIBE`.
//! - `--no-auth`: no check at all; anyone who can reach the server may subscribe,
//!   unsubscribe, search and trigger events. For local development only: the server says
//!   so on stderr when it starts.
//!
//! The other options:
//!
//! - `--listen ADDR`: where to serve (default `127.0.0.1:8080`).
//! - `--allow-private-endpoints`: accept plugins on loopback and private hosts over plain
//!   `http`, for plugins on your own machine. Never in production.
//! - `--database-url URL` (or `DATABASE_URL`): keep subscriptions in PostgreSQL, shared
//!   by every instance pointed at it (needs the `postgres` feature), in a
//!   `ReplicatedStore`: each instance matches events from an index in its own memory,
//!   kept current through `LISTEN`/`NOTIFY` on one extra connection, so an event costs
//!   no query. While the database cannot be reached, matching serves the last known
//!   subscriptions; the store logs a `WARN` when its index goes stale and an `INFO` when
//!   it has caught up and follows the database again (see `GET /health` below).
//! - `--plain-postgres` (with `--database-url`): a plain `PostgresStore` instead, which
//!   asks the database for the matching subscriptions on every event (no index in
//!   memory, no listening connection; an event fails while the database is down).
//!
//! The endpoint policy (strict, or loosened by `--allow-private-endpoints`) is given
//! once, to the HTTP notifier; the dispatcher validates subscriptions against the same
//! policy.
//! - `--shutdown-deadline SECONDS`: how long Ctrl-C lets queued and running deliveries
//!   finish before the rest is abandoned (default 10).
//! - `--signing-key PATH` (needs the `jwt` feature): the service's RSA private key
//!   (PEM). Every notification then carries a signed `jwt` (RS512, `ACTION_NOTIFICATION`,
//!   five minutes, reused until shortly before expiry), which BioT's plugins require.
//!   Without it the notifications carry none, and the server warns.
//!
//! Besides BioT's routes under `/dispatcher`, the example serves:
//!
//! - `POST /dispatcher/v1/events`, a STAND-IN FOR THE PLATFORM'S OWN EVENT SOURCE (in
//!   BioT, services report their actions internally; nothing like this route exists
//!   there). It takes `{"entityTypeName", "actionName", "entity", "additionalData"?}`
//!   (and an optional `traceparent` header), hands the event to the delivery engine and
//!   answers `202 {"traceId": ...}` at once; delivery happens in the background. When the
//!   engine is overloaded (or shutting down) it answers `503` with BioT's error body
//!   (code `SERVICE_UNAVAILABLE`) and `Retry-After: 1`. With `?wait=true` it dispatches
//!   in the request instead and answers `202` with the full dispatch report.
//! - `GET /metrics`: the engine's metrics in Prometheus' text format. With the
//!   replicated store, the example adds its replication status, read at each scrape:
//!   `biot_notifications_replication_following` (1 or 0),
//!   `biot_notifications_replication_stale_seconds` (0 while following),
//!   `biot_notifications_replication_version` (the database's change counter as of the
//!   index), and the counters `biot_notifications_replication_reconnects_total` and
//!   `biot_notifications_replication_full_reloads_total`.
//! - `GET /health`: which store the server runs on, public like `/metrics`. With the
//!   replicated store: `200 {"store":"replicated","following":true,"version":N,
//!   "reconnects":N,"fullReloads":N}` while its index follows the database, and `503`
//!   with `"following":false` and `"staleSeconds"` (how long it has been stale) while it
//!   does not. With the others, always `200 {"store":"memory"}` or
//!   `{"store":"postgres"}` (the plain store keeps no state to report: this route does
//!   not query the database). A stale instance still dispatches from what it last knew,
//!   and every instance goes stale at once when the database is down: alert on the 503,
//!   but think twice before taking instances out of rotation on it. BioT's own
//!   `GET /dispatcher/system/healthCheck` stays as the contract has it: always 200.
//!
//! Ctrl-C stops the server, then shuts the engine down within the deadline and logs
//! what was delivered, failed, shed and abandoned.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use biot_notifications::api::{
    self, AllowEveryone, Api, AuthorizationError, Authorizer, ErrorResponse, Permission,
};
use biot_notifications::delivery::DeliveryEngine;
use biot_notifications::notification::{Event, TraceParent, TRACEPARENT};
use biot_notifications::notifier::http_notifier::HttpNotifier;
#[cfg(feature = "postgres")]
use biot_notifications::store::postgres::{
    replicated::ReplicationStatus, PostgresStore, ReplicatedStore,
};
use biot_notifications::{
    BiotError, Dispatcher, EndpointPolicy, EventType, InMemoryStore, SubscriptionStore,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::Deserialize;
use serde_json::Value;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Who may call the API: the one choice the server will not make by itself.
enum Access {
    /// Callers must present this bearer token.
    Token(StaticBearerToken),
    /// Callers must present a BioT token signed by this public key (`--api-public-key`).
    PublicKey(String),
    /// Anyone may call (`--no-auth`).
    Everyone,
}

struct Options {
    access: Option<Access>,
    listen: SocketAddr,
    allow_private_endpoints: bool,
    database_url: Option<String>,
    /// `--plain-postgres`: a `PostgresStore` rather than a `ReplicatedStore`.
    plain_postgres: bool,
    shutdown_deadline: Duration,
    signing_key: Option<String>,
}

fn read_key(flag: &str, path: Option<String>) -> Result<String, String> {
    let path = path.ok_or(format!("{flag} needs a file path"))?;
    std::fs::read_to_string(&path).map_err(|e| format!("{flag} {path}: {e}"))
}

fn parse_args() -> Result<Options, String> {
    let mut api_token = std::env::var("BIOT_API_TOKEN")
        .ok()
        .filter(|token| !token.is_empty());
    let mut no_auth = false;
    let mut options = Options {
        access: None,
        listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
        allow_private_endpoints: false,
        database_url: std::env::var("DATABASE_URL")
            .ok()
            .filter(|url| !url.is_empty()),
        plain_postgres: false,
        shutdown_deadline: Duration::from_secs(10),
        signing_key: None,
    };
    let mut api_public_key = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => {
                let value = args
                    .next()
                    .ok_or("--listen needs an address, e.g. 127.0.0.1:8080")?;
                options.listen = value
                    .parse()
                    .map_err(|e| format!("--listen {value}: {e}"))?;
            }
            "--allow-private-endpoints" => options.allow_private_endpoints = true,
            "--api-token" => {
                api_token = Some(args.next().ok_or("--api-token needs a token")?);
            }
            "--no-auth" => no_auth = true,
            "--api-public-key" => api_public_key = Some(read_key(&arg, args.next())?),
            "--signing-key" => options.signing_key = Some(read_key(&arg, args.next())?),
            "--database-url" => {
                options.database_url = Some(args.next().ok_or("--database-url needs a URL")?);
            }
            "--plain-postgres" => options.plain_postgres = true,
            "--shutdown-deadline" => {
                let value = args
                    .next()
                    .ok_or("--shutdown-deadline needs a number of seconds, e.g. 10")?;
                let seconds: f64 = value
                    .parse()
                    .map_err(|e| format!("--shutdown-deadline {value}: {e}"))?;
                options.shutdown_deadline = Duration::try_from_secs_f64(seconds)
                    .map_err(|e| format!("--shutdown-deadline {value}: {e}"))?;
            }
            "--help" | "-h" => return Err(
                "usage: server (--api-token TOKEN | --api-public-key PATH | --no-auth) [--listen ADDR] [--allow-private-endpoints] [--database-url URL [--plain-postgres]] [--shutdown-deadline SECONDS] [--signing-key PATH]"
                    .to_owned(),
            ),
            other => return Err(format!("unknown argument `{other}`; see --help")),
        }
    }
    options.access = match (api_token, api_public_key, no_auth) {
        (Some(token), None, false) => Some(Access::Token(StaticBearerToken::new(token)?)),
        (None, Some(key), false) => Some(Access::PublicKey(key)),
        (None, None, true) => Some(Access::Everyone),
        (None, None, false) => None,
        _ => {
            return Err(
                "give one of --api-token (or BIOT_API_TOKEN), --api-public-key or --no-auth"
                    .to_owned(),
            )
        }
    };
    if options.plain_postgres && options.database_url.is_none() {
        return Err(
            "--plain-postgres chooses how subscriptions are kept in PostgreSQL: give \
             --database-url URL (or DATABASE_URL) too"
                .to_owned(),
        );
    }
    Ok(options)
}

/// The example's authorizer: one shared bearer token, allowed every permission. A real
/// service verifies BioT's JWTs (signature, expiry, the route's permission) instead.
#[derive(Clone)]
struct StaticBearerToken {
    token: Arc<str>,
}

impl std::fmt::Debug for StaticBearerToken {
    // Never the token itself: debug output ends up in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticBearerToken").finish_non_exhaustive()
    }
}

impl StaticBearerToken {
    fn new(token: String) -> Result<Self, String> {
        if token.len() < 16 || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(
                "--api-token: use at least 16 printable ASCII characters without spaces".to_owned(),
            );
        }
        Ok(StaticBearerToken {
            token: token.into(),
        })
    }

    /// Whether `headers` carry `Authorization: Bearer <the token>`.
    fn admits(&self, headers: &HeaderMap) -> Result<(), AuthorizationError> {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or_else(|| AuthorizationError::unauthenticated("no bearer token"))?;
        if same_secret(presented.trim().as_bytes(), self.token.as_bytes()) {
            Ok(())
        } else {
            Err(AuthorizationError::unauthenticated("unknown token"))
        }
    }
}

/// Compares two secrets in a time that depends on their lengths only, so that a caller
/// cannot find the token byte by byte by timing refusals.
fn same_secret(presented: &[u8], expected: &[u8]) -> bool {
    presented.len() == expected.len()
        && presented
            .iter()
            .zip(expected)
            .fold(0u8, |differences, (a, b)| differences | (a ^ b))
            == 0
}

#[async_trait]
impl Authorizer for StaticBearerToken {
    async fn authorize(
        &self,
        request: &http::request::Parts,
        _: Permission,
    ) -> Result<(), AuthorizationError> {
        self.admits(&request.headers)
    }
}

/// The body of the example's stand-in event route.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventRequest {
    entity_type_name: String,
    action_name: String,
    entity: Value,
    #[serde(default)]
    additional_data: Option<Value>,
}

/// What the example's routes share.
#[derive(Clone)]
struct AppState {
    /// The API's authorizer, which the event route asks too; `None` under `--no-auth`.
    authorizer: Option<Arc<dyn Authorizer>>,
    dispatcher: Dispatcher,
    engine: DeliveryEngine,
    prometheus: PrometheusHandle,
    /// The store the dispatcher runs on, for `GET /health` and `/metrics`.
    store: StoreInUse,
}

/// Which store the server runs on: what `GET /health` and `/metrics` report.
#[derive(Clone)]
enum StoreInUse {
    /// `InMemoryStore`: no `--database-url`.
    Memory,
    /// `PostgresStore`: `--database-url` with `--plain-postgres`.
    #[cfg(feature = "postgres")]
    Postgres,
    /// `ReplicatedStore`: `--database-url`; a clone of the store the dispatcher uses, for
    /// its replication status.
    #[cfg(feature = "postgres")]
    Replicated(ReplicatedStore),
}

/// BioT's error body for `error`, with the trace id the caller can quote.
fn error_response(error: &dyn BiotError, trace_id: String) -> Response {
    let body = ErrorResponse::from_error(
        error,
        api::DEFAULT_SERVICE_NAME,
        api::DEFAULT_ENVIRONMENT,
        &trace_id,
    );
    let mut response = (error.status(), Json(body)).into_response();
    if error.status() == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

async fn trigger_event(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    Json(request): Json<EventRequest>,
) -> Response {
    // The caller's trace, when it sent one; the engine starts one otherwise.
    let traceparent = headers
        .get(TRACEPARENT)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| TraceParent::parse(value).ok());
    let trace_id = || {
        traceparent
            .unwrap_or_else(TraceParent::generate)
            .trace_id_hex()
    };
    if let Some(authorizer) = &state.authorizer {
        // The stand-in route has no permission of its own: it asks for subscribe's.
        let (mut parts, ()) = http::Request::new(()).into_parts();
        parts.headers = headers.clone();
        if let Err(refused) = authorizer.authorize(&parts, Permission::Subscribe).await {
            return error_response(&refused, trace_id());
        }
    }
    let event_type = match EventType::parse(&request.entity_type_name, &request.action_name) {
        Ok(event_type) => event_type,
        Err(err) => return error_response(&err, trace_id()),
    };
    let mut event = Event::new(event_type, request.entity);
    if let Some(additional_data) = request.additional_data {
        event = event.with_additional_data(additional_data);
    }
    if let Some(traceparent) = traceparent {
        event = event.with_traceparent(traceparent);
    }
    let wait = uri
        .query()
        .is_some_and(|query| query.split('&').any(|pair| pair == "wait=true"));
    if wait {
        // Today's behaviour: deliver in the request and answer the full report.
        return match state.dispatcher.dispatch(&event).await {
            Ok(report) => (StatusCode::ACCEPTED, Json(report)).into_response(),
            Err(err) => error_response(&err, trace_id()),
        };
    }
    match state.engine.try_submit(event) {
        Ok(submitted) => (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({"traceId": submitted.trace_id_hex()})),
        )
            .into_response(),
        Err(refused) => {
            let trace_id = refused
                .event()
                .traceparent()
                .map_or_else(trace_id, |t| t.trace_id_hex());
            error_response(&refused, trace_id)
        }
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    #[cfg(feature = "postgres")]
    if let StoreInUse::Replicated(store) = &state.store {
        record_replication(&store.status());
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        state.prometheus.render(),
    )
        .into_response()
}

/// The replication status as of this scrape, through the `metrics` facade into the
/// Prometheus recorder: the example's metrics, not the crate's.
#[cfg(feature = "postgres")]
fn record_replication(status: &ReplicationStatus) {
    ::metrics::gauge!("biot_notifications_replication_following").set(if status.is_following() {
        1.0
    } else {
        0.0
    });
    ::metrics::gauge!("biot_notifications_replication_stale_seconds").set(
        status
            .staleness()
            .map_or(0.0, |stale_for| stale_for.as_secs_f64()),
    );
    // A gauge, not a counter: a position in the database's change log, which a database
    // restored from a backup can set back.
    ::metrics::gauge!("biot_notifications_replication_version").set(status.version as f64);
    ::metrics::counter!("biot_notifications_replication_reconnects_total")
        .absolute(status.reconnects);
    ::metrics::counter!("biot_notifications_replication_full_reloads_total")
        .absolute(status.full_reloads);
}

/// `GET /health`: which store the server runs on and, for the replicated store, whether
/// its index follows the database (`200`) or is stale (`503`).
async fn health(State(state): State<AppState>) -> Response {
    match &state.store {
        StoreInUse::Memory => Json(serde_json::json!({"store": "memory"})).into_response(),
        #[cfg(feature = "postgres")]
        StoreInUse::Postgres => Json(serde_json::json!({"store": "postgres"})).into_response(),
        #[cfg(feature = "postgres")]
        StoreInUse::Replicated(store) => {
            let status = store.status();
            let mut body = serde_json::json!({
                "store": "replicated",
                "following": status.is_following(),
                "version": status.version,
                "reconnects": status.reconnects,
                "fullReloads": status.full_reloads,
            });
            if status.is_following() {
                return Json(body).into_response();
            }
            body["staleSeconds"] = serde_json::json!(status
                .staleness()
                .map_or(0.0, |stale_for| stale_for.as_secs_f64()));
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

/// The example's whole app: BioT's API plus the stand-in event route, the metrics and
/// the store's health.
fn app(state: AppState) -> Result<Router, api::ApiBuildError> {
    let api = Api::builder(state.dispatcher.clone());
    let api = match &state.authorizer {
        Some(authorizer) => api.authorizer(Arc::clone(authorizer)),
        None => api.authorizer(AllowEveryone),
    };
    let api = api.build()?;
    Ok(Router::new()
        .route("/dispatcher/v1/events", post(trigger_event))
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .with_state(state)
        .merge(api::router(api)))
}

/// PostgreSQL when a database URL is given (replicated unless `plain_postgres`), memory
/// otherwise.
async fn store(
    database_url: Option<&str>,
    plain_postgres: bool,
) -> Result<(Arc<dyn SubscriptionStore>, StoreInUse), Box<dyn std::error::Error>> {
    match database_url {
        None => {
            println!("subscriptions are kept in memory");
            Ok((Arc::new(InMemoryStore::new()), StoreInUse::Memory))
        }
        #[cfg(feature = "postgres")]
        Some(url) if plain_postgres => {
            let store = PostgresStore::connect(url).await?;
            println!(
                "subscriptions are kept in PostgreSQL (schema {}), queried on every event \
                 (--plain-postgres)",
                store.schema()
            );
            Ok((Arc::new(store), StoreInUse::Postgres))
        }
        #[cfg(feature = "postgres")]
        Some(url) => {
            let store = ReplicatedStore::connect(url).await?;
            let status = store.status();
            println!(
                "subscriptions are kept in PostgreSQL (schema {}) and matched from memory \
                 (replicated store: {} at version {}, {})",
                store.postgres().schema(),
                if status.is_following() {
                    "following the database"
                } else {
                    "NOT following the database"
                },
                status.version,
                match store.count().await {
                    Ok(1) => "1 subscription".to_owned(),
                    Ok(count) => format!("{count} subscriptions"),
                    Err(error) => format!("subscriptions not counted: {error}"),
                }
            );
            Ok((Arc::new(store.clone()), StoreInUse::Replicated(store)))
        }
        #[cfg(not(feature = "postgres"))]
        Some(_) => {
            let _ = plain_postgres; // Without the feature there is no store to choose.
            Err("--database-url needs the `postgres` feature: add `--features postgres`".into())
        }
    }
}

/// The notification token provider for `--signing-key`.
#[cfg(feature = "jwt")]
fn signing_provider(
    pem: &str,
) -> Result<Arc<dyn biot_notifications::TokenProvider>, Box<dyn std::error::Error>> {
    use biot_notifications::token::{SigningKey, SigningTokenProvider};
    let provider = SigningTokenProvider::new(SigningKey::from_pem(pem)?).with_subject("dispatcher");
    Ok(Arc::new(provider))
}

#[cfg(not(feature = "jwt"))]
fn signing_provider(
    _: &str,
) -> Result<Arc<dyn biot_notifications::TokenProvider>, Box<dyn std::error::Error>> {
    Err("--signing-key needs the `jwt` feature: add `--features jwt`".into())
}

/// The API's authorizer for `--api-public-key`.
#[cfg(feature = "jwt")]
fn token_authorizer(key: &str) -> Result<Arc<dyn Authorizer>, Box<dyn std::error::Error>> {
    use biot_notifications::token::{PublicKey, TokenAuthorizer, TokenVerifier};
    let verifier = TokenVerifier::new(PublicKey::from_pem_or_base64(key)?);
    Ok(Arc::new(TokenAuthorizer::new(verifier)))
}

#[cfg(not(feature = "jwt"))]
fn token_authorizer(_: &str) -> Result<Arc<dyn Authorizer>, Box<dyn std::error::Error>> {
    Err("--api-public-key needs the `jwt` feature: add `--features jwt`".into())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The crate's spans and events: each API call, subscribe, unsubscribe, search and
    // dispatch, one line per delivery (endpoint, outcome, duration), and the replicated
    // store's WARN when its index goes stale and INFO when it follows again (with its
    // reconnect attempts at DEBUG). Everything else at INFO and above.
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_ansi(std::io::stdout().is_terminal()))
        .with(
            Targets::new()
                .with_target("biot_notifications", Level::DEBUG)
                .with_default(Level::INFO),
        )
        .init();
    let options = match parse_args() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let authorizer: Option<Arc<dyn Authorizer>> = match options.access {
        Some(Access::Token(token)) => Some(Arc::new(token)),
        Some(Access::PublicKey(key)) => {
            println!("the API accepts BioT tokens signed by --api-public-key");
            Some(token_authorizer(&key)?)
        }
        Some(Access::Everyone) => None,
        None => {
            eprintln!(
                "refusing to start: nobody said who may call the API. Give --api-token TOKEN \
                 (or BIOT_API_TOKEN) to require `Authorization: Bearer TOKEN`, \
                 --api-public-key PATH to require BioT tokens signed by that key, or --no-auth \
                 to let anyone in (local development only)."
            );
            std::process::exit(2);
        }
    };
    let policy = if options.allow_private_endpoints {
        println!("accepting private and plain-http endpoints (local development only)");
        EndpointPolicy::local_development()
    } else {
        EndpointPolicy::default()
    };
    let prometheus = PrometheusBuilder::new().install_recorder()?;
    // The policy is given once, to the notifier, which vets every delivery with it; the
    // dispatcher validates subscriptions against the notifier's policy.
    let notifier = HttpNotifier::builder().endpoint_policy(policy).build()?;
    let (store, store_in_use) =
        store(options.database_url.as_deref(), options.plain_postgres).await?;
    let mut dispatcher = Dispatcher::builder(store, notifier);
    if let Some(pem) = &options.signing_key {
        dispatcher = dispatcher.token_provider(signing_provider(pem)?);
        println!("notifications carry a jwt signed with --signing-key");
    }
    let dispatcher = dispatcher.build()?;
    // Delivers in the background on this runtime, within the engine's default bounds.
    let engine = DeliveryEngine::builder(dispatcher.clone()).build()?;

    let listener = tokio::net::TcpListener::bind(options.listen).await?;
    println!(
        "dispatcher listening on http://{}/dispatcher (metrics at /metrics, store health at /health)",
        listener.local_addr()?
    );
    if authorizer.is_none() {
        eprintln!(
            "WARNING: --no-auth: the API checks no token. ANYONE who can reach http://{}/ may \
             subscribe, unsubscribe, search and trigger events. Local development only.",
            listener.local_addr()?
        );
    }
    let state = AppState {
        authorizer,
        dispatcher,
        engine: engine.clone(),
        prometheus,
        store: store_in_use,
    };
    axum::serve(listener, app(state)?)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    // The server no longer takes events; give what is queued and running its chance.
    // (The engine logs the counts too; this is the whole report, outcome by outcome.)
    let report = engine.shutdown(options.shutdown_deadline).await;
    println!(
        "deliveries at shutdown: {}",
        serde_json::to_string(&report)?
    );
    Ok(())
}
